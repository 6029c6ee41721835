"""Read-only mounts of candidate filesystems under a run directory; context-managed, never writing to a disk.

Every mount is MS_RDONLY; ext3/ext4 add `noload` so a dirty journal is not replayed (replaying writes), and
xfs `norecovery` for the same reason.

btrfs is mounted at its top-level subvolume (`subvolid=5`), which is what GRUB reads (its btrfs driver starts at the
FS tree of objectid 5, whatever the default subvolume), so the paths Ubuntu writes (`linux /@/boot/vmlinuz`) and those
into snapper snapshots (`/@/.snapshots/1/snapshot/boot/...`) resolve as GRUB resolves them. When the top level holds
no boot files, `boot_subvolume` names the common layout (`@`, `@rootfs`, `root`) that does, and the filesystem's
paths also resolve inside it (discovery.fs), so configs in `@/boot/grub` are found and SUSE's subvolume-relative
paths (`btrfs_relative_path`) work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MS_RDONLY = 1  # <linux/mount.h>
MNT_DETACH = 2  # <linux/fs.h>: umount2 flag, lazy unmount of a busy mount
BTRFS_LAYOUTS = ("@", "@rootfs", "root")
# What makes a tree worth reading: boot configs or kernels live under these.
BOOT_DIRS = ("boot", "grub", "grub2", "loader", "EFI", "efi", "syslinux", "extlinux", "isolinux")
# Options that stop a read-only mount from writing (journal replay / log recovery).
# btrfs replays its log tree even read-only unless told not to (rescue=, Linux 5.9+).
NO_WRITE_OPTIONS = {"ext3": "noload", "ext4": "noload", "xfs": "norecovery", "btrfs": "rescue=nologreplay"}
# Which part of the filesystem is mounted: btrfs's top-level subvolume (objectid 5), as GRUB sees it.
TREE_OPTIONS = {"btrfs": "subvolid=5"}
# Kernels without the ext2/ext3 drivers mount those through ext4 (CONFIG_EXT4_USE_FOR_EXT2).
FALLBACK_TYPES = {"ext2": "ext4", "ext3": "ext4"}


class MountError(OSError):
    """A mount or umount failed: carries the device, target and the errno or tool message."""


def _mount(source: str, target: Path, fstype: str, options: str) -> None:
    """The one gateway to mount(2): kexec_core.syscalls, or mount(8) with `-o ro` when the bindings are not built."""
    from kexec_core import syscalls
    from kexec_core.errors import BindingsMissing, KexecCoreError

    try:
        syscalls.mount(source, str(target), fstype, MS_RDONLY, options or None)
        return
    except BindingsMissing:
        pass
    except KexecCoreError as exc:
        raise MountError(str(exc)) from None
    opts = ",".join(filter(None, ["ro", options]))
    proc = subprocess.run(
        ["mount", "-t", fstype, "-o", opts, source, str(target)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise MountError(f"mount {source} on {target}: {proc.stderr.strip() or f'exit status {proc.returncode}'}")


def _umount(target: Path) -> None:
    from kexec_core import syscalls
    from kexec_core.errors import BindingsMissing, KexecCoreError

    try:
        syscalls.umount2(str(target), MNT_DETACH)
        return
    except BindingsMissing:
        pass
    except KexecCoreError as exc:
        raise MountError(str(exc)) from None
    proc = subprocess.run(["umount", "-l", str(target)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise MountError(f"umount {target}: {proc.stderr.strip() or f'exit status {proc.returncode}'}")


def _has_boot_files(root: Path) -> bool:
    return any((root / d).is_dir() for d in BOOT_DIRS) or any(root.glob("vmlinuz*"))


def _options(*parts: str) -> str:
    return ",".join(p for p in parts if p)


def boot_subvolume(top: Path) -> str:
    """The btrfs subvolume (a top-level directory) whose boot files stand in for the top level's; "" when the top
    level has boot files of its own or no common layout has any."""
    if _has_boot_files(top):
        return ""
    return next((sub for sub in BTRFS_LAYOUTS if _has_boot_files(top / sub)), "")


@dataclass(frozen=True)
class Mounter:
    """Mounts devices read-only under `run_dir`; `mount()` is a context manager yielding the tree's root."""

    run_dir: Path

    @contextlib.contextmanager
    def mount(self, node: str, name: str, fstype: str) -> Iterator[Path]:
        target = self.run_dir / name
        target.mkdir(parents=True, exist_ok=True)
        try:
            fstype = self._mount(node, target, fstype)
        except OSError:
            with contextlib.suppress(OSError):
                os.rmdir(target)
            raise
        log.info("mounted %s (%s) read-only on %s", node, fstype, target)
        try:
            yield target
        finally:
            if not os.path.ismount(target):
                # Already unmounted: the boot path's release step (sync + umount before the jump) got there first.
                log.info("%s was unmounted already", target)
            else:
                try:
                    _umount(target)
                    log.info("unmounted %s", target)
                except OSError as exc:
                    log.warning("cannot unmount %s: %s", target, exc)
            with contextlib.suppress(OSError):
                os.rmdir(target)

    def leftovers(self) -> list[Path]:
        """Mount points under `run_dir` in /proc/self/mounts, deepest first (a daemon that crashed left them)."""
        try:
            table = Path("/proc/self/mounts").read_text()
        except OSError:
            return []
        run_dir = str(self.run_dir.resolve())
        # /proc/self/mounts escapes spaces and such as octal (\040).
        points = [
            re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[1])
            for line in table.splitlines()
            if line.strip()
        ]
        inside = [Path(p) for p in points if p.startswith(run_dir + "/")]
        return sorted(inside, key=lambda p: len(p.parts), reverse=True)

    def clean_up(self) -> None:
        """Unmount what a previous run left under `run_dir`, so a restarted daemon does not stack mounts."""
        for point in self.leftovers():
            try:
                _umount(point)
                log.info("unmounted %s, left by a previous run", point)
            except OSError as exc:
                log.warning("cannot unmount %s: %s", point, exc)

    @staticmethod
    def _mount(node: str, target: Path, fstype: str) -> str:
        """Mount with the no-write options of `fstype`, through ext4 when ext2/ext3 are not built; the type used."""
        try:
            _mount(node, target, fstype, _options(NO_WRITE_OPTIONS.get(fstype, ""), TREE_OPTIONS.get(fstype, "")))
            return fstype
        except MountError:
            fallback = FALLBACK_TYPES.get(fstype)
            if fallback is None:
                raise
        _mount(node, target, fallback, NO_WRITE_OPTIONS[fallback])
        return fallback
