"""Sample disk images for QEMU, made without root, loop devices or mounts.

ext4 is filled at creation time by `mkfs.ext4 -d DIR` (e2fsprogs >= 1.43), vfat by `mkfs.vfat` then mtools' `mcopy`,
and the GPT (UEFI spec, chapter 5) is written by `sfdisk` into a plain file, after which each filesystem image is
copied to its partition's byte offset. UUIDs derive from names (uuid5) so the same inputs give the same identities,
which the GRUB configs of the samples rely on (`search --fs-uuid`).
"""

from __future__ import annotations

import enum
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from initramfs.run import run

SECTOR = 512
# Partitions start on 1 MiB boundaries, as every partitioning tool does since 2010.
ALIGN = 1 << 20
# Our namespace for uuid5: the identities of sample filesystems and disks.
NAMESPACE = uuid.UUID("5b0c7e1e-6f3a-4d55-9a57-6b6f6f746d6e")
# The file in a sample directory that names its filesystem (see discovery/scan.py); it is not copied into the image.
FS_FILE = ".bootmenu-fs"
_CHUNK = 1 << 20


class DiskError(Exception):
    """A disk image could not be built; the message names the file."""


def stable_uuid(name: str) -> uuid.UUID:
    """The same name always gives the same UUID."""
    return uuid.uuid5(NAMESPACE, name)


class PartitionType(enum.StrEnum):
    """GPT partition type GUIDs (UEFI spec, and the Discoverable Partitions Specification)."""

    ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


class FsType(enum.StrEnum):
    EXT4 = "ext4"
    VFAT = "vfat"
    BTRFS = "btrfs"
    XFS = "xfs"

    @classmethod
    def parse(cls, value: str, where: str) -> FsType:
        name = {"fat": "vfat", "fat32": "vfat", "fat16": "vfat", "ext2": "ext4", "ext3": "ext4"}.get(value, value)
        try:
            return cls(name or "ext4")
        except ValueError:
            raise DiskError(f"{where}: cannot build a {value!r} filesystem (ext4, vfat, btrfs or xfs)") from None

    def partition_type(self) -> PartitionType:
        return PartitionType.ESP if self is FsType.VFAT else PartitionType.LINUX

    def make(self, source: Path, image: Path, *, label: str, fs_uuid: str, size: int) -> None:
        if self is FsType.VFAT:
            make_vfat(source, image, label=label, volume_id=fs_uuid, size=size)
        elif self is FsType.BTRFS:
            make_btrfs(source, image, label=label, fs_uuid=fs_uuid, size=size)
        elif self is FsType.XFS:
            make_xfs(source, image, label=label, fs_uuid=fs_uuid, size=size)
        else:
            make_ext4(source, image, label=label, fs_uuid=fs_uuid, size=size)


def tree_size(directory: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = Path(root, name)
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def _fs_size(directory: Path) -> int:
    # Room for metadata (ext4's journal and inode tables, FAT's tables) on top of the files.
    raw = tree_size(directory)
    size = max(32 << 20, raw + raw // 4 + (16 << 20))
    return (size + ALIGN - 1) // ALIGN * ALIGN


def make_ext4(source: Path, image: Path, *, label: str, fs_uuid: str, size: int | None = None) -> Path:
    """An ext4 image holding a copy of `source` (owned by root), with the given label and UUID."""
    size = size or _fs_size(source)
    image.unlink(missing_ok=True)
    with image.open("wb") as f:
        f.truncate(size)
    run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            label[:16],
            "-U",
            fs_uuid,
            "-E",
            f"root_owner=0:0,hash_seed={fs_uuid}",
            "-d",
            source,
            image,
        ],
        capture=True,
        env={"E2FSPROGS_FAKE_TIME": "1700000000"},
    )
    return image


# mkfs.btrfs refuses devices under 109 MiB (non-mixed block groups), mkfs.xfs (xfsprogs 5.19+) under 300 MiB; the
# images are sparse, so the size costs no disk space.
BTRFS_MIN = 128 << 20
XFS_MIN = 320 << 20


def _sparse(image: Path, size: int) -> None:
    image.unlink(missing_ok=True)
    with image.open("wb") as f:
        f.truncate(size)


def make_btrfs(source: Path, image: Path, *, label: str, fs_uuid: str, size: int | None = None) -> Path:
    """A btrfs image holding a copy of `source` in its top-level subvolume (btrfs-progs' `--rootdir`)."""
    _sparse(image, max(size or _fs_size(source), BTRFS_MIN))
    run(["mkfs.btrfs", "-q", "-f", "-L", label[:255], "-U", fs_uuid, "-r", source, image], capture=True)
    return image


def _xfs_proto(source: Path) -> str:
    """An xfs protofile (mkfs.xfs(8) "-p"): the tree of `source`, owned by root, modes kept."""
    lines = ["/dev/null", "0 0", "d--755 0 0"]

    def walk(directory: Path, depth: int) -> None:
        pad = " " * depth
        for entry in sorted(directory.iterdir()):
            mode = entry.lstat().st_mode & 0o777
            if entry.is_symlink():
                lines.append(f"{pad}{entry.name} l--{mode:03o} 0 0 {os.readlink(entry)}")
            elif entry.is_dir():
                lines.append(f"{pad}{entry.name} d--{mode:03o} 0 0")
                walk(entry, depth + 1)
                lines.append(f"{pad}$")
            else:
                lines.append(f"{pad}{entry.name} ---{mode:03o} 0 0 {entry}")

    walk(source, 1)
    lines.append("$")
    return "\n".join(lines) + "\n"


def make_xfs(source: Path, image: Path, *, label: str, fs_uuid: str, size: int | None = None) -> Path:
    """An xfs image holding a copy of `source`, written from a protofile (names must not contain spaces)."""
    _sparse(image, max(size or _fs_size(source), XFS_MIN))
    proto = image.with_name(image.name + ".proto")
    proto.write_text(_xfs_proto(source))
    try:
        run(["mkfs.xfs", "-q", "-f", "-L", label[:12], "-m", f"uuid={fs_uuid}", "-p", proto, image], capture=True)
    finally:
        proto.unlink(missing_ok=True)
    return image


def make_vfat(source: Path, image: Path, *, label: str, volume_id: str, size: int | None = None) -> Path:
    """A FAT image (FAT16 or FAT32 by size) holding a copy of `source`.

    `volume_id` is "ABCD-1234" (as blkid shows it) or 8 hex digits; anything else is hashed into one.
    """
    size = size or _fs_size(source)
    serial = volume_id.replace("-", "")
    if len(serial) != 8:
        serial = stable_uuid(volume_id).hex[:8]
    image.unlink(missing_ok=True)
    with image.open("wb") as f:
        f.truncate(size)
    run(
        ["mkfs.vfat", "-n", (label or "NO NAME")[:11].upper(), "-i", serial, image],
        capture=True,
        env={"SOURCE_DATE_EPOCH": "1700000000"},
    )
    members = sorted(p for p in source.iterdir() if p.name != FS_FILE)
    if members:
        run(["mcopy", "-s", "-p", "-m", "-i", image, *members, "::/"], capture=True, env={"MTOOLS_SKIP_CHECK": "1"})
    return image


@dataclass(frozen=True)
class Partition:
    """One GPT partition holding a ready filesystem image."""

    fs_image: Path
    type: PartitionType = PartitionType.LINUX
    name: str = ""
    uuid: str = ""


def make_gpt(image: Path, partitions: Sequence[Partition], *, disk_uuid: str) -> Path:
    """A GPT disk with the partitions in order, each filesystem image copied to its offset."""
    offsets: list[tuple[int, int]] = []
    cursor = ALIGN
    for part in partitions:
        size = (part.fs_image.stat().st_size + ALIGN - 1) // ALIGN * ALIGN
        offsets.append((cursor, size))
        cursor += size
    total = cursor + ALIGN  # the backup GPT lives in the last 33 sectors
    script = ["label: gpt", f"label-id: {disk_uuid}", "unit: sectors", f"first-lba: {ALIGN // SECTOR}"]
    for part, (start, size) in zip(partitions, offsets, strict=True):
        line = f"start={start // SECTOR}, size={size // SECTOR}, type={part.type.value}"
        if part.uuid:
            line += f", uuid={part.uuid}"
        if part.name:
            line += f', name="{part.name}"'
        script.append(line)
    image.unlink(missing_ok=True)
    with image.open("wb") as f:
        f.truncate(total)
    run(
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", image],
        input="\n".join(script).encode() + b"\n",
        capture=True,
    )
    with image.open("r+b") as out:
        for part, (start, _size) in zip(partitions, offsets, strict=True):
            _copy_sparse(part.fs_image, out, start)
    return image


def _copy_sparse(source: Path, out: BinaryIO, offset: int) -> None:
    """Copies `source` into `out` at `offset`, seeking over all-zero chunks so the disk image stays sparse."""
    zero = bytes(_CHUNK)
    with source.open("rb") as f:
        position = offset
        while chunk := f.read(_CHUNK):
            if chunk != zero[: len(chunk)]:
                out.seek(position)
                out.write(chunk)
            position += len(chunk)


def read_fs_file(directory: Path) -> dict[str, str]:
    """The `key=value` identity of a sample directory (empty when it has no `.bootmenu-fs`)."""
    path = directory / FS_FILE
    if not path.is_file():
        return {}
    fields: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise DiskError(f"{path}:{number}: expected key=value, got {line!r}")
        fields[key.strip().lower()] = value.strip()
    return fields


def stage(directory: Path, staging: Path, replace: Mapping[str, Path] | None = None) -> Path:
    """A copy of `directory` without its `.bootmenu-fs`, with files whose relative path is a key of `replace`
    replaced by the file it names (the real kernel in place of a sample's placeholder)."""
    replace = dict(replace or {})

    def ignore(_dir: str, names: list[str]) -> list[str]:
        return [n for n in names if n == FS_FILE]

    shutil.copytree(directory, staging, symlinks=True, ignore=ignore)
    for relative, source in replace.items():
        target = staging / relative
        target.unlink(missing_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return staging


def disk_from_directory(directory: Path, image: Path, replace: Mapping[str, Path] | None = None) -> Path:
    """A one-partition GPT disk holding `directory` as the filesystem its `.bootmenu-fs` describes.

    Identity fields missing from `.bootmenu-fs` are derived from the directory name, so they are stable too.
    """
    fields = read_fs_file(directory)
    name = fields.get("name") or directory.name
    fstype = FsType.parse(fields.get("fstype", ""), str(directory / FS_FILE))
    if fstype is FsType.VFAT:
        fs_uuid = fields.get("uuid") or stable_uuid(f"fs:{name}").hex[:8].upper()
    else:
        fs_uuid = fields.get("uuid") or str(stable_uuid(f"fs:{name}"))
    label = fields.get("label", name)
    with tempfile.TemporaryDirectory(prefix="bootmenu-disk-", dir=image.parent) as tmp:
        staged = stage(directory, Path(tmp) / "root", replace)
        fs_image = Path(tmp) / "fs.img"
        fstype.make(staged, fs_image, label=label, fs_uuid=fs_uuid, size=_fs_size(staged))
        part = Partition(
            fs_image,
            type=fstype.partition_type(),
            name=fields.get("partlabel", name),
            uuid=fields.get("partuuid") or str(stable_uuid(f"part:{name}")),
        )
        return make_gpt(image, [part], disk_uuid=str(stable_uuid(f"disk:{name}")))
