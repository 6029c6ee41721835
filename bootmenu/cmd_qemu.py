"""`bootmenu qemu`: boots the payload in QEMU (TCG unless --kvm) with the serial console on this terminal.

Default kernel: the Debian kernel `make kernel` caches in .cache/kernel. Default payload: built into .cache/qemu (when
none is given). Default disks: the demo samples (bootmenu/samples), each as a GPT disk, with the real Debian kernel and
a small initrd in place of the sample kernels, so booting an entry really kexecs; the second kernel's /init prints its
command line and powers the VM off. A DIR argument to --disk becomes a disk the same way; a file is used as is.
`--arch arm64`: qemu-system-aarch64 `-M virt`, the arm64 payload (initramfs/arm64.py) and the Debian arm64 kernel from
`make arm64-payload`'s sysroot; the default disk is one extlinux.conf entry with `FDT` (the VM's own devicetree), which
the menu boots through kexec_load. Leave QEMU with Ctrl-A x.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
CACHE = Path(".cache")
KERNEL_ROOT = CACHE / "kernel" / "root"
# A sample file whose name starts like this is a kernel (or an initrd) placeholder to be replaced by a real one.
KERNEL_PREFIXES = ("vmlinuz", "bzImage", "linux")
INITRD_PREFIXES = ("initrd", "initramfs")


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "qemu",
        help="boot the payload in QEMU on sample disks, serial console here",
        description="Boot the bootmenu payload in QEMU (TCG; --kvm to use KVM) with the serial console on this "
        "terminal. Entries on the default sample disks really kexec into a kernel. Quit with Ctrl-A x.",
    )
    parser.add_argument("--kernel", type=Path, help="the payload kernel (default: the one `make kernel` caches)")
    parser.add_argument("--initramfs", type=Path, help="the payload (default: build it into .cache/qemu)")
    parser.add_argument(
        "--disk",
        action="append",
        default=[],
        type=Path,
        metavar="DIR|IMAGE",
        help="a raw disk image, or a directory made into one (repeatable; default: the demo samples)",
    )
    parser.add_argument("--kvm", action="store_true", help="use KVM instead of TCG (hangs on some hosts)")
    parser.add_argument("--append", default="", metavar="S", help="more kernel parameters (e.g. bootmenu.timeout=5)")
    parser.add_argument("--memory", type=int, default=1024, metavar="MB", help="guest memory (default: %(default)s)")
    parser.add_argument(
        "--arch",
        choices=("x86_64", "arm64"),
        default="x86_64",
        help="x86_64 (q35) or arm64 (virt, the arm64 payload and kernel of `make arm64-payload`; default disk: an "
        "extlinux entry with FDT)",
    )
    parser.set_defaults(run=run)


def _replacements(sample: Path, kernel: Path, initrd: Path) -> dict[str, Path]:
    """Every kernel and initrd placeholder in a sample tree, mapped to the real kernel or the second-stage initrd."""
    out: dict[str, Path] = {}
    for path in sorted(sample.rglob("*")):
        if not path.is_file():
            continue
        rel = str(path.relative_to(sample))
        if path.name.startswith(KERNEL_PREFIXES):
            out[rel] = kernel
        elif path.name.startswith(INITRD_PREFIXES):
            out[rel] = initrd
    return out


def _disk_for(directory: Path, work: Path, kernel: Path, initrd: Path) -> Path:
    from initramfs import disks

    image = work / f"{directory.name}.img"
    try:
        return disks.disk_from_directory(directory, image, _replacements(directory, kernel, initrd))
    except disks.DiskError:
        # Filesystems we cannot make without root (xfs, btrfs) become ext4 with the same UUID and label.
        with_ext4 = work / "ext4" / directory.name
        import shutil

        shutil.rmtree(with_ext4, ignore_errors=True)
        shutil.copytree(directory, with_ext4, symlinks=True)
        fs_file = with_ext4 / disks.FS_FILE
        lines = [ln for ln in fs_file.read_text().splitlines() if not ln.strip().lower().startswith("fstype")]
        fs_file.write_text("\n".join([*lines, "fstype=ext4"]) + "\n")
        return disks.disk_from_directory(with_ext4, image, _replacements(directory, kernel, initrd))


def _run_arm64(args: argparse.Namespace) -> int:
    import dataclasses

    from initramfs import arm64, guests
    from initramfs.builder import BuildOptions, build
    from initramfs.cpio import Compression
    from initramfs.qemu import ARM64_APPEND, Accel, Disk, VmConfig, kernel_in, running

    work = CACHE / "qemu"
    work.mkdir(parents=True, exist_ok=True)
    kernel = args.kernel or kernel_in(arm64.DEFAULT_SYSROOT)
    payload = args.initramfs
    if payload is None:
        payload = work / "payload-arm64.img"
        print("bootmenu qemu: building the arm64 payload ...", file=sys.stderr)
        options = BuildOptions(
            output=payload, kernel_modules=arm64.DEFAULT_SYSROOT, compression=Compression.GZIP, arch="arm64"
        )
        build(options)
    config = VmConfig(
        kernel=kernel,
        initrd=payload,
        append=f"{ARM64_APPEND} quiet {args.append}".strip(),
        memory_mb=args.memory,
        accel=Accel.KVM if args.kvm else Accel.TCG,
        hotplug_ports=0,
        arch="arm64",
    )
    second = guests.second_stage_initrd(work / "second-arm64.img", busybox=arm64.DEFAULT_SYSROOT / "bin" / "busybox")
    images = [p if p.is_file() else _disk_for(p, work, kernel, second) for p in args.disk]
    images = images or [arm64.extlinux_disk(work, config, append=f"{ARM64_APPEND} quiet")]
    config = dataclasses.replace(config, disks=tuple(Disk(i, serial=f"disk{n}") for n, i in enumerate(images)))
    print(f"bootmenu qemu: {' '.join(config.argv())}", file=sys.stderr)
    print("bootmenu qemu: quit with Ctrl-A x", file=sys.stderr)
    with running(config) as vm:
        code = vm.wait()
    return EXIT_OK if code == 0 else EXIT_FAILURE


def run(args: argparse.Namespace) -> int:
    from initramfs import guests
    from initramfs.builder import BuildError
    from initramfs.disks import DiskError
    from initramfs.qemu import Accel, Disk, QemuError, VmConfig, kernel_in, modules_in, running
    from initramfs.run import RunError

    if args.arch == "arm64":
        from initramfs.arm64 import DEFAULT_SYSROOT

        if args.kernel is None and not (DEFAULT_SYSROOT / ".complete").exists():
            print(f"bootmenu qemu: {DEFAULT_SYSROOT}: no arm64 sysroot (run `make arm64-payload`)", file=sys.stderr)
            return EXIT_USAGE
        for given in (args.kernel, args.initramfs, *args.disk):
            if given is not None and not given.exists():
                print(f"bootmenu qemu: {given}: no such file or directory", file=sys.stderr)
                return EXIT_USAGE
        try:
            return _run_arm64(args)
        except (QemuError, DiskError, BuildError, RunError, OSError) as exc:
            print(f"bootmenu qemu: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    work = CACHE / "qemu"
    try:
        kernel = args.kernel or kernel_in(KERNEL_ROOT)
        if not kernel.is_file():
            print(f"bootmenu qemu: --kernel {kernel}: no such file", file=sys.stderr)
            return EXIT_USAGE
        work.mkdir(parents=True, exist_ok=True)
        payload = args.initramfs
        if payload is None:
            from initramfs.builder import BuildOptions, build
            from initramfs.cpio import Compression

            payload = work / "payload.img"
            print("bootmenu qemu: building the payload ...", file=sys.stderr)
            build(BuildOptions(output=payload, kernel_modules=modules_in(KERNEL_ROOT), compression=Compression.GZIP))
        elif not payload.is_file():
            print(f"bootmenu qemu: --initramfs {payload}: no such file", file=sys.stderr)
            return EXIT_USAGE
        second = guests.second_stage_initrd(work / "second.img")
        sources = list(args.disk)
        if not sources:
            from bootmenu.cmd_demo import sample_roots

            sources = sample_roots()
        images: list[Path] = []
        for source in sources:
            if source.is_dir():
                images.append(_disk_for(source, work, kernel, second))
            elif source.is_file():
                images.append(source)
            else:
                print(f"bootmenu qemu: --disk {source}: no such file or directory", file=sys.stderr)
                return EXIT_USAGE
        config = VmConfig(
            kernel=kernel,
            initrd=payload,
            append=f"console=ttyS0,115200 panic=-1 quiet {args.append}".strip(),
            memory_mb=args.memory,
            disks=tuple(Disk(image, serial=f"disk{i}") for i, image in enumerate(images)),
            accel=Accel.KVM if args.kvm else Accel.TCG,
        )
        print(f"bootmenu qemu: {' '.join(config.argv())}", file=sys.stderr)
        print("bootmenu qemu: quit with Ctrl-A x", file=sys.stderr)
        with running(config) as vm:
            code = vm.wait()
        return EXIT_OK if code == 0 else EXIT_FAILURE
    except (QemuError, DiskError, BuildError, RunError, OSError) as exc:
        print(f"bootmenu qemu: {exc}", file=sys.stderr)
        return EXIT_FAILURE
