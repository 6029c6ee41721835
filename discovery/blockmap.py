"""Where a file's bytes live on its block device, and rewriting them there in place (GRUB's `save_env` way).

Follows grub-core/commands/loadenv.c of GRUB 2.06, which lists a grubenv file's sectors while reading it, refuses a
file whose sectors do not add up to its size ("sparse file not allowed") or overlap ("malformed file"), reads every
sector again from the disk and compares it with what the file read gave ("invalid blocklist"), and only then
writes the new block through the same sectors; the file's size and its filesystem's metadata never change.
The kernel's side: FS_IOC_FIEMAP (Documentation/filesystems/fiemap.rst), FIBMAP when a filesystem has no FIEMAP.
Extents whose bytes are not the file's bytes as stored (inline, tail-packed, compressed/encoded, encrypted,
unwritten, delayed allocation, unknown location, shared with another file) are refused like a sparse file.
After writing, the bytes are read back from the device (O_DIRECT where the device takes it) and compared.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import mmap
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# <linux/fs.h> and <linux/fiemap.h>
FS_IOC_FIEMAP = 0xC020660B  # _IOWR('f', 11, struct fiemap)
FIBMAP = 1  # _IO(0x00, 1)
FIGETBSZ = 2  # _IO(0x00, 2)
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
_REFUSED_FLAGS = {
    0x2: "its location is unknown",  # FIEMAP_EXTENT_UNKNOWN
    0x4: "it is not allocated yet (delayed allocation)",  # FIEMAP_EXTENT_DELALLOC
    0x8: "it is stored encoded (compressed)",  # FIEMAP_EXTENT_ENCODED
    0x80: "it is encrypted",  # FIEMAP_EXTENT_DATA_ENCRYPTED
    0x100: "it is not block-aligned",  # FIEMAP_EXTENT_NOT_ALIGNED
    0x200: "it is stored inline in the inode",  # FIEMAP_EXTENT_DATA_INLINE
    0x400: "it is packed into a shared tail block",  # FIEMAP_EXTENT_DATA_TAIL
    0x800: "it is unwritten (preallocated)",  # FIEMAP_EXTENT_UNWRITTEN
    0x2000: "its blocks are shared with another file",  # FIEMAP_EXTENT_SHARED
}
_FIEMAP_HEADER = struct.Struct("=QQIIII")  # fm_start, fm_length, fm_flags, fm_mapped_extents, fm_extent_count, -
_FIEMAP_EXTENT = struct.Struct("=QQQQQIIII")  # fe_logical, fe_physical, fe_length, 2 reserved, fe_flags, 3 reserved
MAX_EXTENTS = 64  # a grubenv is 1 KiB: a handful of blocks at most; anything beyond is refused, not listed
MAX_FILE = 64 * 1024  # files this module rewrites are small; a bigger one is refused before any read
_ALIGN = 4096  # O_DIRECT read-back granularity (any logical block size up to a page)


class BlockMapError(OSError):
    """The file's blocks cannot be listed or rewritten safely; the message says why in loadenv.c's terms."""


@dataclass(frozen=True)
class Extent:
    """`length` bytes of the file from offset `logical` are stored at byte `physical` of its block device."""

    logical: int
    physical: int
    length: int


@dataclass(frozen=True)
class BlockMap:
    """The whole file, extent by extent, in file order; their lengths add up to `size`."""

    size: int
    extents: tuple[Extent, ...]
    method: str  # "FIEMAP" or "FIBMAP", for the log

    def check(self) -> None:
        """loadenv.c's sanity checks: no holes, nothing past the end, no two extents on the same bytes."""
        pos = 0
        for ext in self.extents:
            if ext.logical != pos:
                raise BlockMapError(errno.EINVAL, f"sparse file not allowed (hole at byte {pos})")
            pos += ext.length
        if pos != self.size:
            raise BlockMapError(errno.EINVAL, f"sparse file not allowed ({pos} of {self.size} bytes have blocks)")
        spans = sorted((e.physical, e.physical + e.length) for e in self.extents)
        for (_, end), (start, _) in itertools.pairwise(spans):
            if start < end:
                raise BlockMapError(errno.EINVAL, "malformed file (two extents share device bytes)")


def _ioctl(fd: int, request: int, arg: bytearray, path: str, name: str) -> None:
    """discovery's one wrapper for ioctl(2): OSError naming the call and the file."""
    try:
        fcntl.ioctl(fd, request, arg, True)
    except OSError as exc:
        raise OSError(exc.errno, f"ioctl({name}): {os.strerror(exc.errno or 0)}", path) from None


def ioctl_int(fd: int, request: int, value: int, name: str, path: Path) -> int:
    """ioctl(2) with an `int *` argument (FS_IOC_GETFLAGS, WDIOC_SETTIMEOUT): the int the kernel wrote back."""
    buf = bytearray(struct.pack("i", value))
    _ioctl(fd, request, buf, str(path), name)
    result: int = struct.unpack("i", buf)[0]
    return result


def fiemap(fd: int, size: int, path: str) -> BlockMap:
    """The file's extents by FS_IOC_FIEMAP (synced first, so delayed allocations get their blocks)."""
    buf = bytearray(_FIEMAP_HEADER.size + MAX_EXTENTS * _FIEMAP_EXTENT.size)
    _FIEMAP_HEADER.pack_into(buf, 0, 0, max(size, 1), FIEMAP_FLAG_SYNC, 0, MAX_EXTENTS, 0)
    _ioctl(fd, FS_IOC_FIEMAP, buf, path, "FS_IOC_FIEMAP")
    mapped = _FIEMAP_HEADER.unpack_from(buf, 0)[3]
    extents: list[Extent] = []
    last = False
    for n in range(min(mapped, MAX_EXTENTS)):
        logical, physical, length, _, _, flags, *_ = _FIEMAP_EXTENT.unpack_from(
            buf, _FIEMAP_HEADER.size + n * _FIEMAP_EXTENT.size
        )
        for bit, why in _REFUSED_FLAGS.items():
            if flags & bit:
                raise BlockMapError(errno.EINVAL, f"blocks cannot be listed: bytes {logical}+{length}: {why}")
        # The last block is whole on the device; only the file's bytes count (as GRUB's read hook reports them).
        length = min(length, size - logical)
        if length > 0:
            extents.append(Extent(logical, physical, length))
        last = bool(flags & FIEMAP_EXTENT_LAST)
    if size and not last:
        raise BlockMapError(errno.E2BIG, f"more than {MAX_EXTENTS} extents; not listed")
    return BlockMap(size, tuple(_merge(extents)), "FIEMAP")


def fibmap(fd: int, size: int, path: str) -> BlockMap:
    """The file's blocks by FIBMAP, one block at a time (needs CAP_SYS_RAWIO); block 0 is a hole."""
    arg = bytearray(struct.pack("=i", 0))
    _ioctl(fd, FIGETBSZ, arg, path, "FIGETBSZ")
    block = struct.unpack("=i", arg)[0]
    if block <= 0:
        raise BlockMapError(errno.EINVAL, f"FIGETBSZ gave block size {block}")
    count = -(-size // block)
    if count > MAX_EXTENTS:
        raise BlockMapError(errno.E2BIG, f"more than {MAX_EXTENTS} blocks; not listed")
    extents: list[Extent] = []
    for n in range(count):
        arg = bytearray(struct.pack("=i", n))
        _ioctl(fd, FIBMAP, arg, path, "FIBMAP")
        physical = struct.unpack("=i", arg)[0]
        if physical == 0:
            raise BlockMapError(errno.EINVAL, f"sparse file not allowed (block {n} has no device block)")
        extents.append(Extent(n * block, physical * block, min(block, size - n * block)))
    return BlockMap(size, tuple(_merge(extents)), "FIBMAP")


def _merge(extents: Sequence[Extent]) -> Iterator[Extent]:
    cur: Extent | None = None
    for ext in extents:
        if cur is not None and cur.logical + cur.length == ext.logical and cur.physical + cur.length == ext.physical:
            cur = Extent(cur.logical, cur.physical, cur.length + ext.length)
            continue
        if cur is not None:
            yield cur
        cur = ext
    if cur is not None:
        yield cur


def map_file(path: Path) -> tuple[BlockMap, bytes]:
    """The block map of `path` (FIEMAP, else FIBMAP) and its bytes as the filesystem reads them, checked."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        if size > MAX_FILE:
            raise BlockMapError(errno.EFBIG, f"{size} bytes; more than the {MAX_FILE} this rewrites", str(path))
        data = os.pread(fd, size + 1, 0)
        if len(data) != size:
            raise BlockMapError(errno.EIO, f"read {len(data)} bytes of {size}", str(path))
        try:
            blocks = fiemap(fd, size, str(path))
        except BlockMapError:
            raise
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL):
                raise
            blocks = fibmap(fd, size, str(path))
    finally:
        os.close(fd)
    blocks.check()
    return blocks, data


def device_refusal(node: str, sys_block: Path = Path("/sys/class/block")) -> str | None:
    """Why GRUB could not write this block device, or None: GRUB reaches device-mapper (LVM, dm-crypt,
    multipath) and md RAID through diskfilter or cryptodisk, which do not write; a device stacked on others too."""
    name = Path(os.path.realpath(node)).name
    entry = sys_block / name
    if not entry.exists():
        return None  # not a kernel block device (an image file in tests): nothing stacked under it
    chain = [entry.resolve()]
    if (chain[0] / "partition").exists():
        chain.append(chain[0].parent)  # a partition: its disk decides
    for directory in chain:
        if (directory / "dm").is_dir():
            return f"{directory.name} is a device-mapper device (LVM, encryption): GRUB does not write through it"
        if (directory / "md").is_dir():
            return f"{directory.name} is an md RAID device: GRUB does not write through diskfilter"
        slaves = directory / "slaves"
        with contextlib.suppress(OSError):
            if slaves.is_dir() and any(slaves.iterdir()):
                return f"{directory.name} is stacked on other devices: GRUB does not write through it"
    return None


def _read_back(device: str, fd: int, extent: Extent) -> bytes:
    """The extent's bytes as the device holds them now, bypassing the page cache where it can."""
    start = extent.physical - extent.physical % _ALIGN
    length = -(-(extent.physical + extent.length - start) // _ALIGN) * _ALIGN
    try:
        direct = os.open(device, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECT)
    except OSError:
        direct = -1  # tmpfs and some image files refuse O_DIRECT
    if direct >= 0:
        try:
            with mmap.mmap(-1, length) as buf:  # page-aligned, as O_DIRECT wants
                got = os.preadv(direct, [buf], start)
                skip = extent.physical - start
                return bytes(buf[skip : min(got, skip + extent.length)])
        except OSError:
            pass
        finally:
            os.close(direct)
    os.posix_fadvise(fd, extent.physical, extent.length, os.POSIX_FADV_DONTNEED)
    return os.pread(fd, extent.length, extent.physical)


def rewrite(device: str, blocks: BlockMap, old: bytes, new: bytes) -> None:
    """Write `new` over the file whose bytes are `old`, through `blocks` on `device`: checked first (every extent
    must hold the file's bytes), then written, synced, and read back. Raises BlockMapError or OSError."""
    if len(new) != blocks.size or len(old) != blocks.size:
        raise BlockMapError(errno.EINVAL, f"size would change ({blocks.size} -> {len(new)} bytes)", device)
    fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    try:
        for ext in blocks.extents:
            if os.pread(fd, ext.length, ext.physical) != old[ext.logical : ext.logical + ext.length]:
                raise BlockMapError(
                    errno.EIO, f"invalid blocklist: byte {ext.physical} does not hold the file's bytes", device
                )
        for ext in blocks.extents:
            piece = new[ext.logical : ext.logical + ext.length]
            if os.pwrite(fd, piece, ext.physical) != len(piece):
                raise BlockMapError(errno.EIO, f"short write at byte {ext.physical}", device)
        os.fsync(fd)
        for ext in blocks.extents:
            if _read_back(device, fd, ext) != new[ext.logical : ext.logical + ext.length]:
                raise BlockMapError(errno.EIO, f"byte {ext.physical} does not read back as written", device)
    finally:
        os.close(fd)


def forget_cached(path: Path) -> bytes:
    """Drop the mounted file's cached pages (the device changed under it) and read it again through the mount."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return os.pread(fd, MAX_FILE + 1, 0)
    finally:
        os.close(fd)
