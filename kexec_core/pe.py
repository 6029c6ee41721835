"""PE/COFF files (the Microsoft PE/COFF specification): EFI applications, unified kernel images and EFI zboot.

- A UKI (UAPI Group "Unified Kernel Image" specification) is a PE file with a `.linux` section (the kernel) and
  usually `.initrd`, `.cmdline`, `.osrel`, `.uname`.
- EFI zboot (drivers/firmware/efi/libstub/zboot-header.S) is a PE file whose DOS header carries "zimg" at offset 4,
  the payload's offset and size at 8 and 12, and the compression name at 24.
"""

from __future__ import annotations

import contextlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from kexec_core.arch import Arch
from kexec_core.errors import ImageError
from kexec_core.fileio import open_regular

MZ = b"MZ"
ZBOOT_MAGIC = b"zimg"
UKI_SECTION = ".linux"
TEXT_SECTIONS = (".cmdline", ".osrel", ".uname")


@dataclass(frozen=True)
class Section:
    name: str
    offset: int
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "offset": self.offset, "size": self.size}


@dataclass(frozen=True)
class PeInfo:
    machine: int
    arch: Arch
    sections: tuple[Section, ...]
    texts: tuple[tuple[str, str], ...]  # contents of the small text sections (.cmdline, .osrel, .uname)

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    @property
    def is_uki(self) -> bool:
        return self.section(UKI_SECTION) is not None

    def text(self, name: str) -> str | None:
        return dict(self.texts).get(name)

    @property
    def uname(self) -> str | None:
        return self.text(".uname")

    @property
    def os_pretty_name(self) -> str | None:
        for line in (self.text(".osrel") or "").splitlines():
            key, _, value = line.partition("=")
            if key == "PRETTY_NAME":
                return value.strip().strip("\"'")
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": f"{self.machine:#x}",
            "sections": [s.to_json() for s in self.sections],
            "uname": self.uname,
            "os": self.os_pretty_name,
            "cmdline": self.text(".cmdline"),
        }


@dataclass(frozen=True)
class ZbootInfo:
    compression: str
    payload_offset: int
    payload_size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "compression": self.compression,
            "payload_offset": self.payload_offset,
            "payload_size": self.payload_size,
        }


def is_pe(head: bytes) -> bool:
    return head.startswith(MZ)


def is_zboot(head: bytes) -> bool:
    return head.startswith(MZ) and head[4:8] == ZBOOT_MAGIC


def parse_zboot(path: Path, data: bytes) -> ZbootInfo:
    if len(data) < 0x40:
        raise ImageError(path, f"truncated EFI zboot header: {len(data)} of 64 bytes")
    offset, size = struct.unpack_from("<II", data, 8)
    comp = data[24:56].split(b"\0", 1)[0].decode("ascii", "replace")
    return ZbootInfo(compression=comp, payload_offset=offset, payload_size=size)


def parse(path: Path, data: bytes, file_size: int, f: BinaryIO | None = None) -> PeInfo:
    """Parse the headers and section table from `data`, the start of the file (enough to cover the headers)."""

    def need(end: int, what: str) -> None:
        if len(data) < end:
            raise ImageError(path, f"truncated PE file: the {what} ends at byte {end}, past the end of the data")

    need(0x40, "DOS header")
    (pe_off,) = struct.unpack_from("<I", data, 0x3C)
    need(pe_off + 24, "PE header")
    if data[pe_off : pe_off + 4] != b"PE\0\0":
        raise ImageError(path, f"not a PE file: 'MZ' header but no 'PE' signature at {pe_off:#x}")
    machine, nsections = struct.unpack_from("<HH", data, pe_off + 4)
    (opt_size,) = struct.unpack_from("<H", data, pe_off + 20)
    table = pe_off + 24 + opt_size
    need(table + 40 * nsections, "section table")
    sections = []
    for i in range(nsections):
        raw = data[table + 40 * i : table + 40 * (i + 1)]
        name = raw[:8].rstrip(b"\0").decode("ascii", "replace")
        vsize, _vaddr, rawsize, rawptr = struct.unpack_from("<IIII", raw, 8)
        size = min(vsize, rawsize) if vsize else rawsize
        if rawptr + size > file_size:
            raise ImageError(path, f"truncated PE file: section {name} ends at {rawptr + size}, file is {file_size}")
        sections.append(Section(name=name, offset=rawptr, size=size))
    texts = []
    with contextlib.ExitStack() as stack:
        src = f if f is not None else stack.enter_context(open_regular(path))
        for s in sections:
            if s.name in TEXT_SECTIONS and s.size <= 65536:
                raw = os.pread(src.fileno(), s.size, s.offset)
                texts.append((s.name, raw.rstrip(b"\0").decode("utf-8", "replace").strip()))
    return PeInfo(machine=machine, arch=Arch.from_pe_machine(machine), sections=tuple(sections), texts=tuple(texts))
