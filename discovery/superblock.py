"""Filesystem type, UUID and label read from the on-disk superblock, for initramfs boots without systemd-udevd.

Layouts follow the kernel's and the tools' on-disk formats: ext2/3/4 (`struct ext4_super_block` at 1024), XFS
(`xfs_dsb` at 0), btrfs (`btrfs_super_block` at 64 KiB), FAT (BIOS parameter block, FAT12/16 and FAT32 variants),
ISO 9660 (primary volume descriptor at sector 16, ECMA-119), squashfs (`squashfs_super_block`), Linux swap
(`union swap_header`), LUKS 1/2, LVM2 physical volumes (`label_header` in sectors 0-3) and MD RAID (v0.90, v1.x).
UUIDs are spelled the way blkid spells them, so `search --fs-uuid` and `root=UUID=` match either source.
Only reads: the device is opened O_RDONLY and never written.
"""

from __future__ import annotations

import enum
import os
import struct
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

# Enough to cover the btrfs superblock (64 KiB + 4 KiB); everything else lives in the first 36 KiB.
HEAD_SIZE = 0x11000


class Usage(enum.StrEnum):
    """What a block device holds, as blkid's ID_FS_USAGE says; only filesystems are mounted."""

    FILESYSTEM = "filesystem"
    SWAP = "other"
    CRYPTO = "crypto"
    RAID = "raid"
    UNKNOWN = "unknown"

    @classmethod
    def of(cls, fstype: str, usage: str = "") -> Usage:
        """The usage of a udev-reported type (ID_FS_TYPE, ID_FS_USAGE)."""
        if fstype == "swap":
            return cls.SWAP
        if fstype in ("crypto_LUKS", "BitLocker") or usage == "crypto":
            return cls.CRYPTO
        if fstype.endswith("_member") or usage == "raid":
            return cls.RAID
        if fstype in MOUNTABLE:
            return cls.FILESYSTEM
        return cls.UNKNOWN


# Types the daemon mounts and reads configs from.
MOUNTABLE = frozenset({"ext2", "ext3", "ext4", "vfat", "xfs", "btrfs", "iso9660", "squashfs"})


@dataclass(frozen=True)
class Superblock:
    fstype: str
    uuid: str = ""
    label: str = ""

    @property
    def usage(self) -> Usage:
        return Usage.of(self.fstype)


class ProbeError(OSError):
    """The device could not be read (no medium, I/O error); carries the errno and device path."""


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace").strip()


def _uuid(raw: bytes) -> str:
    return "" if not any(raw) else str(uuidlib.UUID(bytes=raw))


def _ext(head: bytes) -> Superblock | None:
    sb = head[1024:2048]
    if len(sb) < 256 or struct.unpack_from("<H", sb, 56)[0] != 0xEF53:
        return None
    compat, incompat, ro_compat = struct.unpack_from("<III", sb, 92)
    if incompat & 0x8:  # INCOMPAT_JOURNAL_DEV: an external journal, not a filesystem
        return Superblock("jbd", _uuid(sb[104:120]))
    # blkid's rule: features ext2/ext3 lack (extents, 64bit, flex_bg, huge_file, dir_nlink, ...) make it ext4.
    ext4_incompat = 0x40 | 0x80 | 0x200 | 0x400 | 0x1000 | 0x8000
    ext4_ro_compat = 0x8 | 0x20 | 0x40
    if incompat & ext4_incompat or ro_compat & ext4_ro_compat:
        fstype = "ext4"
    elif compat & 0x4:  # COMPAT_HAS_JOURNAL
        fstype = "ext3"
    else:
        fstype = "ext2"
    return Superblock(fstype, _uuid(sb[104:120]), _text(sb[120:136]))


def _xfs(head: bytes) -> Superblock | None:
    if head[:4] != b"XFSB":
        return None
    return Superblock("xfs", _uuid(head[32:48]), _text(head[108:120]))


def _btrfs(head: bytes) -> Superblock | None:
    sb = head[0x10000:0x11000]
    if sb[0x40:0x48] != b"_BHRfS_M":
        return None
    return Superblock("btrfs", _uuid(sb[0x20:0x30]), _text(sb[0x12B : 0x12B + 256]))


def _vfat(head: bytes) -> Superblock | None:
    if head[510:512] != b"\x55\xaa":
        return None
    if head[82:87] == b"FAT32":
        serial_at, label_at = 67, 71
    elif head[54:57] == b"FAT" or head[54:62] in (b"FAT12   ", b"FAT16   "):
        serial_at, label_at = 39, 43
    else:
        return None
    bytes_per_sector = struct.unpack_from("<H", head, 11)[0]
    if bytes_per_sector not in (512, 1024, 2048, 4096):
        return None
    serial = struct.unpack_from("<I", head, serial_at)[0]
    label = head[label_at : label_at + 11].decode("latin-1").strip()
    if label == "NO NAME":
        label = ""
    return Superblock("vfat", f"{serial >> 16:04X}-{serial & 0xFFFF:04X}", label)


def _iso9660(head: bytes) -> Superblock | None:
    pvd = head[0x8000:0x8800]
    if pvd[1:6] != b"CD001" or pvd[0] != 1:
        return None
    # blkid's UUID is the volume creation time "YYYYMMDDHHMMSScc" as YYYY-MM-DD-HH-MM-SS-cc.
    created = pvd[813:829].decode("ascii", errors="replace")
    uuid = ""
    if created.isdigit() and created != "0" * 16:
        c = created
        uuid = f"{c[0:4]}-{c[4:6]}-{c[6:8]}-{c[8:10]}-{c[10:12]}-{c[12:14]}-{c[14:16]}"
    return Superblock("iso9660", uuid, pvd[40:72].decode("ascii", errors="replace").strip())


def _squashfs(head: bytes) -> Superblock | None:
    return Superblock("squashfs") if head[:4] in (b"hsqs", b"sqsh") else None


def _swap(head: bytes) -> Superblock | None:
    for page in (4096, 8192, 16384, 65536):
        if len(head) >= page and head[page - 10 : page] in (b"SWAPSPACE2", b"SWAP-SPACE"):
            return Superblock("swap", _uuid(head[1024 + 12 : 1024 + 28]), _text(head[1024 + 28 : 1024 + 44]))
    return None


def _luks(head: bytes) -> Superblock | None:
    if head[:6] != b"LUKS\xba\xbe":
        return None
    return Superblock("crypto_LUKS", _text(head[168:208]), _text(head[24:72]) if head[6:8] == b"\0\2" else "")


def _lvm2(head: bytes) -> Superblock | None:
    for sector in range(4):
        at = sector * 512
        if head[at : at + 8] == b"LABELONE" and head[at + 24 : at + 32] == b"LVM2 001":
            pv_header = at + struct.unpack_from("<I", head, at + 20)[0]
            raw = head[pv_header : pv_header + 32].decode("ascii", errors="replace")
            # LVM prints its 32-character id in groups 6-4-4-4-4-4-6.
            groups = (6, 4, 4, 4, 4, 4, 6)
            parts, i = [], 0
            for g in groups:
                parts.append(raw[i : i + g])
                i += g
            return Superblock("LVM2_member", "-".join(parts))
    return None


MD_MAGIC = 0xA92B4EFC


def _md_at(block: bytes) -> Superblock | None:
    if len(block) < 32 or struct.unpack_from("<I", block, 0)[0] != MD_MAGIC:
        return None
    major = struct.unpack_from("<I", block, 4)[0]
    raw = block[16:32] if major == 1 else block[20:24] + block[52:64]  # v0.90 keeps set_uuid0 apart
    return Superblock("linux_raid_member", _uuid(raw))


PROBES = (_luks, _lvm2, _swap, _xfs, _btrfs, _ext, _iso9660, _squashfs, _vfat)


def probe_bytes(head: bytes, tail: bytes = b"") -> Superblock | None:
    """The superblock found in a device's first HEAD_SIZE bytes (and its last 128 KiB for MD RAID v0.90/v1.0)."""
    for at in (0, 4096):  # MD v1.1 and v1.2
        found = _md_at(head[at : at + 256])
        if found:
            return found
    for probe in PROBES:
        found = probe(head)
        if found:
            return found
    if tail:
        # v1.0 sits 8-12 KiB before the end (4 KiB aligned); v0.90 in the last 64 KiB-aligned 64 KiB block.
        for back in range(8192, 12289, 512):
            found = _md_at(tail[len(tail) - back : len(tail) - back + 256]) if back <= len(tail) else None
            if found:
                return found
    return None


def probe(path: Path) -> Superblock | None:
    """Probe a block device or image file; None when nothing is recognised. Raises ProbeError if unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ProbeError(exc.errno, exc.strerror, str(path)) from exc
    try:
        head = os.pread(fd, HEAD_SIZE, 0)
        size = os.lseek(fd, 0, os.SEEK_END)
        tail = b""
        if size >= 3 * 65536:
            # v0.90's superblock starts at the last 64 KiB boundary minus 64 KiB; read up to the end.
            start = (size & ~0xFFFF) - 0x10000
            start = min(start, size - 0x20000)
            tail = os.pread(fd, size - start, start)
            v090 = _md_at(os.pread(fd, 256, (size & ~0xFFFF) - 0x10000))
            if v090:
                return v090
    except OSError as exc:
        raise ProbeError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        os.close(fd)
    return probe_bytes(head, tail)
