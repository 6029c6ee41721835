"""Preflight: everything that can be checked before a kernel is loaded, so a bad plan fails with a message, not a jump.

Checks: the kernel's architecture is the running machine's; kexec_file_load can load this kind of image here (the
per-architecture file loaders: x86_64 arch/x86/kernel/kexec-bzimage64.c, arm64 arch/arm64/kernel/kexec_image.c, riscv
arch/riscv/kernel/kexec_image.c and elf_kexec.c); the command line fits the kernel's limit; the kernel and initrds fit
in the memory a load can take (memory.allocatable: free pages and page cache, at most MemAvailable).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kexec_core.arch import Arch
from kexec_core.errors import MemoryShortError, PreflightError
from kexec_core.image import ImageKind, KernelInfo
from kexec_core.initrd import InitrdInfo
from kexec_core.memory import MEMINFO, allocatable

# COMMAND_LINE_SIZE of architectures whose image header does not say (arm64, riscv: 2048 in asm/setup.h / uapi).
DEFAULT_CMDLINE_SIZE = 2048

# What each architecture's kexec_file_load accepts.
FILE_LOAD_KINDS: dict[Arch, frozenset[ImageKind]] = {
    Arch.X86_64: frozenset({ImageKind.BZIMAGE}),
    Arch.ARM64: frozenset({ImageKind.IMAGE}),
    Arch.RISCV64: frozenset({ImageKind.IMAGE, ImageKind.ELF}),
}


def check_arch(kernel: KernelInfo, machine: Arch) -> None:
    if kernel.arch is Arch.UNKNOWN:
        raise PreflightError(kernel.path, f"cannot tell which CPU this {kernel.kind} is for; refusing to load it")
    if kernel.arch is not machine:
        raise PreflightError(
            kernel.path, f"a kernel for {kernel.arch}, but this machine is {machine}: it cannot boot here"
        )


def check_loadable(kernel: KernelInfo, machine: Arch) -> None:
    """Refuse kinds that kexec_file_load cannot load on `machine`, saying what would work instead."""
    kinds = FILE_LOAD_KINDS.get(machine)
    if kinds is None:
        raise PreflightError(kernel.path, f"kexec_file_load is not supported on {machine} by bootmenu")
    if kernel.kind is ImageKind.UKI and kernel.embedded is not None:
        # The .linux section is what gets loaded (through a memfd); judge that.
        if kernel.embedded.kind not in kinds:
            raise PreflightError(
                kernel.path, f"the .linux section of this UKI is a {kernel.embedded.kind}, not loadable here"
            )
        check_loadable(kernel.embedded, machine)
        return
    if kernel.kind in (ImageKind.COMPRESSED, ImageKind.EFI_ZBOOT):
        _check_decompressed(kernel, machine, kinds)
        return
    if kernel.kind in kinds:
        if kernel.bzimage is not None:
            problems = kernel.bzimage.kexec_file_problems()
            if problems:
                raise PreflightError(kernel.path, "kexec_file_load cannot load this bzImage: " + "; ".join(problems))
        if kernel.image is not None and kernel.image.big_endian:
            raise PreflightError(kernel.path, "a big-endian arm64 Image; kexec_file_load loads little-endian only")
        return
    advice = {
        ImageKind.ELF: "an ELF vmlinux needs kexec_load (segments built in user space), which bootmenu does not do "
        "yet; boot the bzImage/Image built with it instead",
        ImageKind.UKI: "a unified kernel image without a .linux section",
        ImageKind.PE: "an EFI application without a Linux boot header, not a kernel kexec can load",
    }.get(kernel.kind, f"kexec_file_load on {machine} loads {', '.join(sorted(kinds))} images only")
    raise PreflightError(kernel.path, f"{kernel.kind} image: {advice}")


def _check_decompressed(kernel: KernelInfo, machine: Arch, kinds: frozenset[ImageKind]) -> None:
    """A compressed kernel or EFI zboot image loads as what it decompresses to, once that is at hand."""
    what = "EFI zboot payload" if kernel.kind is ImageKind.EFI_ZBOOT else f"{kernel.compression}-compressed kernel"
    inner = kernel.inner
    if kernel.decompressed is None or inner is None:
        why = kernel.not_decompressed or "it was not decompressed"
        raise PreflightError(kernel.path, f"cannot load this {what}: {why}")
    check_arch(inner, machine)
    if inner.kind not in kinds:
        raise PreflightError(
            kernel.path,
            f"the {what} decompresses to {inner.kind}, which kexec_file_load on {machine} cannot load "
            f"(it takes {', '.join(sorted(kinds))})",
        )
    check_loadable(inner, machine)


def check_cmdline(kernel: KernelInfo, cmdline: str) -> None:
    if "\0" in cmdline:
        raise PreflightError(kernel.path, "the command line contains a NUL byte")
    limit = kernel.cmdline_size or DEFAULT_CMDLINE_SIZE
    length = len(cmdline.encode())
    # The length the kernel checks includes the terminating NUL.
    if length + 1 > limit:
        raise PreflightError(
            kernel.path, f"command line is {length} bytes, this kernel takes at most {limit - 1} (cmdline_size {limit})"
        )


def memory_needed(kernel: KernelInfo, initrds: Sequence[InitrdInfo], *, file_load: bool = True) -> int:
    """Bytes the load takes at its peak. The new kernel's pages (its init_size: the kernel segment) and a copy of
    each initrd in kernel pages are allocated either way. kexec_file_load (kernel/kexec_file.c) first reads both
    files whole into vmalloc'ed buffers, freed only after the segments are copied: the kernel file and the initrds
    twice. kexec_load copies from this process's memory: the kernel file read here, and one initrd mapped (mmap of
    the file: page cache, which the kernel reclaims as it copies), so the initrd once; several initrds are first
    concatenated on tmpfs, twice again."""
    loaded = kernel.loaded_kernel
    initrd_bytes = sum(i.size for i in initrds)
    copies = 1 if not file_load and len(initrds) == 1 else 2
    needed = loaded.size + kernel.memory_needed + copies * initrd_bytes
    if kernel.decompressed is not None:  # its tmpfs copy, held until the load is done
        needed += kernel.decompressed.size
    return needed


def check_memory(
    kernel: KernelInfo, initrds: Sequence[InitrdInfo], meminfo: Path = MEMINFO, *, file_load: bool = True
) -> None:
    available = allocatable(meminfo)
    if available is None:
        return
    needed = memory_needed(kernel, initrds, file_load=file_load)
    if needed > available:
        mib = 1024 * 1024
        copies = "once, mapped" if not file_load and len(initrds) == 1 else "twice"
        raise MemoryShortError(
            kernel.path,
            f"needs about {needed // mib} MiB (kernel {kernel.size // mib} MiB, {kernel.memory_needed // mib} MiB "
            f"once running, initrds {sum(i.size for i in initrds) // mib} MiB, {copies}) but only "
            f"{available // mib} MiB is available (MemFree and page cache in {meminfo}, at most MemAvailable)",
        )


def run(
    kernel: KernelInfo,
    initrds: Sequence[InitrdInfo],
    cmdline: str,
    *,
    machine: Arch,
    meminfo: Path = MEMINFO,
    file_load: bool = True,
) -> None:
    """All checks in the order a user would fix them; the first failure raises PreflightError.

    `file_load` False: the plan uses kexec_load, whose segment builder judges the kind of image instead.
    """
    if kernel.kind in (ImageKind.COMPRESSED, ImageKind.EFI_ZBOOT) and kernel.decompressed is None:
        _check_decompressed(kernel, machine, FILE_LOAD_KINDS.get(machine, frozenset()))
    check_arch(kernel, machine)
    if kernel.loaded_kernel is not kernel:
        check_arch(kernel.loaded_kernel, machine)
    if file_load:
        check_loadable(kernel, machine)
    check_cmdline(kernel, cmdline)
    check_memory(kernel, initrds, meminfo, file_load=file_load)
