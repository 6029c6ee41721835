"""x86 bzImage: the real-mode setup header, per the Linux x86 boot protocol (Documentation/arch/x86/boot.rst).

Offsets are those of the header in the file (the header starts at 0x1f1). Fields newer than the image's protocol
version are reported as absent rather than read from what is then padding or code.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kexec_core.compress import Compression
from kexec_core.errors import ImageError

HEADER_MAGIC = b"HdrS"
HEADER_END = 0x270  # through kernel_info_offset (protocol 2.15) and a little beyond
LOADED_HIGH = 0x01  # loadflags bit 0: protected-mode code at 0x100000 (a bzImage, not a zImage)
DEFAULT_CMDLINE_SIZE = 255  # protocols before 2.06


class XLoadFlag(enum.IntFlag):
    KERNEL_64 = 1 << 0
    CAN_BE_LOADED_ABOVE_4G = 1 << 1
    EFI_HANDOVER_32 = 1 << 2
    EFI_HANDOVER_64 = 1 << 3
    EFI_KEXEC = 1 << 4
    FIVE_LEVEL = 1 << 5
    FIVE_LEVEL_ENABLED = 1 << 6
    MEM_ENCRYPTION = 1 << 7


@dataclass(frozen=True)
class SetupHeader:
    protocol: tuple[int, int]
    setup_sects: int
    syssize: int  # the protected-mode code's size in 16-byte paragraphs
    loadflags: int
    version_string: str | None
    relocatable: bool
    xloadflags: XLoadFlag
    cmdline_size: int
    init_size: int | None
    handover_offset: int | None
    payload_offset: int | None
    payload_length: int | None
    payload_magic: bytes  # first bytes of the compressed payload, to name its compressor

    @property
    def protocol_str(self) -> str:
        return f"{self.protocol[0]}.{self.protocol[1]:02d}"

    @property
    def is_bzimage(self) -> bool:
        return bool(self.loadflags & LOADED_HIGH)

    @property
    def efi_handover(self) -> bool:
        return bool(self.xloadflags & (XLoadFlag.EFI_HANDOVER_32 | XLoadFlag.EFI_HANDOVER_64))

    @property
    def setup_size(self) -> int:
        """Bytes of real-mode setup code before the protected-mode kernel: (setup_sects + 1) sectors."""
        return (self.setup_sects + 1) * 512

    def truncation(self, file_size: int) -> str | None:
        """What the header promises that a file of `file_size` bytes does not hold, or None when it all fits."""
        if self.setup_size > file_size:
            return f"the setup code ({self.setup_sects} setup sectors) ends at byte {self.setup_size}"
        end = self.setup_size + self.syssize * 16
        if end > file_size:
            return f"the protected-mode kernel (syssize {self.syssize} paragraphs) ends at byte {end}"
        if self.payload_offset is not None and self.payload_length is not None:
            end = self.setup_size + self.payload_offset + self.payload_length
            if end > file_size:
                return (
                    f"the compressed kernel (payload_offset {self.payload_offset} + payload_length "
                    f"{self.payload_length}) ends at byte {end}"
                )
        return None

    def kexec_file_problems(self) -> list[str]:
        """Why x86_64 kexec_file_load (the bzImage64 loader) would reject this image; empty if it would not."""
        problems = []
        if self.protocol < (2, 12):
            problems.append(f"boot protocol {self.protocol_str} is older than 2.12")
        if not self.is_bzimage:
            problems.append("a zImage (loadflags without LOADED_HIGH), not a bzImage")
        if not self.relocatable:
            problems.append("not relocatable")
        if not self.xloadflags & XLoadFlag.KERNEL_64:
            problems.append("no 64-bit entry point (XLF_KERNEL_64 clear: a 32-bit kernel)")
        if not self.xloadflags & XLoadFlag.CAN_BE_LOADED_ABOVE_4G:
            problems.append("cannot be loaded above 4 GiB (XLF_CAN_BE_LOADED_ABOVE_4G clear)")
        return problems

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol_str,
            "version": self.version_string,
            "setup_sects": self.setup_sects,
            "syssize": self.syssize,
            "payload_offset": self.payload_offset,
            "payload_length": self.payload_length,
            "relocatable": self.relocatable,
            "xloadflags": [f.name for f in XLoadFlag if f in self.xloadflags],
            "cmdline_size": self.cmdline_size,
            "init_size": self.init_size,
            "efi_handover": self.efi_handover,
            "handover_offset": self.handover_offset,
            "payload_compression": str(self.payload_compression) if self.payload_compression else None,
        }

    @property
    def payload_compression(self) -> Compression | None:
        return Compression.identify(self.payload_magic)


def has_header(head: bytes) -> bool:
    return head[0x202:0x206] == HEADER_MAGIC


def parse(path: Path, data: bytes) -> SetupHeader:
    """Parse the setup header from the start of the file (at least HEADER_END bytes, or the whole file)."""
    if len(data) < 0x206 or not has_header(data):
        raise ImageError(path, "not an x86 bzImage: no 'HdrS' setup header magic at offset 0x202")
    if len(data) < HEADER_END:
        raise ImageError(path, f"truncated bzImage: {len(data)} bytes, the setup header needs {HEADER_END}")
    if data[0x1FE:0x200] != b"\x55\xaa":
        raise ImageError(path, "malformed bzImage: boot_flag at 0x1fe is not 0xAA55")

    def u8(off: int) -> int:
        return data[off]

    def u16(off: int) -> int:
        return int(struct.unpack_from("<H", data, off)[0])

    def u32(off: int) -> int:
        return int(struct.unpack_from("<I", data, off)[0])

    raw_version = u16(0x206)
    protocol = (raw_version >> 8, raw_version & 0xFF)
    if protocol < (2, 0):
        raise ImageError(path, f"unsupported boot protocol {protocol[0]}.{protocol[1]:02d} (2.00 or later needed)")
    setup_sects = u8(0x1F1) or 4  # 0 means 4, for very old kernels

    version_string = None
    kv = u16(0x20E)
    if kv:
        start = kv + 0x200
        end = data.find(b"\0", start, start + 256)
        if 0 <= start < len(data) and end > start:
            version_string = data[start:end].decode("ascii", "replace")

    def since(minor: int, value: int) -> int | None:
        return value if protocol >= (2, minor) else None

    payload_offset = since(8, u32(0x248))
    payload_magic = b""
    if payload_offset is not None:
        at = (setup_sects + 1) * 512 + payload_offset
        payload_magic = data[at : at + 8]
    return SetupHeader(
        protocol=protocol,
        setup_sects=setup_sects,
        syssize=u32(0x1F4) if protocol >= (2, 4) else u16(0x1F4),
        loadflags=u8(0x211),
        version_string=version_string,
        relocatable=protocol >= (2, 5) and bool(u8(0x234)),
        xloadflags=XLoadFlag(u16(0x236)) if protocol >= (2, 12) else XLoadFlag(0),
        cmdline_size=u32(0x238) if protocol >= (2, 6) else DEFAULT_CMDLINE_SIZE,
        init_size=since(10, u32(0x260)),
        handover_offset=since(11, u32(0x264)),
        payload_offset=payload_offset,
        payload_length=since(8, u32(0x24C)),
        payload_magic=payload_magic,
    )
