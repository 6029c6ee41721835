"""Compression formats the kernel's decompressors know (lib/decompress.c), by magic number, and a bounded peek inside.

Used for compressed kernels (Image.gz, vmlinux.xz), for a bzImage's payload, and for compressed initrds.
"""

from __future__ import annotations

import enum
import importlib
import zlib
from pathlib import Path
from types import ModuleType

from kexec_core import programs
from kexec_core.errors import ImageError

PEEK = 4096  # how much decompressed data identification needs


class Compression(enum.StrEnum):
    GZIP = "gzip"
    XZ = "xz"
    LZMA = "lzma"
    BZIP2 = "bzip2"
    ZSTD = "zstd"
    LZ4 = "lz4"
    LZO = "lzo"

    @classmethod
    def identify(cls, head: bytes) -> Compression | None:
        for magic, kind in _MAGICS:
            if head.startswith(magic):
                return kind
        return None

    def peek(self, path: Path, data: bytes) -> bytes:
        """The first PEEK decompressed bytes of `data` (the start of `path`); ImageError if it is not valid."""
        try:
            out = self._peek(data)
        except (OSError, EOFError, ValueError, zlib.error) as err:
            raise ImageError(path, f"corrupt {self} data: {err}") from None
        if not out:
            raise ImageError(path, f"corrupt {self} data: nothing decompresses from its start")
        return out

    def _peek(self, data: bytes) -> bytes:
        if self is Compression.GZIP:
            return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(data, PEEK)
        if self in (Compression.XZ, Compression.LZMA):
            lzma = _stdlib("lzma")
            assert lzma is not None  # peekable said so
            fmt = lzma.FORMAT_XZ if self is Compression.XZ else lzma.FORMAT_ALONE
            try:
                return bytes(lzma.LZMADecompressor(format=fmt).decompress(data, PEEK))
            except lzma.LZMAError as err:
                raise ValueError(str(err)) from None
        if self is Compression.BZIP2:
            bz2 = _stdlib("bz2")
            assert bz2 is not None
            return bytes(bz2.BZ2Decompressor().decompress(data, PEEK))
        # zstd, lz4 and lzo have no module in the standard library: use their command-line tools when present.
        tool = programs.find([{Compression.ZSTD: "zstd", Compression.LZ4: "lz4", Compression.LZO: "lzop"}[self]])
        if tool is None:
            return b""
        out = bytearray()

        def keep(chunk: bytes) -> None:
            out.extend(chunk)
            if len(out) >= PEEK:
                raise _Enough

        with programs.bytes_file(data) as stdin:
            try:
                programs.run([tool, "-d", "-c"], stdin=stdin, sink=keep, timeout=30)
            except _Enough:
                pass
            except programs.ProgramError as err:
                if not out:  # the start decompressed is all a peek wants; the rest of the file is not here
                    raise ValueError(str(err)) from None
        return bytes(out[:PEEK])

    @property
    def peekable(self) -> bool:
        """Whether this machine can look inside: the payload ships without bz2 (and may lack the tools)."""
        module = {Compression.XZ: "lzma", Compression.LZMA: "lzma", Compression.BZIP2: "bz2"}.get(self)
        if module is not None:
            return _stdlib(module) is not None
        tool = {Compression.ZSTD: "zstd", Compression.LZ4: "lz4", Compression.LZO: "lzop"}.get(self)
        return tool is None or programs.find([tool]) is not None


class _Enough(Exception):
    """A peek has its PEEK bytes: stop the program."""


def _stdlib(name: str) -> ModuleType | None:
    # Imported on use: the payload trims the standard library, and a missing decompressor must only mean
    # "cannot look inside", never an ImportError in the middle of a boot.
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_MAGICS: list[tuple[bytes, Compression]] = [
    (b"\x1f\x8b", Compression.GZIP),
    (b"\x1f\x9e", Compression.GZIP),  # old gzip, as lib/decompress.c accepts
    (b"\xfd7zXZ\x00", Compression.XZ),
    (b"\x5d\x00\x00", Compression.LZMA),
    (b"BZh", Compression.BZIP2),
    (b"\x28\xb5\x2f\xfd", Compression.ZSTD),
    (b"\x02\x21\x4c\x18", Compression.LZ4),  # legacy frame, what the kernel's lz4 uses
    (b"\x04\x22\x4d\x18", Compression.LZ4),  # lz4 frame format
    (b"\x89LZO\x00\r\n\x1a\n", Compression.LZO),
]
