"""Reboot and power off: reboot(2) with LINUX_REBOOT_CMD_RESTART or LINUX_REBOOT_CMD_POWER_OFF, after sync(2) and
unmounting, behind the same safety guard as kexec (kexec_core/guard.py).

The call goes through glibc's `reboot(int howto)` wrapper with ctypes (sys/reboot.h: RB_AUTOBOOT and RB_POWER_OFF
are the kernel's LINUX_REBOOT_CMD_* values; glibc supplies the magic numbers). ctypes rather than the cffi shim:
glibc wraps this call, so no C shim is needed, and the compiled module stays about kexec.
"""

from __future__ import annotations

import ctypes
import enum
import errno
import logging
import os
from collections.abc import Callable, Sequence

from kexec_core import guard, syscalls

log = logging.getLogger(__name__)

# linux/reboot.h (the values sys/reboot.h names RB_AUTOBOOT and RB_POWER_OFF).
LINUX_REBOOT_CMD_RESTART = 0x01234567
LINUX_REBOOT_CMD_POWER_OFF = 0x4321FEDC


class PowerAction(enum.StrEnum):
    """What the operator asked for; the value is the protocol's word."""

    REBOOT = "reboot"
    POWER_OFF = "poweroff"

    @property
    def command(self) -> int:
        return LINUX_REBOOT_CMD_RESTART if self is PowerAction.REBOOT else LINUX_REBOOT_CMD_POWER_OFF

    @property
    def call(self) -> str:
        name = "LINUX_REBOOT_CMD_RESTART" if self is PowerAction.REBOOT else "LINUX_REBOOT_CMD_POWER_OFF"
        return f"reboot({name})"

    @property
    def verb(self) -> str:
        """For messages: `reboot the machine`, `power the machine off`."""
        return "reboot the machine" if self is PowerAction.REBOOT else "power the machine off"


_HINTS = {
    errno.EPERM: "needs root with CAP_SYS_BOOT (in a container, the container may not reboot the host)",
    errno.EINVAL: "the kernel rejected the command",
}


def _libc_reboot(command: int) -> int:
    """glibc's reboot(3): 0 or -errno, errno read right after the call."""
    libc = ctypes.CDLL(None, use_errno=True)
    rc = int(libc.reboot(ctypes.c_int(command)))
    return -ctypes.get_errno() if rc < 0 else 0


# The syscall boundary, swappable by tests (which must never reach the real one).
backend: Callable[[int], int] = _libc_reboot


def reboot(action: PowerAction) -> None:
    """reboot(2): returns only on failure, which raises OSError naming the call, the errno and a hint."""
    rc = backend(action.command)
    if rc < 0:
        err = -rc
        hint = _HINTS.get(err, "")
        raise OSError(err, os.strerror(err) + (f": {hint}" if hint else ""), action.call)
    # Only a fake backend returns success; the real call does not return when it works.


def steps(action: PowerAction, mounts: Sequence[str] = ()) -> list[str]:
    """What `perform` does, in order: for --dry-run and for the log."""
    return ["sync()", *(f"umount2({m!r}) (lazily if busy)" for m in reversed(mounts)), action.call]


def perform(action: PowerAction, *, mounts: Sequence[str] = (), force: bool = False, dry_run: bool = False) -> None:
    """Sync, unmount `mounts` (innermost first), reboot(2). Raises ExecRefused outside the boot environment (unless
    forced) and OSError when the kernel refuses; dry_run does nothing (the caller reports `steps`)."""
    if dry_run:
        return
    guard.require_boot_environment(action.verb, force=force)
    # Here, not at the top: the menu imports this module for PowerAction, and kexec_core.boot brings the image
    # parsers with it (issue 15: imports a first frame does not need).
    from kexec_core.boot import unmount_lazily

    syscalls.sync()
    for mount in reversed(mounts):
        unmount_lazily(mount)
    # The unmounts may have left dirty data of lazily detached filesystems; sync once more before the end.
    syscalls.sync()
    reboot(action)
