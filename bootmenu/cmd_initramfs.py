"""`bootmenu initramfs build --output FILE ...`: builds the LinuxBoot payload initramfs (see initramfs/builder.py).

Prints a size report: the compressed and uncompressed totals and the largest parts and files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _extra(value: str) -> tuple[str, Path]:
    dest, sep, src = value.partition("=")
    if not sep or not dest or not src:
        raise argparse.ArgumentTypeError(
            f"expected PATH=SRC (path in the image = file or directory here), got {value!r}"
        )
    return dest, Path(src)


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "initramfs",
        help="build the firmware payload initramfs",
        description="Build the LinuxBoot payload: Python, bootmenu, busybox and kernel modules in one cpio archive.",
    )
    actions = parser.add_subparsers(dest="initramfs_command", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build",
        help="build the payload initramfs",
        description="Build a deterministic initramfs (the same inputs give the same bytes) and print its size report.",
    )
    build.add_argument("--output", "-o", type=Path, required=True, metavar="FILE", help="the archive to write")
    build.add_argument(
        "--kernel-modules",
        type=Path,
        metavar="DIR",
        help="a lib/modules/<version> tree, or an unpacked kernel package holding one (dpkg -x; depmod output not "
        "needed), to take storage and filesystem modules from",
    )
    build.add_argument(
        "--compress",
        choices=("xz", "gzip", "zstd", "none"),
        default="zstd",
        help="compression (default: zstd, the quickest to unpack at boot; xz is about 9%% smaller and unpacks "
        "2.4x slower)",
    )
    build.add_argument(
        "--busybox", type=Path, default=Path("/bin/busybox"), help="a static busybox (default: %(default)s)"
    )
    build.add_argument(
        "--extra",
        type=_extra,
        action="append",
        default=[],
        metavar="PATH=SRC",
        help="also put file or directory SRC at PATH in the image (repeatable)",
    )
    build.add_argument(
        "--stage-dir", type=Path, metavar="DIR", help="stage the tree in DIR and keep it (for debugging)"
    )
    build.add_argument(
        "--settings",
        type=Path,
        metavar="FILE",
        help="a TOML settings file for the daemon, put at /etc/bootmenu/settings.toml (kernel parameters still win)",
    )
    build.add_argument("--no-strip", action="store_true", help="keep symbols in the copied ELF files")
    build.add_argument(
        "--uncompressed-modules",
        action="store_true",
        help="stage kernel modules as plain .ko (default .ko.xz, which busybox modprobe decompresses: less RAM)",
    )
    build.add_argument(
        "--arch",
        choices=("x86_64", "arm64"),
        default="x86_64",
        help="the payload's architecture (default: %(default)s); arm64 takes its programs and libraries from "
        "--sysroot and cross-compiles kexec_core's cffi module with aarch64-linux-gnu-gcc",
    )
    build.add_argument(
        "--sysroot",
        type=Path,
        metavar="DIR",
        help="with --arch arm64: the Debian arm64 packages unpacked (default: .cache/arm64-payload/root, made by "
        "`make arm64-payload`); its kernel modules are used unless --kernel-modules names others",
    )
    build.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from elftools.common.exceptions import ELFError

    from initramfs.builder import BuildError, BuildOptions, build
    from initramfs.cpio import Compression, CpioError
    from initramfs.elf import ElfDependencyError
    from initramfs.modules import ModuleError
    from initramfs.python_runtime import PythonRuntimeError
    from initramfs.run import RunError

    if args.kernel_modules is not None and not args.kernel_modules.is_dir():
        print(f"bootmenu initramfs build: --kernel-modules {args.kernel_modules}: not a directory", file=sys.stderr)
        return EXIT_USAGE
    kernel_modules = args.kernel_modules
    if args.arch == "arm64" and kernel_modules is None:
        from initramfs.arm64 import DEFAULT_SYSROOT

        kernel_modules = args.sysroot or DEFAULT_SYSROOT
    options = BuildOptions(
        output=args.output,
        kernel_modules=kernel_modules,
        compression=Compression(args.compress),
        busybox=args.busybox,
        extra=tuple(args.extra),
        strip=not args.no_strip,
        compress_modules=not args.uncompressed_modules,
        keep_stage=args.stage_dir,
        settings=args.settings,
        arch=args.arch,
        sysroot=args.sysroot,
    )
    try:
        report = build(options)
    except (BuildError, CpioError, ElfDependencyError, ModuleError, PythonRuntimeError, RunError, ELFError) as e:
        print(f"bootmenu initramfs build: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as e:
        print(f"bootmenu initramfs build: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        return EXIT_FAILURE
    print(report.format())
    return EXIT_OK
