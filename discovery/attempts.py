"""The boot attempt record: which entry the menu jumped to, kept where the next start of the menu can read it.

Written right before the jump (after the load, before quiesce), read at start. Together with a watchdog reset
(discovery/watchdog.py) it names the entry that did not come up, so that the autoboot falls back to the next entry
in boot order instead of booting the failed one again. Stores, in order of preference:

- an EFI variable `BootmenuAttempt-<GUID>` when efivarfs is mounted (Documentation/filesystems/efivarfs.rst: a file
  is the 4-byte attribute word, little-endian, then the data; attributes NON_VOLATILE | BOOTSERVICE_ACCESS |
  RUNTIME_ACCESS, UEFI spec 8.2). efivarfs marks variables it does not know immutable; to rewrite, the flag is
  cleared (FS_IOC_SETFLAGS) and the variable deleted and created again (efivarfs has no truncate). Not yet tried on
  real firmware or OVMF: tested on a directory only.
- a small file `bootmenu-attempt.json` on the filesystem the `state = "LABEL=..."` (or `UUID=...`) setting names,
  written during a brief read-write remount of the daemon's read-only mount of it (vfat is the simple choice; ext4
  mounted with `noload` may refuse the remount, which is then logged).
- nowhere: without either, a watchdog reset still holds autoboot, but no entry can be named.

The record is small JSON: entry id, title, device, time, and the ids that already failed in this chain of resets
(bounded), so a second failure falls back further instead of going back to the first one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from discovery.blockmap import ioctl_int

log = logging.getLogger(__name__)

EFIVARS = Path("/sys/firmware/efi/efivars")
# Our vendor GUID for the variable (random, fixed).
VENDOR_GUID = "6b6f6f74-6d65-4e75-8a77-617463686467"
EFI_VARIABLE = f"BootmenuAttempt-{VENDOR_GUID}"
# UEFI spec 8.2: EFI_VARIABLE_NON_VOLATILE | EFI_VARIABLE_BOOTSERVICE_ACCESS | EFI_VARIABLE_RUNTIME_ACCESS
EFI_ATTRIBUTES = 0x7
STATE_FILE = "bootmenu-attempt.json"
# A record is a few hundred bytes; anything larger is not ours.
MAX_RECORD = 4096
MAX_FAILED = 16
# <linux/fs.h>: FS_IOC_GETFLAGS = _IOR('f', 1, long), FS_IOC_SETFLAGS = _IOW('f', 2, long) on 64-bit (the argument
# is an int whatever the encoded size says); FS_IMMUTABLE_FL.
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL = 0x00000010
# <linux/mount.h>
MS_RDONLY = 1
MS_REMOUNT = 32


class RecordError(ValueError):
    """A record that cannot be read back (named by the store)."""


@dataclass(frozen=True)
class Attempt:
    entry_id: str
    title: str
    device: str
    time: float
    failed: tuple[str, ...] = field(default=())

    def to_bytes(self) -> bytes:
        data = {
            "v": 1,
            "entry_id": self.entry_id,
            "title": self.title,
            "device": self.device,
            "time": self.time,
            "failed": list(self.failed[-MAX_FAILED:]),
        }
        return json.dumps(data).encode()[:MAX_RECORD]

    @classmethod
    def from_bytes(cls, raw: bytes, where: str) -> Attempt:
        if len(raw) > MAX_RECORD:
            raise RecordError(f"{where}: {len(raw)} bytes, more than a record ({MAX_RECORD})")
        try:
            data: Any = json.loads(raw)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            failed = data.get("failed", [])
            if not isinstance(failed, list):
                raise TypeError("failed is not a list")
            return cls(
                entry_id=str(data["entry_id"]),
                title=str(data.get("title", "")),
                device=str(data.get("device", "")),
                time=float(data.get("time", 0.0)),
                failed=tuple(str(f) for f in failed[-MAX_FAILED:]),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise RecordError(f"{where}: not a boot attempt record: {exc}") from None

    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.time))


class Store(Protocol):
    """Where the record lives."""

    def describe(self) -> str: ...
    def read(self) -> Attempt | None: ...
    def write(self, attempt: Attempt) -> None: ...


@dataclass(frozen=True)
class EfiStore:
    """The record as an EFI variable in efivarfs."""

    efivars: Path = EFIVARS

    @property
    def path(self) -> Path:
        return self.efivars / EFI_VARIABLE

    def describe(self) -> str:
        return f"EFI variable {EFI_VARIABLE}"

    def read(self) -> Attempt | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if len(raw) < 4:
            raise RecordError(f"{self.path}: {len(raw)} bytes, no attribute word")
        return Attempt.from_bytes(raw[4:], str(self.path))

    def write(self, attempt: Attempt) -> None:
        data = struct.pack("<I", EFI_ATTRIBUTES) + attempt.to_bytes()
        if self.path.exists():
            # efivarfs has no truncate: delete the variable (after clearing the immutable flag) and create it anew.
            self._mutable()
            try:
                self.path.unlink()
            except OSError as exc:
                raise OSError(exc.errno, f"unlink: {exc.strerror}", str(self.path)) from None
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise OSError(exc.errno, f"open: {exc.strerror}", str(self.path)) from None
        try:
            # efivarfs takes the whole variable in one write(2).
            os.write(fd, data)
        except OSError as exc:
            raise OSError(exc.errno, f"write: {exc.strerror}", str(self.path)) from None
        finally:
            os.close(fd)

    def _mutable(self) -> None:
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            flags = ioctl_int(fd, FS_IOC_GETFLAGS, 0, "FS_IOC_GETFLAGS", self.path)
            if flags & FS_IMMUTABLE_FL:
                ioctl_int(fd, FS_IOC_SETFLAGS, flags & ~FS_IMMUTABLE_FL, "FS_IOC_SETFLAGS", self.path)
        except OSError as exc:
            if exc.errno not in (errno.ENOTTY, errno.EOPNOTSUPP):  # no flags here (a test directory): nothing to clear
                raise
        finally:
            os.close(fd)


def remount(target: Path, *, readonly: bool) -> None:
    """mount(2) with MS_REMOUNT (and MS_RDONLY to go back); raises OSError naming the mount point."""
    from kexec_core import syscalls
    from kexec_core.errors import KexecCoreError

    flags = MS_REMOUNT | (MS_RDONLY if readonly else 0)
    try:
        syscalls.mount("", str(target), "", flags, None)
    except KexecCoreError as exc:
        raise OSError(getattr(exc, "errno", 0) or errno.EIO, str(exc), str(target)) from None


@contextlib.contextmanager
def writable(mountpoint: Path) -> Iterator[None]:
    """The daemon's read-only mount, read-write for the duration of the block, read-only again after."""
    remount(mountpoint, readonly=False)
    try:
        yield
    finally:
        try:
            remount(mountpoint, readonly=True)
        except OSError as exc:
            log.warning("%s: cannot remount read-only: %s", mountpoint, exc.strerror)


@dataclass(frozen=True)
class FileStore:
    """The record as a file on the state filesystem, mounted (read-only) by the daemon at `mountpoint`."""

    mountpoint: Path
    remount: bool = True  # False in tests, where the directory is writable anyway

    @property
    def path(self) -> Path:
        return self.mountpoint / STATE_FILE

    def describe(self) -> str:
        return f"{self.path}"

    def read(self) -> Attempt | None:
        try:
            with self.path.open("rb") as f:
                raw = f.read(MAX_RECORD + 1)
        except FileNotFoundError:
            return None
        return Attempt.from_bytes(raw, str(self.path))

    def write(self, attempt: Attempt) -> None:
        with writable(self.mountpoint) if self.remount else contextlib.nullcontext():
            tmp = self.path.with_name(STATE_FILE + ".new")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise OSError(exc.errno, f"open: {exc.strerror}", str(tmp)) from None
            try:
                os.write(fd, attempt.to_bytes())
                os.fsync(fd)
            except OSError as exc:
                raise OSError(exc.errno, f"write: {exc.strerror}", str(tmp)) from None
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dirfd = os.open(self.mountpoint, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)


@dataclass(frozen=True)
class StateSpec:
    """The `state` setting: LABEL=X or UUID=X naming the filesystem for the record."""

    kind: str  # "label" or "uuid"
    value: str

    @classmethod
    def parse(cls, text: str) -> StateSpec | None:
        kind, sep, value = text.partition("=")
        if not sep or not value or kind.upper() not in ("LABEL", "UUID"):
            return None
        return cls(kind.lower(), value)

    def matches(self, *, label: str, uuid: str) -> bool:
        return label == self.value if self.kind == "label" else uuid.lower() == self.value.lower()

    def __str__(self) -> str:
        return f"{self.kind.upper()}={self.value}"


def fallback(order: Sequence[str], failed: Sequence[str], after: str) -> str | None:
    """The first entry after `after` in boot order `order` (wrapping round) that is not in `failed`."""
    if not order:
        return None
    start = order.index(after) + 1 if after in order else 0
    for eid in [*order[start:], *order[:start]]:
        if eid not in failed and eid != after:
            return eid
    return None
