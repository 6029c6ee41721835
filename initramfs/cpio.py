"""A deterministic writer for the cpio "newc" format the Linux kernel unpacks as an initramfs, and its compressors.

Format: Documentation/driver-api/early-userspace/buffer-format.rst in the kernel tree. Each member is a 110-byte
ASCII header ("070701" and 13 eight-digit hex fields), the NUL-terminated name padded to 4 bytes, then the data padded
to 4 bytes; the archive ends with a member named "TRAILER!!!".

Determinism: members are sorted by path components (so a directory precedes its contents), inode numbers are assigned
in that order, owners are 0:0, every mtime is the same fixed value, and parent directories that were not listed are
added as 0755 directories. Two archives of the same entries are byte-identical.

Compression: the kernel's xz decoder only accepts the CRC32 (or no) integrity check (lib/xz/Kconfig, and
Documentation/staging/xz.rst: "xz --check=crc32"), so xz output uses CHECK_CRC32; gzip output has mtime 0.
"""

from __future__ import annotations

import enum
import gzip
import lzma
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from initramfs.run import run

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
_COPY_CHUNK = 1 << 20


class CpioError(Exception):
    """An entry cannot be archived (bad path, duplicate, unreadable source)."""


@dataclass(frozen=True)
class CpioEntry:
    """One archive member. `path` is relative to the archive root ("bin/sh"); `mode` includes the file type bits.

    A regular file's content is `data`, or the file at `source` read at write time (for large files). A symlink's
    target is `target`. A device's numbers are `rdev` (major, minor).
    """

    path: str
    mode: int
    data: bytes | None = None
    source: Path | None = None
    target: str | None = None
    rdev: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        norm = normalize_path(self.path)
        if norm != self.path:
            object.__setattr__(self, "path", norm)
        kind = stat.S_IFMT(self.mode)
        if kind == stat.S_IFREG:
            if (self.data is None) == (self.source is None):
                raise CpioError(f"{self.path}: a regular file needs exactly one of data or source")
        elif kind == stat.S_IFLNK:
            if not self.target:
                raise CpioError(f"{self.path}: a symlink needs a target")
        elif kind not in (stat.S_IFDIR, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
            raise CpioError(f"{self.path}: unsupported file type {oct(kind)}")

    @classmethod
    def file(cls, path: str, data: bytes | None = None, *, source: Path | None = None, perm: int = 0o644) -> CpioEntry:
        return cls(path, stat.S_IFREG | perm, data=data, source=source)

    @classmethod
    def directory(cls, path: str, perm: int = 0o755) -> CpioEntry:
        return cls(path, stat.S_IFDIR | perm)

    @classmethod
    def symlink(cls, path: str, target: str) -> CpioEntry:
        return cls(path, stat.S_IFLNK | 0o777, target=target)

    @classmethod
    def char_device(cls, path: str, major: int, minor: int, perm: int = 0o600) -> CpioEntry:
        return cls(path, stat.S_IFCHR | perm, rdev=(major, minor))

    @classmethod
    def block_device(cls, path: str, major: int, minor: int, perm: int = 0o600) -> CpioEntry:
        return cls(path, stat.S_IFBLK | perm, rdev=(major, minor))

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def size(self) -> int:
        """The member's data size in the archive."""
        if self.data is not None:
            return len(self.data)
        if self.source is not None:
            return self.source.stat().st_size
        if self.target is not None:
            return len(self.target.encode())
        return 0

    def _write_data(self, out: BinaryIO) -> int:
        if self.data is not None:
            out.write(self.data)
            return len(self.data)
        if self.source is not None:
            try:
                with self.source.open("rb") as f:
                    written = 0
                    while chunk := f.read(_COPY_CHUNK):
                        out.write(chunk)
                        written += len(chunk)
                    return written
            except OSError as e:
                raise CpioError(f"{self.path}: cannot read {self.source}: {e.strerror}") from None
        if self.target is not None:
            raw = self.target.encode()
            out.write(raw)
            return len(raw)
        return 0


def normalize_path(path: str) -> str:
    """ "/usr//lib/./x" -> "usr/lib/x"; rejects empty paths and "..", which the kernel would resolve outside root."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise CpioError(f"invalid archive path {path!r}")
    return "/".join(parts)


def _sort_key(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


def complete_entries(entries: Iterable[CpioEntry]) -> list[CpioEntry]:
    """The entries sorted, with implied parent directories added; raises CpioError on a duplicate path."""
    by_path: dict[str, CpioEntry] = {}
    for entry in entries:
        if entry.path in by_path:
            if by_path[entry.path] == entry:
                continue
            raise CpioError(f"{entry.path}: listed twice with different contents")
        by_path[entry.path] = entry
    for path in list(by_path):
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            existing = by_path.get(parent)
            if existing is None:
                by_path[parent] = CpioEntry.directory(parent)
            elif not existing.is_dir:
                raise CpioError(f"{path}: parent {parent} is not a directory")
    return [by_path[p] for p in sorted(by_path, key=_sort_key)]


def _header(ino: int, entry: CpioEntry | None, mtime: int, size: int, name: bytes) -> bytes:
    mode, nlink, rdev = (0, 1, (0, 0)) if entry is None else (entry.mode, 2 if entry.is_dir else 1, entry.rdev)
    fields = (ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
    return MAGIC + b"".join(b"%08X" % f for f in fields)


def _pad(out: BinaryIO, written: int) -> None:
    if written % 4:
        out.write(b"\0" * (4 - written % 4))


def write_cpio(entries: Iterable[CpioEntry], out: BinaryIO, *, mtime: int = 0) -> int:
    """Writes a complete newc archive of `entries` (plus implied parents) to `out`; returns the bytes written."""
    start = out.tell() if out.seekable() else 0
    total = 0
    for ino, entry in enumerate(complete_entries(entries), start=1):
        name = entry.path.encode()
        size = entry.size
        head = _header(ino, entry, mtime, size, name) + name + b"\0"
        out.write(head)
        _pad(out, len(head))
        written = entry._write_data(out)
        if written != size:
            raise CpioError(f"{entry.path}: {entry.source} changed size while archiving")
        _pad(out, written)
        total += len(head) + (-len(head) % 4) + written + (-written % 4)
    trailer_name = TRAILER.encode()
    head = _header(0, None, 0, 0, trailer_name) + trailer_name + b"\0"
    out.write(head)
    _pad(out, len(head))
    total += len(head) + (-len(head) % 4)
    if out.seekable():
        assert out.tell() - start == total
    return total


class Compression(enum.StrEnum):
    """How the archive is compressed; every method here is one the kernel can unpack (CONFIG_RD_*)."""

    XZ = "xz"
    GZIP = "gzip"
    ZSTD = "zstd"
    NONE = "none"

    @property
    def suffix(self) -> str:
        return {"xz": ".xz", "gzip": ".gz", "zstd": ".zst", "none": ""}[self.value]

    def compress(self, data: bytes) -> bytes:
        """Deterministic: the same input gives the same bytes."""
        match self:
            case Compression.XZ:
                # LZMA2 only (no BCJ filter, which the kernel decoder may lack), CRC32 check as the kernel requires.
                filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 8 << 20}]
                return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, filters=filters)
            case Compression.GZIP:
                return gzip.compress(data, compresslevel=9, mtime=0)
            case Compression.ZSTD:
                # No zstd module in the 3.11 standard library; the zstd tool is deterministic for the same level.
                if shutil.which("zstd") is None:
                    raise CpioError("zstd compression needs the zstd program (Debian package zstd)")
                return run(["zstd", "-q", "-19", "-c", "-"], input=data, capture=True).stdout
            case Compression.NONE:
                return data
