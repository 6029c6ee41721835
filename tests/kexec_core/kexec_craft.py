"""Builders for crafted kernel and initrd images: just the headers the inspectors read, with knobs to break them."""

from __future__ import annotations

import gzip
import lzma
import struct
import subprocess
from pathlib import Path


def bzimage(
    *,
    protocol: int = 0x020F,
    loadflags: int = 0x01,
    relocatable: int = 1,
    xloadflags: int = 0x03,
    cmdline_size: int = 2047,
    init_size: int = 32 * 1024 * 1024,
    version: bytes = b"6.6.0-test (builder@example) #1 SMP",
    setup_sects: int = 4,
    payload: bytes = b"\xfd7zXZ\x00\x00\x01",
    size: int = 64 * 1024,
) -> bytes:
    """A bzImage whose setup header follows the x86 boot protocol; the rest is zeros."""
    buf = bytearray(size)
    buf[0:2] = b"MZ"
    buf[0x1F1] = setup_sects
    struct.pack_into("<I", buf, 0x1F4, (size - (setup_sects + 1) * 512) // 16)  # syssize: all after the setup
    buf[0x1FE:0x200] = b"\x55\xaa"
    buf[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", buf, 0x206, protocol)
    version_at = 0x600
    struct.pack_into("<H", buf, 0x20E, version_at - 0x200)
    buf[version_at : version_at + len(version) + 1] = version + b"\0"
    buf[0x211] = loadflags
    buf[0x234] = relocatable
    struct.pack_into("<H", buf, 0x236, xloadflags)
    struct.pack_into("<I", buf, 0x238, cmdline_size)
    payload_offset = 0x100
    struct.pack_into("<II", buf, 0x248, payload_offset, len(payload))
    struct.pack_into("<I", buf, 0x260, init_size)
    at = (setup_sects + 1) * 512 + payload_offset
    buf[at : at + len(payload)] = payload
    return bytes(buf)


def arm64_image(*, image_size: int = 0x2000000, flags: int = 0b0010, size: int = 4096, efi: bool = True) -> bytes:
    """An arm64 Image header (booting.rst): code0/code1, text_offset, image_size, flags, magic at 0x38."""
    buf = bytearray(size)
    if efi:
        buf[0:2] = b"MZ"
    struct.pack_into("<QQQ", buf, 8, 0, image_size, flags)
    buf[0x38:0x3C] = b"ARM\x64"
    return bytes(buf)


def riscv_image(size: int = 4096) -> bytes:
    buf = bytearray(size)
    struct.pack_into("<QQQ", buf, 8, 0x200000, 0x1000000, 0)
    buf[0x30:0x38] = b"RISCV\0\0\0"
    buf[0x38:0x3C] = b"RSC\x05"
    return bytes(buf)


def pe(
    sections: list[tuple[str, bytes]],
    *,
    machine: int = 0x8664,
    zboot: str | None = None,
    zboot_size: int | None = None,
    truncate: int = 0,
) -> bytes:
    """A PE file: DOS header (optionally the EFI zboot one), PE signature, COFF header, no optional header, sections."""
    pe_off = 0x80
    table = pe_off + 24
    data_at = (table + 40 * len(sections) + 0x1FF) & ~0x1FF
    head = bytearray(data_at)
    head[0:2] = b"MZ"
    if zboot is not None:
        head[4:8] = b"zimg"
        # zboot-header.S: the payload is the first section's data here (in real images, inside .data).
        struct.pack_into("<II", head, 8, data_at, len(sections[0][1]) if zboot_size is None else zboot_size)
        head[24 : 24 + len(zboot)] = zboot.encode()
    struct.pack_into("<I", head, 0x3C, pe_off)
    head[pe_off : pe_off + 4] = b"PE\0\0"
    struct.pack_into("<HH", head, pe_off + 4, machine, len(sections))
    struct.pack_into("<H", head, pe_off + 20, 0)
    body = bytearray()
    for i, (name, content) in enumerate(sections):
        entry = table + 40 * i
        head[entry : entry + 8] = name.encode().ljust(8, b"\0")
        struct.pack_into("<IIII", head, entry + 8, len(content), 0x1000 * (i + 1), len(content), data_at + len(body))
        body += content
    out = bytes(head + body)
    return out[: len(out) - truncate] if truncate else out


def elf64(*, machine: int = 62, e_type: int = 2, segments: int = 2, entry: int = 0x1000000) -> bytes:
    """A little-endian ELF64 with `segments` PT_LOAD program headers, each 0x100 bytes of file data."""
    ehsize, phentsize = 64, 56
    phoff = ehsize
    data_at = phoff + phentsize * segments
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header += struct.pack(
        "<HHIQQQIHHHHHH", e_type, machine, 1, entry, phoff, 0, 0, ehsize, phentsize, segments, 64, 0, 0
    )
    phdrs = b""
    for i in range(segments):
        off = data_at + 0x100 * i
        addr = 0x1000000 + 0x200000 * i
        phdrs += struct.pack("<IIQQQQQQ", 1, 5, off, 0xFFFFFFFF80000000 + addr, addr, 0x100, 0x200000, 0x1000)
    return header + phdrs + bytes(0x100 * segments)


def newc(name: str, content: bytes) -> bytes:
    """One file in a newc cpio archive plus the trailer (init/initramfs.c reads this format)."""

    def entry(n: str, data: bytes, mode: int) -> bytes:
        nb = n.encode() + b"\0"
        fields = [1, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0]
        hdr = b"070701" + b"".join(f"{v:08x}".encode() for v in fields) + nb
        hdr += b"\0" * (-len(hdr) % 4)
        return hdr + data + b"\0" * (-len(data) % 4)

    return entry(name, content, 0o100644) + entry("TRAILER!!!", b"", 0)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def gz(data: bytes) -> bytes:
    # No timestamp: the bytes (and the test ids made from them) are the same in every xdist worker.
    return gzip.compress(data, mtime=0)


def xz(data: bytes) -> bytes:
    return lzma.compress(data)


def zst(data: bytes) -> bytes:
    """zstd by its program (no zstd module in the 3.11 standard library); it writes Frame_Content_Size."""
    return subprocess.run(["zstd", "-q", "-1", "-c"], input=data, capture_output=True, check=True).stdout
