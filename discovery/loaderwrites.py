"""The writes a boot loader does when it boots an entry, done right before the jump (issue 11, section 1).

- GRUB: the `save_env` calls the entry's evaluation recorded (Debian/Ubuntu `recordfail`, `grub-reboot`'s
  one-shot `next_entry` cleared, Fedora's `boot_success`/`boot_indeterminate`) go into their grubenv the way
  GRUB 2.06's loadenv.c writes it: the same block rewritten in place through the file's own device blocks
  (discovery.blockmap), the filesystem staying mounted read-only, the file keeping its size. Refused, with a status
  line and the boot going on, where loadenv.c refuses, and for a device GRUB reaches through diskfilter or
  cryptodisk (LVM, md RAID, dm-crypt), which GRUB does not write.
- BLS automatic boot assessment (systemd-boot, UAPI.1 "Boot counting"): booting `NAME+LEFT-DONE.conf` renames it
  to `NAME+(LEFT-1)-(DONE+1).conf` (a Type #2 `NAME+LEFT-DONE.efi` likewise); the vfat filesystem (ESP/XBOOTLDR,
  what systemd-boot writes through the firmware's FAT driver) is remounted read-write for the rename only, then
  read-only again. `+0` entries count one more failure (`+0-3` -> `+0-4`), as systemd-boot 252 renames them.
Every write, and every refusal, is one status line naming the file. Writing to a block device or remounting is
allowed only where kexec is (kexec_core.guard: the payload's boot environment); an image file given as the device
(the host tests) is written without it.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from discovery import blockmap
from discovery.bls import split_filename
from discovery.entry import BootEntry, EnvSave, SourceFormat
from discovery.fs import Filesystem
from discovery.grub import grubenv
from discovery.protocol import Level

log = logging.getLogger(__name__)

MS_RDONLY = 1  # <linux/mount.h>
MS_REMOUNT = 32
RENAME_TYPES = ("vfat", "msdos")
# Filesystems whose data blocks carry checksums (and btrfs: FIEMAP gives its own logical addresses): a block
# rewritten under them would read back as corrupt. Debian's grub-mkconfig does not save_env on them either.
CHECKSUMMED_TYPES = {
    "btrfs": "checksums its data blocks: one changed in place would fail its checksum",
    "zfs": "checksums its data blocks: one changed in place would fail its checksum",
    "bcachefs": "checksums its data blocks: one changed in place would fail its checksum",
}


@dataclass(frozen=True)
class Target:
    """A filesystem an entry names, as the daemon holds it: its block device node (None: a `--root` directory)."""

    node: str | None
    fs: Filesystem


Report = tuple[Level, str]


def before_jump(entry: BootEntry, targets: Mapping[str, Target]) -> list[Report]:
    """Do the boot loader's writes for `entry`; one report per write or refusal. Never raises."""
    reports: list[Report] = []
    try:
        reports.extend(write_grubenv(entry.env_saves, targets))
        if entry.format is SourceFormat.BLS and entry.boot_count is not None:
            reports.append(count_boot(entry, targets))
    except Exception as exc:  # a bug here must not stop the boot the user asked for
        log.exception("boot loader writes for %s", entry.title)
        reports.append((Level.ERROR, f"boot loader writes stopped: internal error {exc!r}"))
    return reports


# --- GRUB environment block ---


def write_grubenv(saves: Sequence[EnvSave], targets: Mapping[str, Target]) -> list[Report]:
    """Each grubenv file named by `saves`, rewritten once with all its saves applied in order."""
    files: dict[tuple[str, str], list[EnvSave]] = {}
    for save in saves:
        files.setdefault((save.device, save.path), []).append(save)
    reports = []
    for (device, path), group in files.items():
        where = f"{device}:{path}"
        what = ", ".join(str(s) for s in group)
        try:
            how = _write_env(targets.get(device), path, group)
        except (OSError, grubenv.EnvBlockError) as exc:
            reports.append((Level.WARNING, f"grubenv {where} not written ({what}): {_reason(exc)}"))
            continue
        reports.append((Level.INFO, f"grubenv {where}: wrote {what} in place ({how})"))
    return reports


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc)
        return f"{text} ({exc.filename})" if exc.filename else text
    return str(exc)


def _write_env(target: Target | None, path: str, saves: Sequence[EnvSave]) -> str:
    if target is None:
        raise OSError(errno.ENODEV, "its filesystem is not present")
    if target.node is None:
        raise OSError(errno.ENOTBLK, "its filesystem is a directory, not a block device")
    why_type = CHECKSUMMED_TYPES.get(target.fs.fstype)
    if why_type is not None:
        raise OSError(errno.EOPNOTSUPP, f"{target.fs.fstype} {why_type}")
    _guard(target.node, "write a grubenv block")
    why = blockmap.device_refusal(target.node)
    if why is not None:
        raise OSError(errno.EOPNOTSUPP, why)
    host = target.fs.host_path(path)
    if host is None or not host.is_file():
        raise OSError(errno.ENOENT, "no such file")
    try:
        blocks, old = blockmap.map_file(host)
    except blockmap.BlockMapError:
        raise
    except OSError as exc:
        raise OSError(exc.errno, f"blocks cannot be listed: {exc.strerror}", exc.filename) from None
    new = grubenv.edit(old, saves)
    if new == old:
        return "already as saved, nothing written"
    blockmap.rewrite(target.node, blocks, old, new)
    if blockmap.forget_cached(host) != new:
        raise OSError(errno.EIO, "written, but the filesystem reads other bytes back", str(host))
    spans = ", ".join(f"{e.length} bytes at {e.physical}" for e in blocks.extents)
    return f"{blocks.method}: {spans} of {target.node}; read back"


def _guard(node: str, action: str) -> None:
    """Refuse (OSError EPERM) to touch a real device outside the payload; a regular file (a test image) passes."""
    from kexec_core import guard
    from kexec_core.errors import ExecRefused

    try:
        if stat.S_ISREG(os.stat(node).st_mode):
            return
    except OSError:
        pass
    try:
        guard.require_boot_environment(action)
    except ExecRefused as exc:
        raise OSError(errno.EPERM, str(exc)) from None


# --- BLS boot counting ---


COUNTED_SUFFIXES = (".conf", ".efi")  # Type #1 entry files and Type #2 unified kernel images


def counted_name(filename: str) -> str | None:
    """The name booting `filename` gives it: one try less (never below 0), one more done, as systemd-boot 252
    renames (`a+0-3.conf` -> `a+0-4.conf`, seen under OVMF, tests/conformance); None when it has no counter."""
    suffix = next((s for s in COUNTED_SUFFIXES if filename.lower().endswith(s)), None)
    if suffix is None:
        return None
    stem, count = split_filename(filename[: -len(suffix)])
    if count is None:
        return None
    return f"{stem}+{max(count.left - 1, 0)}-{(count.done or 0) + 1}{filename[-len(suffix) :]}"


def count_boot(entry: BootEntry, targets: Mapping[str, Target]) -> Report:
    """Rename the entry's file for one more try, on a briefly read-write remount of its filesystem."""
    name = PurePosixPath(entry.config).name
    new = counted_name(name)
    where = f"{entry.config_device}:{entry.config}"
    if new is None:
        return Level.INFO, f"boot counting: {where} has no counter; not renamed"
    target = targets.get(entry.config_device)
    if target is None or target.node is None:
        return Level.WARNING, f"boot counting: {where} not renamed to {new}: not on a block device"
    if target.fs.fstype not in RENAME_TYPES:
        return Level.WARNING, f"boot counting: {where} not renamed: {target.fs.fstype} is not an ESP/XBOOTLDR (vfat)"
    host = target.fs.host_path(entry.config)
    if host is None or not host.is_file():
        return Level.WARNING, f"boot counting: {where} not renamed: no such file"
    try:
        _guard(target.node, "remount a filesystem read-write")
        rename_on_remount(target.node, target.fs.root, target.fs.fstype, host, host.with_name(new))
    except OSError as exc:
        return Level.WARNING, f"boot counting: {where} not renamed to {new}: {_reason(exc)}"
    return Level.INFO, f"boot counting: renamed {where} to {new}"


def rename_on_remount(node: str, root: Path, fstype: str, old: Path, new: Path) -> None:
    """Remount `root` read-write, rename, sync, remount read-only. The read-only remount is tried even when the
    rename failed; its own failure is an error (the filesystem would stay writable)."""
    if new.exists():
        raise OSError(errno.EEXIST, "a file with the new name exists", str(new))
    _remount(node, root, fstype, writable=True)
    try:
        os.rename(old, new)
        fd = os.open(new.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        _remount(node, root, fstype, writable=False)


def _remount(node: str, root: Path, fstype: str, *, writable: bool) -> None:
    """mount(2) with MS_REMOUNT through kexec_core.syscalls, or mount(8) when the bindings are not built."""
    import subprocess

    from kexec_core import syscalls
    from kexec_core.errors import BindingsMissing, KexecCoreError

    flags = MS_REMOUNT | (0 if writable else MS_RDONLY)
    try:
        syscalls.mount(node, str(root), fstype, flags, None)
        return
    except BindingsMissing:
        pass
    except KexecCoreError as exc:
        raise OSError(errno.EIO, f"remount {'rw' if writable else 'ro'} {root}: {exc}") from None
    opts = "remount,rw" if writable else "remount,ro"
    proc = subprocess.run(["mount", "-o", opts, str(root)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise OSError(errno.EIO, f"mount -o {opts} {root}: {proc.stderr.strip() or proc.returncode}")
