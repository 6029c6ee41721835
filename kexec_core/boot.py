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
import functools
import logging
import mmap
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from kexec_core import arm64, efi, fdt, guard, preflight, syscalls, x86_64
from kexec_core.arch import Arch
from kexec_core.errors import ExecRefused, ImageError, KexecCoreError, KexecError, MemoryShortError, PreflightError
from kexec_core.fileio import open_regular
from kexec_core.image import ImageKind, KernelInfo, Options, inspect_kernel
from kexec_core.initrd import InitrdInfo, inspect_initrd
from kexec_core.memory import MEMINFO
from kexec_core.segments import PAGE, MemRange, SegmentBytes, SegmentPlan

__all__ = [
    "BootPlan",
    "ExecRefused",
    "KexecCoreError",
    "KexecError",
    "LoadMethod",
    "MemoryLayout",
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
    """How the kernel gets into memory: the kernel parses the files (kexec_file_load), or user space builds the
    segments (kexec_load: x86_64 bzImage and ELF vmlinux, see x86_64.py; arm64 Image with a devicetree, arm64.py)."""

    KEXEC_FILE_LOAD = "kexec_file_load"
    KEXEC_LOAD = "kexec_load"

    def describe(self, plan: BootPlan) -> str:
        if plan.segments is not None:
            n = len(plan.segments.segments)
            return f"{self}(entry={plan.segments.entry:#x}, nr_segments={n}, segments, KEXEC_ARCH_DEFAULT)"
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
    file: BinaryIO | None = field(default=None, compare=False)  # already open: a decompressed kernel's memfd

    @property
    def whole(self) -> bool:
        return self.offset == 0 and self.size is None and self.file is None

    def label(self) -> str:
        if self.file is not None:
            return f"{self.path} ({self.section})"
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
    segments: SegmentPlan | None = field(default=None, compare=False)  # for kexec_load

    @property
    def initrd_size(self) -> int:
        return sum(i.size for i in self.initrds)

    def close(self) -> None:
        """Release what the plan holds open (a decompressed kernel's tmpfs copy); also done when it is freed."""
        self.kernel.close()

    def kernel_part(self) -> FilePart:
        """What is passed as kernel_fd: the file, its decompressed copy, or a UKI's .linux section (memfd)."""
        d = self.kernel.decompressed
        if d is not None:
            return FilePart(self.kernel.path, size=d.size, section=f"decompressed from {d.compression}", file=d.file)
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
        d = self.kernel.decompressed
        if d is not None:
            lines.append(
                f"         decompressed ({d.compression}) in user space to {d.name} on tmpfs by {d.program}: "
                f"{d.size} bytes (at most {d.cap.describe()}); loading that: {self.kernel.loaded_kernel.summary()}"
            )
        elif not kpart.whole:
            lines.append(f"         loading its {kpart.section} section: {self.kernel.loaded_kernel.summary()}")
        lines += [f"initrd:  {p.label()} ({p.size} bytes)" for p in self.initrd_parts() if p.section]
        lines += [f"initrd:  {i.path} ({i.summary()})" for i in self.initrds]
        if not self.initrd_parts():
            lines.append("initrd:  none")
        lines.append(f"cmdline: {self.cmdline!r}")
        if self.devicetree is not None:
            lines.append(f"dtb:     {self.devicetree}")
        lines.append(f"load:    {self.method.describe(self)}")
        if self.segments is not None:
            lines += [f"         {line}" for line in self.segments.describe()]
        lines += [f"warning: {w}" for w in self.warnings]
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel.to_json(),
            "initrds": [i.to_json() for i in self.initrds],
            "cmdline": self.cmdline,
            "method": str(self.method),
            "segments": self.segments.to_json() if self.segments else None,
            "warnings": list(self.warnings),
        }


def prepare(
    kernel: Path,
    initrds: Sequence[Path],
    cmdline: str,
    *,
    devicetree: Path | None = None,
    machine: Arch | None = None,
    meminfo: Path = MEMINFO,
    decompress_limit: int | None = None,
    method: LoadMethod | None = None,
    memory: MemoryLayout | None = None,
) -> BootPlan:
    """Inspect the files and run the preflight checks. Raises PreflightError (ImageError for unreadable/bad files).

    A compressed kernel is decompressed here (to tmpfs, at most `decompress_limit` bytes, see decompress.py) and the
    plan holds the copy until `close()` or until it is freed. `method` None chooses: kexec_load for an x86_64 ELF
    vmlinux and for an arm64 kernel given a devicetree (kexec_file_load can take neither), kexec_file_load otherwise.
    """
    info = inspect_kernel(Path(kernel), Options(limit=decompress_limit, meminfo=meminfo))
    arch = machine or Arch.running()
    chosen = method is None
    if method is None:
        elf_kernel = info.loaded_kernel.kind is ImageKind.ELF and arch is Arch.X86_64
        with_dtb = devicetree is not None and arch is Arch.ARM64
        method = LoadMethod.KEXEC_LOAD if elf_kernel or with_dtb else LoadMethod.KEXEC_FILE_LOAD
    try:
        check = functools.partial(
            _checked_plan, info, initrds, cmdline, devicetree=devicetree, machine=arch, meminfo=meminfo
        )
        try:
            plan = check(file_load=method is LoadMethod.KEXEC_FILE_LOAD)
        except MemoryShortError as short:
            # kexec_file_load copies each file into the kernel before copying it again into the new kernel's
            # pages; kexec_load copies a mapped initrd once (preflight.memory_needed). Chosen by itself only when
            # that is what makes the boot fit, for the images whose segments are built here.
            if not (chosen and method is LoadMethod.KEXEC_FILE_LOAD and _segments_possible_for(info, arch)):
                raise
            method = LoadMethod.KEXEC_LOAD
            plan = check(file_load=False)
            note = f"kexec_load chosen: kexec_file_load would not fit ({short.problem})"
            plan = replace(plan, warnings=(*plan.warnings, note))
        if method is LoadMethod.KEXEC_LOAD:
            plan = _with_segments(plan, machine or Arch.running(), memory or MemoryLayout())
        return plan
    except BaseException:
        info.close()
        raise


@dataclass(frozen=True)
class MemoryLayout:
    """Where kexec_load segments may go: the memory map (None: x86_64 reads /sys/firmware/memmap, arm64 the System
    RAM of /proc/iomem or else the devicetree's /memory), ranges to keep clear (None: the crash kernel region, and on
    arm64 the "reserved" ranges of /proc/iomem), kexec-tools' --mem-min/--mem-max, and on arm64 the devicetree used
    when the entry names none (the running kernel's)."""

    memmap: tuple[MemRange, ...] | None = None
    avoid: tuple[tuple[int, int], ...] | None = None
    mem_min: int = 0
    mem_max: int = 1 << 64
    running_fdt: Path | None = None  # None: arm64.RUNNING_FDT
    iomem: Path | None = None  # None: arm64.IOMEM
    # The running kernel's page size, which kexec_load aligns segments to (arm64 kernels may use 16K or 64K pages);
    # None: this process's page size on arm64, 4096 elsewhere (plans made for another machine, tests).
    page_size: int | None = None
    # x86_64: the sysfs root the EFI hand-off is read from (efi.py). None: /sys when the memory map is read from
    # this machine too (memmap None), else no EFI hand-off (a plan for another machine, tests).
    sysfs: Path | None = None


def _with_segments(plan: BootPlan, machine: Arch, layout: MemoryLayout) -> BootPlan:
    loaded = plan.kernel.loaded_kernel
    arm64_image = machine is Arch.ARM64 and loaded.kind is ImageKind.IMAGE
    if not arm64_image and (machine is not Arch.X86_64 or loaded.kind not in (ImageKind.BZIMAGE, ImageKind.ELF)):
        raise PreflightError(
            plan.kernel.path,
            f"kexec_load segments are built for x86_64 bzImages and ELF kernels and arm64 Images only (this is a "
            f"{loaded.kind} for {machine}); use kexec_file_load (-s)",
        )
    with _part_file(plan.kernel_part()) as f:
        kernel = _read_all(plan.kernel.path, f)
    with _initrd_file(plan.initrd_parts()) as rd:
        initrd = b"" if rd is None else _mapped(plan.kernel.path, rd)
    sources = _sources(plan)
    if arm64_image:
        return _with_arm64_segments(plan, kernel, initrd, layout, sources)
    memmap = layout.memmap if layout.memmap is not None else tuple(x86_64.read_memmap())
    avoid = layout.avoid if layout.avoid is not None else tuple(x86_64.read_crash_regions())
    lo, hi = layout.mem_min, layout.mem_max
    sysfs = layout.sysfs if layout.sysfs is not None else (efi.SYSFS if layout.memmap is None else None)
    handoff = efi.read(sysfs) if sysfs is not None else None
    # An ELF vmlinux places its PT_LOAD segments, a bzImage its protected-mode code; the rest is the same.
    build = (
        functools.partial(x86_64.build_elf, plan.kernel.path, loaded.elf)
        if loaded.elf is not None
        else functools.partial(x86_64.build, plan.kernel.path)
    )
    segments = build(kernel, initrd, plan.cmdline, memmap=memmap, avoid=avoid, mem_min=lo, mem_max=hi, efi=handoff)
    labelled = tuple(
        replace(s, source=sources.get(s.name.split()[0], "bootmenu (built: boot_params, e820 table, command line)"))
        for s in segments.segments
    )
    return replace(plan, method=LoadMethod.KEXEC_LOAD, segments=replace(segments, segments=labelled))


def _sources(plan: BootPlan) -> dict[str, str]:
    """Where each segment's bytes come from, by segment name, for the plan and the kmsg line."""
    kpart = plan.kernel_part()
    return {
        "kernel": kpart.label(),
        "PT_LOAD": kpart.label(),
        "initrd": " + ".join(p.label() for p in plan.initrd_parts()),
        "trampoline": "bootmenu (generated code)",
        "setup_data": "bootmenu (built from sysfs: firmware/efi, its runtime-map, kernel/boot_params)",
    }


def _with_arm64_segments(
    plan: BootPlan, kernel: bytes, initrd: SegmentBytes, layout: MemoryLayout, sources: dict[str, str]
) -> BootPlan:
    """arm64: the entry's devicetree (or the running one) with /chosen rewritten, and the segments (arm64.py)."""
    dtb_path = plan.devicetree or layout.running_fdt or arm64.RUNNING_FDT
    try:
        tree = fdt.read(dtb_path)
    except ImageError as err:
        if plan.devicetree is None:
            raise PreflightError(
                dtb_path, f"no devicetree given and the running one cannot be used: {err.problem}"
            ) from None
        raise
    if layout.memmap is not None:
        ram, avoid = list(layout.memmap), [*(layout.avoid or ()), *tree.reserved()]
    else:
        ram, avoid = arm64.memory_of(tree, arm64.read_iomem(layout.iomem or arm64.IOMEM), plan.kernel.path)
        avoid += list(layout.avoid or ())
    sources["dtb"] = str(dtb_path) if plan.devicetree else f"{dtb_path} (the running kernel's)"
    page = layout.page_size or (os.sysconf("SC_PAGE_SIZE") if Arch.running() is Arch.ARM64 else PAGE)
    segments, warnings = arm64.build(
        plan.kernel.path,
        kernel,
        initrd,
        plan.cmdline,
        tree=tree,
        ram=ram,
        avoid=avoid,
        mem_min=layout.mem_min,
        mem_max=layout.mem_max,
        sources=sources,
        page=page,
    )
    return replace(
        plan,
        method=LoadMethod.KEXEC_LOAD,
        segments=segments,
        devicetree=dtb_path,
        warnings=(*plan.warnings, *warnings),
    )


def _mapped(path: Path, f: BinaryIO) -> bytes | mmap.mmap:
    """The file mapped read-only (kexec_load copies it from the page cache, which the kernel can reclaim, instead of
    from a second copy in this process); the mapping outlives the file object and lives as long as the plan (its
    segments are described after the load too), so the daemon's read-only mount of that filesystem is unmounted
    lazily before the jump (boot.unmount_lazily). An empty file reads as b""."""
    try:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as err:
        raise ImageError(path, f"cannot map {getattr(f, 'name', 'the initrd')}: {err.strerror}") from None


def _read_all(path: Path, f: BinaryIO) -> bytes:
    try:
        return os.pread(f.fileno(), os.fstat(f.fileno()).st_size, 0)
    except OSError as err:
        raise ImageError(path, f"cannot read: {err.strerror}") from None


def _checked_plan(
    info: KernelInfo,
    initrds: Sequence[Path],
    cmdline: str,
    *,
    devicetree: Path | None,
    machine: Arch,
    meminfo: Path,
    file_load: bool,
) -> BootPlan:
    rds = tuple(inspect_initrd(Path(p)) for p in initrds)
    if devicetree is not None:
        if machine is not Arch.ARM64:
            raise PreflightError(
                devicetree, f"a devicetree is passed to arm64 kernels only (bootmenu builds none for {machine})"
            )
        if file_load:
            # kexec_file_load has no devicetree argument: arm64 passes the running kernel's tree on.
            raise PreflightError(
                devicetree,
                "kexec_file_load cannot pass a devicetree (the running one is reused): use kexec_load (-c, chosen "
                "by itself when a devicetree is given)",
            )
        fdt.read(devicetree)  # a bad blob is refused here, naming the file and the offset
    if info.embedded is not None and not cmdline and info.pe is not None:
        # As systemd-stub does without Secure Boot: the UKI's own .cmdline unless one is given.
        cmdline = info.pe.text(".cmdline") or ""
    preflight.run(info, rds, cmdline, machine=machine, meminfo=meminfo, file_load=file_load)
    warnings = tuple(w for w in (i.warning for i in rds) if w)
    return BootPlan(kernel=info, initrds=rds, cmdline=cmdline, devicetree=devicetree, warnings=warnings)


def _open(path: Path) -> BinaryIO:
    return open_regular(path, "a file kexec can load")


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
    if part.file is not None:
        part.file.seek(0)
        yield part.file
        return
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
    """Load the plan: kexec_file_load, or kexec_load with its segments (also when kexec_file_load is ENOSYS).

    Raises KexecError (syscall failure), ExecRefused (guard), ImageError (files).

    dry_run loads nothing (and does not consult the guard). `force` bypasses the guard: never on a development machine.
    """
    if dry_run:
        return
    guard.require_boot_environment("load a kernel", force=force)
    if plan.segments is not None:
        segments = [syscalls.Segment(s.buf, s.mem, s.memsz) for s in plan.segments.segments]
        log.info("kexec_load: %s", "; ".join(plan.segments.describe()))
        syscalls.kexec_load(plan.segments.entry, segments, syscalls.flags().KEXEC_ARCH_DEFAULT)
        return
    try:
        with _part_file(plan.kernel_part()) as kernel, _initrd_file(plan.initrd_parts(), tmpdir) as initrd:
            flags = 0 if initrd is not None else syscalls.flags().KEXEC_FILE_NO_INITRAMFS
            syscalls.kexec_file_load(kernel.fileno(), initrd.fileno() if initrd else -1, plan.cmdline, flags)
    except KexecError as err:
        # A kernel built without CONFIG_KEXEC_FILE: kexec_load does the same job if its segments can be built here.
        # Never for EPERM/EKEYREJECTED/EBADMSG: a signature or lockdown refusal is not to be dodged (and lockdown
        # refuses kexec_load as well).
        if err.errno != errno.ENOSYS or not _segments_possible(plan):
            raise
        fallback = _with_segments(plan, Arch.running(), MemoryLayout())
        assert fallback.segments is not None
        log.warning("%s; loading with kexec_load instead: %s", err, "; ".join(fallback.segments.describe()))
        load(fallback, force=force, tmpdir=tmpdir)


def _segments_possible(plan: BootPlan) -> bool:
    return _segments_possible_for(plan.kernel, Arch.running())


def _segments_possible_for(info: KernelInfo, machine: Arch) -> bool:
    kind = info.loaded_kernel.kind
    return (machine is Arch.X86_64 and kind is ImageKind.BZIMAGE) or (machine is Arch.ARM64 and kind is ImageKind.IMAGE)


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
        unmount_lazily(mount)


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


def unmount_lazily(mount: str) -> None:
    """Unmount, lazily if busy; a failure is logged, not raised: the data is synced and the jump (or the reboot
    the operator asked for, kexec_core.power) should go on."""
    try:
        syscalls.umount2(mount)
    except KexecError as err:
        if err.errno == errno.EINVAL:  # not mounted (any more)
            return
        try:
            syscalls.umount2(mount, syscalls.flags().MNT_DETACH)
        except KexecError as lazy:
            log.warning("%s", lazy)
