"""arm64 and RISC-V `Image` headers.

Specs: Documentation/arch/arm64/booting.rst, Documentation/arch/riscv/boot-image-header.rst.

Both are 64-byte little-endian headers at the start of the uncompressed kernel; the EFI stub may put "MZ" in the first
two bytes, so identification goes by the magic at 0x38 (arm64) or 0x30 (RISC-V).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kexec_core.arch import Arch
from kexec_core.errors import ImageError

ARM64_MAGIC = b"ARM\x64"
RISCV_MAGIC = b"RISCV\0\0\0"
HEADER_SIZE = 64
PAGE_SIZES = {0: "unspecified", 1: "4K", 2: "16K", 3: "64K"}


@dataclass(frozen=True)
class ImageHeader:
    arch: Arch
    text_offset: int
    image_size: int
    flags: int

    @property
    def big_endian(self) -> bool:
        return self.arch is Arch.ARM64 and bool(self.flags & 1)

    @property
    def page_size(self) -> str:
        return PAGE_SIZES[(self.flags >> 1) & 3] if self.arch is Arch.ARM64 else "n/a"

    def to_json(self) -> dict[str, Any]:
        return {
            "text_offset": self.text_offset,
            "image_size": self.image_size,
            "big_endian": self.big_endian,
            "page_size": self.page_size,
        }


def identify(head: bytes) -> Arch | None:
    if head[0x38:0x3C] == ARM64_MAGIC:
        return Arch.ARM64
    if head[0x30:0x38] == RISCV_MAGIC:
        return Arch.RISCV64
    return None


def parse(path: Path, data: bytes) -> ImageHeader:
    arch = identify(data)
    if arch is None:
        raise ImageError(path, "not an arm64/RISC-V Image: no header magic at 0x38/0x30")
    if len(data) < HEADER_SIZE:
        raise ImageError(path, f"truncated Image header: {len(data)} of {HEADER_SIZE} bytes")
    text_offset, image_size, flags = struct.unpack_from("<QQQ", data, 8)
    if arch is Arch.ARM64 and image_size == 0:
        # booting.rst: image_size 0 means a kernel older than 3.17, whose text_offset cannot be trusted.
        raise ImageError(path, "arm64 Image header has image_size 0 (a pre-3.17 kernel): unsupported")
    return ImageHeader(arch=arch, text_offset=text_offset, image_size=image_size, flags=flags)
