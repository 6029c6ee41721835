"""A filesystem as the config loaders see it: a directory tree plus what identifies it (name, UUID, label).

Configs name files by paths absolute within their filesystem, and distributions use absolute symlinks
(`/vmlinuz -> boot/vmlinuz-6.1.0`). Those must resolve inside the filesystem, never on the host, so every
lookup goes through `Filesystem.host_path`, which follows symlinks as a chroot would.
"""

from __future__ import annotations

import enum
import os
import platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

# Symlink chains longer than this are treated as loops, as the kernel does (MAXSYMLINKS is 40).
MAX_SYMLINKS = 40


@dataclass(frozen=True)
class Filesystem:
    """A readable filesystem tree. `root` is where its files are on this machine (a mount point or a copy).

    `subvolume`: on a btrfs top level with no boot files of its own, the subvolume directory (`@`) that has them; a
    path missing at the top level is then looked up inside it, as if it were the root (see discovery.mount).
    """

    root: Path
    name: str
    uuid: str = ""
    label: str = ""
    fstype: str = ""
    partuuid: str = ""
    partlabel: str = ""
    subvolume: str = ""

    def host_path(self, path: str) -> Path | None:
        """The host path of `path` (absolute within this filesystem), following symlinks inside the tree.

        Returns None when a component is missing or a symlink loops; `..` never leaves the filesystem.
        """
        found = _resolve(self.root, path)
        if found is None and self.subvolume:
            found = _resolve(self.root / self.subvolume, path)
        return found

    def exists(self, path: str) -> bool:
        return self.host_path(path) is not None

    def is_file(self, path: str) -> bool:
        found = self.host_path(path)
        return found is not None and found.is_file()

    def is_dir(self, path: str) -> bool:
        found = self.host_path(path)
        return found is not None and found.is_dir()

    def read_bytes(self, path: str) -> bytes:
        """The file's bytes; raises FileNotFoundError naming the path within this filesystem."""
        found = self.host_path(path)
        if found is None or not found.is_file():
            raise FileNotFoundError(2, "No such file", f"{self.name}:{path}")
        return found.read_bytes()

    def read_text(self, path: str) -> str:
        # Configs are mostly UTF-8, sometimes Latin-1 titles; never fail on a byte.
        return self.read_bytes(path).decode("utf-8", errors="surrogateescape")

    def listdir(self, path: str) -> list[str]:
        found = self.host_path(path)
        if found is None or not found.is_dir():
            return []
        try:
            return sorted(os.listdir(found))
        except OSError:
            return []

    def glob_ci(self, directory: str, names: Iterable[str]) -> list[str]:
        """Existing paths `directory/NAME` for each name, matching case-insensitively (vfat, iso9660)."""
        entries = {e.lower(): e for e in self.listdir(directory)}
        out = []
        for name in names:
            real = entries.get(name.lower())
            if real is not None:
                out.append(str(PurePosixPath(directory, real)))
        return out

    def find_ci(self, path: str) -> str | None:
        """`path` with each component matched case-insensitively; None when absent. Exact matches win."""
        if self.exists(path):
            return path
        current = "/"
        for part in PurePosixPath("/", path).parts[1:]:
            matches = self.glob_ci(current, [part])
            if not matches:
                return None
            current = matches[0]
        return current

    def describe(self) -> str:
        bits = [self.name]
        if self.fstype:
            bits.append(self.fstype)
        if self.label:
            bits.append(f'"{self.label}"')
        return " ".join(bits)


def _resolve(root: Path, path: str) -> Path | None:
    """`path` under the host directory `root`, resolved as a chroot there would (see `Filesystem.host_path`)."""
    parts = list(PurePosixPath("/", path).parts[1:])
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > MAX_SYMLINKS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in PurePosixPath(target).parts if p != "/"] + parts
            continue
        if not candidate.exists():
            return None
        resolved.append(part)
    return root.joinpath(*resolved)


class SearchKind(enum.StrEnum):
    """How a config names another filesystem: GRUB's `search --fs-uuid/--label/--file`, BLS/syslinux never do."""

    FS_UUID = "fs-uuid"
    LABEL = "label"
    FILE = "file"
    PART_UUID = "part-uuid"

    def matches(self, fs: Filesystem, value: str) -> bool:
        if self is SearchKind.FS_UUID:
            return fs.uuid.lower() == value.lower()
        if self is SearchKind.LABEL:
            return fs.label == value
        if self is SearchKind.PART_UUID:
            return fs.partuuid.lower() == value.lower()
        return fs.exists(value)


class Resolver(Protocol):
    """Finds filesystems other than the one being read (GRUB `search`). The daemon's knows every device."""

    def find(self, kind: SearchKind, value: str) -> Filesystem | None: ...


@dataclass(frozen=True)
class StaticResolver:
    """Resolves among a fixed list of filesystems (`bootmenu scan` with several PATHs, tests)."""

    filesystems: Sequence[Filesystem]

    def find(self, kind: SearchKind, value: str) -> Filesystem | None:
        for fs in self.filesystems:
            if kind.matches(fs, value):
                return fs
        return None


@dataclass(frozen=True)
class Platform:
    """What GRUB reports about the firmware it runs on: `grub_platform` and `grub_cpu`."""

    firmware: str = "pc"
    cpu: str = "x86_64"

    @classmethod
    def detect(cls) -> Platform:
        firmware = "efi" if Path("/sys/firmware/efi").exists() else "pc"
        machine = platform.machine()
        cpu = {"amd64": "x86_64", "aarch64": "arm64", "ppc64le": "powerpc"}.get(machine, machine)
        return cls(firmware=firmware, cpu=cpu)
