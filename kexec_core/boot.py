"""The boot path other components use: prepare (inspect + preflight) -> load -> execute; plus unload and loaded.

`prepare` never touches a syscall. `load` uses kexec_file_load(2) with the kernel fd, one initrd fd and the command
line; several initrds (microcode + initramfs) are concatenated, each padded to 4 bytes as the kernel's cpio unpacker
expects (init/initramfs.c), into an unlinked temporary file on tmpfs, since the syscall takes one. `execute` syncs,
unmounts what the caller mounted and calls reboot(LINUX_REBOOT_CMD_KEXEC). Load, unload and execute pass the safety
guard (guard.py) first, so that nothing happens to a development machine by accident.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from kexec_core import guard, preflight, syscalls
from kexec_core.arch import Arch
from kexec_core.errors import ExecRefused, ImageError, KexecCoreError, KexecError, PreflightError
from kexec_core.image import KernelInfo, inspect_kernel
from kexec_core.initrd import InitrdInfo, inspect_initrd

__all__ = [
    "BootPlan",
    "ExecRefused",
    "KexecCoreError",
    "KexecError",
    "LoadMethod",
    "PreflightError",
    "execute",
    "execute_steps",
    "jump",
    "load",
    "loaded",
    "prepare",
    "release",
    "unload",
]

log = logging.getLogger(__name__)

KEXEC_LOADED = Path("/sys/kernel/kexec_loaded")
# Where concatenated initrds go: tmpfs, so nothing is written to a disk the new kernel may fsck.
TMPFS_DIRS = (Path("/run"), Path("/dev/shm"))
INITRD_ALIGN = 4


class LoadMethod(enum.StrEnum):
    """How the kernel gets into memory. kexec_load (user-space segments) will sit beside kexec_file_load."""

    KEXEC_FILE_LOAD = "kexec_file_load"

    def describe(self, plan: BootPlan) -> str:
        parts = plan.initrd_parts()
        if not parts:
            return f"{self}(kernel_fd, -1, cmdline, KEXEC_FILE_NO_INITRAMFS)"
        what = "initrd_fd" if len(parts) == 1 else f"initrd_fd (the {len(parts)} initrds concatenated)"
        return f"{self}(kernel_fd, {what}, cmdline, 0)"


@dataclass(frozen=True)
class FilePart:
    """A byte range of a file to hand to the kernel: a whole kernel or initrd, or a section of a UKI."""

    path: Path
    offset: int = 0
    size: int | None = None  # None: to the end of the file
    section: str | None = None  # the UKI section name, for messages

    @property
    def whole(self) -> bool:
        return self.offset == 0 and self.size is None

    def label(self) -> str:
        return f"{self.path} ({self.section} section)" if self.section else str(self.path)


@dataclass(frozen=True)
class BootPlan:
    """A checked kernel + initrds + command line, ready for `load`."""

    kernel: KernelInfo
    initrds: tuple[InitrdInfo, ...]
    cmdline: str
    method: LoadMethod = LoadMethod.KEXEC_FILE_LOAD
    devicetree: Path | None = None
    warnings: tuple[str, ...] = ()

    @property
    def initrd_size(self) -> int:
        return sum(i.size for i in self.initrds)

    def kernel_part(self) -> FilePart:
        """What is passed as kernel_fd: the file, or a UKI's .linux section (through a memfd)."""
        sect = self.kernel.pe.section(".linux") if self.kernel.pe and self.kernel.embedded else None
        if sect is None:
            return FilePart(self.kernel.path)
        return FilePart(self.kernel.path, sect.offset, sect.size, sect.name)

    def initrd_parts(self) -> list[FilePart]:
        """What goes into initrd_fd, in order: a UKI's .initrd section first, then the initrds given."""
        parts = [FilePart(i.path) for i in self.initrds]
        sect = self.kernel.pe.section(".initrd") if self.kernel.pe and self.kernel.embedded else None
        if sect is not None:
            parts.insert(0, FilePart(self.kernel.path, sect.offset, sect.size, sect.name))
        return parts

    def describe(self) -> list[str]:
        """Human lines: kernel (kind, version, arch), each initrd with its size, the command line, the syscall."""
        lines = [f"kernel:  {self.kernel.path} ({self.kernel.summary()}, {self.kernel.size} bytes)"]
        kpart = self.kernel_part()
        if not kpart.whole:
            lines.append(f"         loading its {kpart.section} section: {self.kernel.loaded_kernel.summary()}")
        lines += [f"initrd:  {p.label()} ({p.size} bytes)" for p in self.initrd_parts() if p.section]
        lines += [f"initrd:  {i.path} ({i.summary()})" for i in self.initrds]
        if not self.initrd_parts():
            lines.append("initrd:  none")
        lines.append(f"cmdline: {self.cmdline!r}")
        lines.append(f"load:    {self.method.describe(self)}")
        lines += [f"warning: {w}" for w in self.warnings]
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel.to_json(),
            "initrds": [i.to_json() for i in self.initrds],
            "cmdline": self.cmdline,
            "method": str(self.method),
            "warnings": list(self.warnings),
        }


def prepare(
    kernel: Path,
    initrds: Sequence[Path],
    cmdline: str,
    *,
    devicetree: Path | None = None,
    machine: Arch | None = None,
    meminfo: Path = preflight.MEMINFO,
) -> BootPlan:
    """Inspect the files and run the preflight checks. Raises PreflightError (ImageError for unreadable/bad files)."""
    info = inspect_kernel(Path(kernel))
    rds = tuple(inspect_initrd(Path(p)) for p in initrds)
    if devicetree is not None:
        # kexec_file_load has no devicetree argument: arm64 and riscv pass the running kernel's tree on.
        raise PreflightError(
            devicetree, "kexec_file_load cannot pass a devicetree (the running one is reused); needs kexec_load"
        )
    if info.embedded is not None and not cmdline and info.pe is not None:
        # As systemd-stub does without Secure Boot: the UKI's own .cmdline unless one is given.
        cmdline = info.pe.text(".cmdline") or ""
    preflight.run(info, rds, cmdline, machine=machine or Arch.running(), meminfo=meminfo)
    warnings = tuple(w for w in (i.warning for i in rds) if w)
    return BootPlan(kernel=info, initrds=rds, cmdline=cmdline, warnings=warnings)


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as err:
        raise ImageError(path, f"cannot open: {err.strerror}") from None


def _copy_part(part: FilePart, out: BinaryIO) -> None:
    with _open(part.path) as f:
        try:
            f.seek(part.offset)
            left = part.size
            while left is None or left > 0:
                chunk = f.read(1024 * 1024 if left is None else min(left, 1024 * 1024))
                if not chunk:
                    break
                out.write(chunk)
                if left is not None:
                    left -= len(chunk)
        except OSError as err:
            raise ImageError(part.path, f"cannot copy {part.label()}: {err.strerror}") from None
    if left:
        raise ImageError(part.path, f"{part.label()}: file shorter than its section table says")


@contextlib.contextmanager
def _part_file(part: FilePart) -> Iterator[BinaryIO]:
    """An open file holding exactly `part`: the file itself, or a memfd with the section copied in."""
    if part.whole:
        with _open(part.path) as f:
            yield f
        return
    fd = os.memfd_create(f"bootmenu-{part.section or 'part'}", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as out:
        _copy_part(part, out)
        out.flush()
        out.seek(0)
        yield out


def tmpfs_dir() -> Path:
    for d in TMPFS_DIRS:
        if d.is_dir() and os.access(d, os.W_OK):
            return d
    return Path(tempfile.gettempdir())


@contextlib.contextmanager
def _initrd_file(parts: Sequence[FilePart], tmpdir: Path | None = None) -> Iterator[BinaryIO | None]:
    """The one file to pass as initrd_fd: none, the initrd itself, or the parts concatenated on tmpfs."""
    if not parts:
        yield None
        return
    if len(parts) == 1:
        with _part_file(parts[0]) as f:
            yield f
        return
    directory = tmpdir or tmpfs_dir()
    try:
        # Unlinked at once: nothing is left behind, whatever happens to this process.
        out = tempfile.TemporaryFile(dir=directory, prefix="bootmenu-initrd-")  # noqa: SIM115 - closed by `with` below
    except OSError as err:
        raise ImageError(directory, f"cannot create the combined initrd: {err.strerror}") from None
    with out:
        for part in parts:
            try:
                _copy_part(part, out)
                out.write(b"\0" * (-out.tell() % INITRD_ALIGN))
            except OSError as err:  # writing: tmpfs full
                raise ImageError(directory, f"cannot write the combined initrd: {err.strerror}") from None
        out.flush()
        out.seek(0)
        yield out


def load(plan: BootPlan, *, dry_run: bool = False, force: bool = False, tmpdir: Path | None = None) -> None:
    """kexec_file_load the plan. Raises KexecError (syscall failure), ExecRefused (guard), ImageError (files).

    dry_run loads nothing (and does not consult the guard). `force` bypasses the guard: never on a development machine.
    """
    if dry_run:
        return
    guard.require_boot_environment("load a kernel", force=force)
    with _part_file(plan.kernel_part()) as kernel, _initrd_file(plan.initrd_parts(), tmpdir) as initrd:
        flags = 0 if initrd is not None else syscalls.flags().KEXEC_FILE_NO_INITRAMFS
        syscalls.kexec_file_load(kernel.fileno(), initrd.fileno() if initrd else -1, plan.cmdline, flags)


def unload(*, force: bool = False) -> None:
    """Unload a loaded (not crash) kernel: kexec_file_load with KEXEC_FILE_UNLOAD."""
    guard.require_boot_environment("unload the kexec kernel", force=force)
    syscalls.kexec_file_load(-1, -1, "", syscalls.flags().KEXEC_FILE_UNLOAD)


def loaded(path: Path | None = None) -> bool:
    """Whether a kernel is loaded for kexec (/sys/kernel/kexec_loaded); False when the kernel lacks kexec."""
    try:
        return (path or KEXEC_LOADED).read_text().strip() == "1"
    except OSError:
        return False


def execute_steps(mounts: Sequence[str] = ()) -> list[str]:
    """What execute would do, in order, for --dry-run and logs."""
    steps = ["sync()"]
    steps += [f"umount2({m!r}) (lazily if busy)" for m in reversed(mounts)]
    steps.append("reboot(LINUX_REBOOT_CMD_KEXEC)")
    return steps


def execute(*, mounts: Sequence[str] = (), force: bool = False, dry_run: bool = False) -> None:
    """Boot the loaded kernel: `release` then `jump`. Returns only in dry run; otherwise raises ExecRefused or
    KexecError.

    After a KexecError the mounts may be unmounted: the caller remounts what it needs and keeps running.
    """
    if dry_run:
        return
    guard.require_boot_environment("execute the loaded kernel", force=force)
    _require_loaded()  # before unmounting anything for nothing
    release(mounts=mounts, force=force)
    jump(force=force)


def release(*, mounts: Sequence[str] = (), force: bool = False) -> None:
    """sync(), then unmount `mounts` innermost first (lazily when busy): the filesystems are clean for the jump.

    A separate step so that a caller (the daemon) can quiesce devices between unmounting and jumping.
    """
    guard.require_boot_environment("unmount for the jump", force=force)
    syscalls.sync()
    for mount in reversed(mounts):  # innermost last-mounted first
        _unmount(mount)


def jump(*, force: bool = False) -> None:
    """reboot(LINUX_REBOOT_CMD_KEXEC) into the loaded kernel; raises ExecRefused or KexecError, never returns."""
    guard.require_boot_environment("execute the loaded kernel", force=force)
    _require_loaded()
    syscalls.reboot_kexec()
    # reboot() returns only on failure, which reboot_kexec raised; anything else is a kernel that ignored us.
    raise KexecError("reboot(LINUX_REBOOT_CMD_KEXEC)", 0, "the call returned although it should not have")


def _require_loaded() -> None:
    if KEXEC_LOADED.exists() and not loaded():
        raise ExecRefused("no kernel is loaded for kexec (/sys/kernel/kexec_loaded is 0): load one first")


def _unmount(mount: str) -> None:
    """Unmount, lazily if busy; a failure is logged, not raised: the data is synced and the boot should go on."""
    try:
        syscalls.umount2(mount)
    except KexecError as err:
        if err.errno == errno.EINVAL:  # not mounted (any more)
            return
        try:
            syscalls.umount2(mount, syscalls.flags().MNT_DETACH)
        except KexecError as lazy:
            log.warning("%s", lazy)
