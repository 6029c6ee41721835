"""Initrd checks: the file exists, is readable and non-empty, and starts like something the kernel unpacks.

The kernel's initramfs unpacker (init/initramfs.c) takes cpio archives in the "newc" (070701) or "crc" (070702)
format, compressed with any of lib/decompress.c's formats, and concatenated. Old "odc" (070707) cpio is not
unpacked by the kernel; inspection says so rather than refusing, since it may be an old-style initrd image.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kexec_core.compress import Compression
from kexec_core.decompress import peek_is_final
from kexec_core.errors import ImageError
from kexec_core.fileio import open_regular, size_of


class InitrdFormat(enum.StrEnum):
    CPIO_NEWC = "cpio (newc)"
    CPIO_CRC = "cpio (newc with crc)"
    CPIO_ODC = "cpio (odc)"
    COMPRESSED = "compressed"
    UNKNOWN = "unknown"

    @classmethod
    def from_head(cls, head: bytes) -> InitrdFormat:
        magics = {b"070701": cls.CPIO_NEWC, b"070702": cls.CPIO_CRC, b"070707": cls.CPIO_ODC}
        if head[:6] in magics:
            return magics[head[:6]]
        if Compression.identify(head):
            return cls.COMPRESSED
        return cls.UNKNOWN

    @property
    def kernel_unpacks(self) -> bool:
        return self in (InitrdFormat.CPIO_NEWC, InitrdFormat.CPIO_CRC, InitrdFormat.COMPRESSED)


@dataclass(frozen=True)
class InitrdInfo:
    path: Path
    size: int
    format: InitrdFormat
    compression: Compression | None = None
    inner: InitrdFormat | None = None  # what the compressed data starts with, when it could be peeked

    def summary(self) -> str:
        if self.compression:
            inside = f" {self.inner}" if self.inner else ""
            return f"{self.compression}-compressed{inside}, {self.size} bytes"
        return f"{self.format}, {self.size} bytes"

    @property
    def warning(self) -> str | None:
        fmt = self.inner if self.inner else self.format
        if fmt is InitrdFormat.UNKNOWN:
            return f"{self.path}: not a cpio archive (unknown format); the kernel will probably ignore it"
        if fmt is InitrdFormat.CPIO_ODC:
            return f"{self.path}: an odc cpio archive, which the kernel does not unpack (it needs newc)"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size": self.size,
            "format": str(self.format),
            "compression": str(self.compression) if self.compression else None,
            "inner": str(self.inner) if self.inner else None,
        }


def inspect_initrd(path: Path) -> InitrdInfo:
    with open_regular(path, "an initrd", "no such initrd") as f:
        try:
            head = f.read(64 * 1024)
        except OSError as err:
            raise ImageError(path, f"cannot read initrd: {err.strerror}") from None
        size = size_of(f)
    if size == 0:
        raise ImageError(path, "empty initrd (kexec_file_load rejects a zero-length initrd)")
    fmt = InitrdFormat.from_head(head)
    if fmt is not InitrdFormat.COMPRESSED:
        return InitrdInfo(path, size, fmt)
    comp = Compression.identify(head)
    assert comp is not None
    inner = None
    if comp.peekable:
        try:
            inner = InitrdFormat.from_head(comp.peek(path, head))
        except ImageError:
            if peek_is_final(comp):
                raise
            # The start alone may not decompress (`lz4 -l`, as initramfs-tools writes, has 8 MiB blocks; bzip2
            # -9 900 KiB ones); the kernel will say if it is corrupt.
    return InitrdInfo(path, size, fmt, compression=comp, inner=inner)
