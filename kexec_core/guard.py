"""The safety guard: loading or executing a kernel on a development or CI machine would replace the running system.

Allowed only in the payload's boot environment, which is recognised by BOTH
  - the marker file /etc/bootmenu-payload, which only the payload's initramfs contains, and
  - a root filesystem that is an initramfs (statfs(2) of / reports ramfs or tmpfs magic, linux/magic.h),
    or this process being PID 1 (the payload's /init),
or by an explicit force flag (`--force`). The marker alone is not enough, nor PID 1 alone (a container's entry point
is PID 1 too).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from kexec_core.errors import ExecRefused

MARKER = Path("/etc/bootmenu-payload")


@dataclass(frozen=True)
class Environment:
    """What the guard saw: enough to explain a refusal."""

    marker: Path
    marker_present: bool
    root_fstype: str  # "ramfs", "tmpfs", "other (0x...)" or "unknown (...)"
    pid1: bool

    @property
    def root_is_initramfs(self) -> bool:
        return self.root_fstype in ("ramfs", "tmpfs")

    @property
    def is_boot_environment(self) -> bool:
        return self.marker_present and (self.root_is_initramfs or self.pid1)

    def explain(self) -> str:
        seen = "present" if self.marker_present else "absent"
        return f"marker {self.marker} {seen}, root filesystem {self.root_fstype}, pid {'1' if self.pid1 else '!= 1'}"


def root_fstype(root: str = "/") -> str:
    """The kind of filesystem at `root`, by statfs magic (a read-only call, made outside the swappable backend)."""
    try:
        _kexec = importlib.import_module("kexec_core._kexec")
    except ImportError:
        return "unknown (kexec_core._kexec not built)"
    magic = int(_kexec.lib.bm_statfs_type(root.encode()))
    if magic < 0:
        return f"unknown (statfs: {os.strerror(-magic)})"
    if magic == _kexec.lib.RAMFS_MAGIC:
        return "ramfs"
    if magic == _kexec.lib.TMPFS_MAGIC:
        return "tmpfs"
    return f"other ({magic:#x})"


def environment(marker: Path = MARKER, root: str = "/") -> Environment:
    return Environment(
        marker=marker, marker_present=marker.is_file(), root_fstype=root_fstype(root), pid1=os.getpid() == 1
    )


def require_boot_environment(action: str, *, force: bool = False, marker: Path = MARKER, root: str = "/") -> None:
    """Raise ExecRefused unless in the payload's boot environment or forced. `action` names what was refused."""
    if force:
        return
    env = environment(marker, root)
    if env.is_boot_environment:
        return
    raise ExecRefused(
        f"refusing to {action}: this does not look like the bootmenu payload ({env.explain()}); "
        "on a running system this would replace it. Use --dry-run to see what would happen, or --force if you "
        "really mean it"
    )
