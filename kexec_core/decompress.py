"""Whole-kernel decompression in user space, into an anonymous tmpfs file (memfd_create(2)), with a bomb guard.

kexec_file_load takes only an uncompressed kernel (arm64 kexec_image.c and x86 kexec-bzimage64.c check the header of
the file they are given), so `Image.gz`, `vmlinuz.zst`, EFI zboot images and the like are decompressed here first.

Formats and where each says how big the result is (the cap the output is held to when it says):
- gzip (RFC 1952): ISIZE, the last 4 bytes of the member (size mod 2^32).
- xz (.xz file format 1.2): the stream index, found through the stream footer, lists each block's uncompressed size.
- lzma "alone" (LZMA SDK .lzma): the 8-byte uncompressed size at offset 5, unless all ones (unknown).
- zstd (RFC 8878): Frame_Content_Size in the frame header, when the compressor wrote it.
- lz4 (lz4 frame format 1.6.x): Content Size when the FLG byte says so; the legacy frame the kernel uses has none.
- bzip2: no size anywhere.
- EFI zboot (drivers/firmware/efi/libstub/Makefile.zboot): for every compressor but gzip a le32 uncompressed size
  follows the payload (`*_with_size`); for gzip it is ISIZE.
- an arm64/RISC-V Image inside: its header's image_size bounds the file (image_size includes the bss).

Without a declared size the output is held to a limit: DEFAULT_LIMIT (or the caller's), and never more than half of
MemAvailable, since a tmpfs file is memory. gzip, xz and lzma use the standard library; bzip2 the standard library
or the `bunzip2` program; zstd, lz4 and lzo their programs (`zstd`, `lz4`, `lzop`), where present.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kexec_core import programs
from kexec_core.compress import Compression, _stdlib
from kexec_core.errors import ImageError
from kexec_core.memory import MEMINFO, mem_available

MIB = 1024 * 1024
DEFAULT_LIMIT = 512 * MIB  # the largest kernels (x86 vmlinux with debug info stripped) are under 100 MiB
CHUNK = MIB  # input read and output produced per step
TOOL_TIMEOUT = 300  # seconds a decompressor program may take after its input is consumed: a bound, not expected
TOOLS = {
    Compression.ZSTD: ("zstd",),
    Compression.LZ4: ("lz4",),
    Compression.LZO: ("lzop",),
    Compression.BZIP2: ("bunzip2", "bzip2"),
}


@dataclass(frozen=True)
class Source:
    """Compressed bytes: [offset, offset + length) of the open file `file`, which is `path` (for messages)."""

    path: Path
    file: BinaryIO
    offset: int
    length: int

    def pread(self, at: int, size: int) -> bytes:
        """`size` bytes at `at` within the range (fewer at its end)."""
        size = max(0, min(size, self.length - at))
        try:
            return os.pread(self.file.fileno(), size, self.offset + at)
        except OSError as err:
            raise ImageError(self.path, f"cannot read: {err.strerror}") from None


@dataclass(frozen=True)
class Cap:
    """The most bytes the output may have, and what said so (for messages)."""

    size: int
    source: str
    declared: bool  # the file declared it (a mismatch is corruption), rather than a limit we set

    def describe(self) -> str:
        return f"{self.size} bytes ({self.source})"


@dataclass(frozen=True)
class Decompressed:
    """A kernel decompressed into an anonymous tmpfs file; `file` stays open as long as this object lives."""

    file: BinaryIO
    size: int
    compression: Compression
    cap: Cap
    program: str = ""  # what decompressed it: a program's path or the Python module

    @property
    def name(self) -> str:
        try:
            return os.readlink(f"/proc/self/fd/{self.file.fileno()}")
        except (OSError, ValueError):
            return "memfd:bootmenu-kernel"

    def close(self) -> None:
        self.file.close()


def available(comp: Compression) -> str | None:
    """None when this machine can decompress `comp`, else why not (for a message)."""
    if in_stdlib(comp) or _tool(comp) is not None:
        return None
    if comp not in TOOLS:
        return f"the Python module for {comp} is missing"
    return f"no {comp} decompressor here: needs the {' or '.join(TOOLS[comp])} program"


def _tool(comp: Compression) -> str | None:
    return programs.find(TOOLS.get(comp, ()))


def decompressor(comp: Compression) -> str:
    """What decompresses `comp` here, for the plan: the program's path, or the standard library module."""
    if in_stdlib(comp):
        module = {Compression.GZIP: "zlib", Compression.BZIP2: "bz2"}.get(comp, "lzma")
        return f"Python's {module} module"
    return _tool(comp) or "nothing"


def declared_size(comp: Compression, src: Source) -> tuple[int, str] | None:
    """The uncompressed size the compressed data declares, and where it says so; None when it does not."""
    head = src.pread(0, 64)
    if comp is Compression.GZIP and src.length >= 18:
        return struct.unpack("<I", src.pread(src.length - 4, 4))[0], "the gzip ISIZE trailer"
    if comp is Compression.LZMA and len(head) >= 13:
        (size,) = struct.unpack_from("<Q", head, 5)
        return None if size == (1 << 64) - 1 else (size, "the lzma header")
    if comp is Compression.ZSTD:
        size = _zstd_content_size(head)
        return None if size is None else (size, "the zstd frame header")
    if comp is Compression.LZ4 and head.startswith(b"\x04\x22\x4d\x18") and len(head) >= 15 and head[4] & 0x08:
        return struct.unpack_from("<Q", head, 6)[0], "the lz4 frame header"
    if comp is Compression.XZ:
        xz = _xz_index_size(src)
        return None if xz is None else (xz, "the xz index")
    return None


def _zstd_content_size(head: bytes) -> int | None:
    if len(head) < 6:
        return None
    fhd = head[4]
    fcs_flag, single, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    at = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
    width = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if width == 0 or len(head) < at + width:
        return None
    value = int.from_bytes(head[at : at + width], "little")
    return value + 256 if width == 2 else value


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(9):  # xz: at most 9 bytes per number
        if at + i >= len(data):
            raise ValueError("truncated number")
        byte = data[at + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, at + i + 1
    raise ValueError("number too long")


def _xz_index_size(src: Source) -> int | None:
    """Sum of the blocks' uncompressed sizes from the last stream's index; None if there is no clean footer."""
    length = src.length
    if length < 32:
        return None
    footer = src.pread(length - 12, 12)
    if footer[10:12] != b"YZ":
        return None  # stream padding or something appended: no size, the limit applies
    backward = (struct.unpack_from("<I", footer, 4)[0] + 1) * 4
    if backward > min(length - 24, 16 * MIB):
        return None
    index = src.pread(length - 12 - backward, backward)
    try:
        if index[:1] != b"\0":
            return None
        count, at = _varint(index, 1)
        if count > backward:  # each record takes at least two bytes
            return None
        total = 0
        for _ in range(count):
            _unpadded, at = _varint(index, at)
            size, at = _varint(index, at)
            total += size
    except ValueError:
        return None
    return total


def cap_for(
    path: Path,
    comp: Compression,
    declared: tuple[int, str] | None,
    bound: tuple[int, str] | None = None,
    *,
    limit: int | None = None,
    meminfo: Path = MEMINFO,
) -> Cap:
    """The cap on the output; ImageError when the declared size is already over the limit.

    `declared` is the exact size the data says it has; `bound` an upper bound from elsewhere (an Image's image_size).
    """
    chosen = limit if limit is not None else DEFAULT_LIMIT
    source = f"the decompression limit of {chosen // MIB} MiB"
    available_mem = mem_available(meminfo)
    if available_mem is not None and available_mem // 2 < chosen:
        chosen, source = available_mem // 2, f"half of MemAvailable in {meminfo}, {available_mem // 2 // MIB} MiB"
    if declared is None:
        if bound is not None and bound[0] < chosen:
            return Cap(bound[0], bound[1], declared=False)
        return Cap(chosen, source, declared=False)
    size, where = declared
    if bound is not None and size > bound[0]:
        raise ImageError(path, f"{comp} data declares {size} bytes uncompressed ({where}), more than {bound[1]}")
    if size > chosen:
        raise ImageError(
            path,
            f"{comp} data declares {size} bytes uncompressed ({where}), more than {source}: refusing to decompress "
            "it (a corrupt file or a decompression bomb)",
        )
    return Cap(size, where, declared=True)


class _Sink:
    """Counts what is written and stops at the cap."""

    def __init__(self, path: Path, comp: Compression, out: BinaryIO, cap: Cap) -> None:
        self.path, self.comp, self.out, self.cap = path, comp, out, cap
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.cap.size:
            raise ImageError(
                self.path,
                f"{self.comp} data decompresses to more than {self.cap.describe()}: stopped there "
                f"({'a corrupt file' if self.cap.declared else 'a corrupt file or a decompression bomb'})",
            )
        try:
            self.out.write(data)
        except OSError as err:
            raise ImageError(self.path, f"cannot write the decompressed kernel to tmpfs: {err.strerror}") from None


def _chunks(src: Source) -> Iterator[bytes]:
    at = 0
    while at < src.length:
        data = src.pread(at, CHUNK)
        if not data:
            end = src.offset + src.length
            raise ImageError(
                src.path, f"file ends at byte {src.offset + at}, inside its compressed data (which ends at {end})"
            )
        at += len(data)
        yield data


def _stdlib_decompressor(comp: Compression) -> tuple[Callable[[bytes, int], bytes], Callable[[], bool]]:
    """A (decompress(data, max_length), finished()) pair over the standard library's incremental decompressors."""
    if comp is Compression.GZIP:
        z = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        pending = [b""]

        def gz(data: bytes, max_length: int) -> bytes:
            out = z.decompress(pending[0] + data, max_length)
            pending[0] = z.unconsumed_tail
            return out

        return gz, lambda: z.eof and not pending[0]
    if comp in (Compression.XZ, Compression.LZMA):
        lzma = _stdlib("lzma")
        assert lzma is not None
        fmt = lzma.FORMAT_XZ if comp is Compression.XZ else lzma.FORMAT_ALONE
        d = lzma.LZMADecompressor(format=fmt)
    else:
        bz2 = _stdlib("bz2")
        assert bz2 is not None
        d = bz2.BZ2Decompressor()

    def step(data: bytes, max_length: int) -> bytes:
        if d.eof:
            return b""
        return bytes(d.decompress(data, max_length))

    # eof is set only once all output has been returned (liblzma and libbz2 report the stream end after flushing).
    return step, lambda: bool(d.eof)


def _run_stdlib(src: Source, comp: Compression, sink: _Sink) -> None:
    path = src.path
    step, finished = _stdlib_decompressor(comp)
    try:
        for data in _chunks(src):
            out = step(data, CHUNK)
            while out:
                sink.write(out)
                out = step(b"", CHUNK)
            if finished():
                return  # what follows the stream (a size_append word, padding) is not kernel
    except ImageError:
        raise  # over the cap, or a read error: already a whole message
    except (OSError, EOFError, ValueError, zlib.error) as err:
        raise ImageError(path, f"corrupt {comp} data after {sink.size} decompressed bytes: {err}") from None
    except Exception as err:  # lzma.LZMAError is an Exception subclass from a module that may be absent
        raise ImageError(path, f"corrupt {comp} data after {sink.size} decompressed bytes: {err}") from None
    if not finished():
        raise ImageError(path, f"truncated {comp} data: the stream ends early, after {sink.size} decompressed bytes")


def _run_tool(src: Source, comp: Compression, sink: _Sink) -> None:
    tool = _tool(comp)
    assert tool is not None
    with _range_file(src) as stdin:
        try:
            # The sink raises ImageError past the cap, which stops and kills the program (programs.run).
            programs.run([tool, "-d", "-c"], stdin=stdin, sink=sink.write, timeout=TOOL_TIMEOUT)
        except programs.ProgramError as err:
            raise ImageError(src.path, f"corrupt {comp} data: {err}") from None


@contextlib.contextmanager
def _range_file(src: Source) -> Iterator[BinaryIO]:
    """A file at offset 0 holding just the compressed range, for a program's stdin: the file itself if it is all."""
    if src.offset == 0 and os.fstat(src.file.fileno()).st_size == src.length:
        src.file.seek(0)
        yield src.file
        return
    fd = os.memfd_create("bootmenu-compressed", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as f:
        for data in _chunks(src):
            f.write(data)
        f.seek(0)
        yield f


def decompress(
    src: Source,
    comp: Compression,
    *,
    declared: tuple[int, str] | None = None,
    bound: tuple[int, str] | None = None,
    limit: int | None = None,
    meminfo: Path = MEMINFO,
) -> Decompressed:
    """Decompress `src` into a memfd. ImageError when it cannot be (the message names the file and the cause)."""
    path = src.path
    why = available(comp)
    if why is not None:
        raise ImageError(path, f"cannot decompress this {comp}-compressed kernel: {why}")
    if declared is None:
        declared = declared_size(comp, src)
    cap = cap_for(path, comp, declared, bound, limit=limit, meminfo=meminfo)
    fd = os.memfd_create("bootmenu-kernel", os.MFD_CLOEXEC)
    out = os.fdopen(fd, "w+b")
    try:
        sink = _Sink(path, comp, out, cap)
        if in_stdlib(comp):
            _run_stdlib(src, comp, sink)
        else:
            _run_tool(src, comp, sink)
        if cap.declared and sink.size != cap.size:
            raise ImageError(
                path, f"{comp} data decompressed to {sink.size} bytes, but {cap.source} says {cap.size}: corrupt"
            )
        if sink.size == 0:
            raise ImageError(path, f"{comp} data decompresses to nothing")
        out.flush()
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return Decompressed(file=out, size=sink.size, compression=comp, cap=cap, program=decompressor(comp))


def peek_is_final(comp: Compression) -> bool:
    """Whether a failed peek at the first bytes means corrupt data: true for the stream formats the standard library
    decodes incrementally (gzip, xz, lzma); bzip2 (up to 900 KiB blocks), zstd and lz4 (legacy frame: 8 MiB blocks)
    may need more than the start before anything comes out."""
    return comp in (Compression.GZIP, Compression.XZ, Compression.LZMA) and in_stdlib(comp)


def in_stdlib(comp: Compression) -> bool:
    module = {Compression.GZIP: "zlib", Compression.XZ: "lzma", Compression.LZMA: "lzma", Compression.BZIP2: "bz2"}
    return comp in module and _stdlib(module[comp]) is not None
