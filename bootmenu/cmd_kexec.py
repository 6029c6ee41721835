"""`bootmenu kexec`: inspect, load, execute and unload kernels, modelled on kexec-tools (`kexec -l`, `-e`, `-u`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kexec_core.image import KernelInfo
    from kexec_core.initrd import InitrdInfo

EXIT_OK = 0
EXIT_FAILED = 1  # a syscall failed (the message quotes it with its errno)
EXIT_USAGE = 2  # bad usage
EXIT_REJECTED = 3  # the file or plan failed inspection or preflight; nothing was loaded
EXIT_REFUSED = 4  # the safety guard refused (not in the payload's boot environment and no --force)

EPILOG = """exit status:
  0  success (for status: a kernel is loaded)
  1  a syscall failed (the message quotes the call, errno and a hint); for status: nothing loaded
  2  bad usage
  3  the kernel/initrd or the plan was rejected by inspection or preflight; nothing was loaded
  4  refused by the safety guard: not in the bootmenu payload (no /etc/bootmenu-payload on an initramfs root)
     and no --force
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "kexec",
        help="inspect, load and boot kernels (like kexec-tools)",
        description="Inspect kernel images, load one with kexec_file_load (or kexec_load: -c, ELF, arm64 --dtb) "
        "and boot it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="kexec_command", metavar="ACTION", required=True)

    p = sub.add_parser(
        "inspect",
        help="describe a kernel or initrd image",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_decompress_limit(p)
    p.set_defaults(run=run, action="inspect")

    p = sub.add_parser(
        "load",
        help="check and load a kernel (kexec -l)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kernel", metavar="KERNEL")
    p.add_argument("--initrd", action="append", default=[], metavar="FILE", help="an initrd (repeat to concatenate)")
    cmd = p.add_mutually_exclusive_group()
    cmd.add_argument("--append", "--command-line", dest="cmdline", metavar="S", help="the kernel command line")
    cmd.add_argument("--reuse-cmdline", action="store_true", help="use the running kernel's /proc/cmdline")
    p.add_argument(
        "--dtb",
        metavar="FILE",
        help="a devicetree blob for the new arm64 kernel, /chosen rewritten (uses kexec_load; default on arm64: the "
        "running one, /sys/firmware/fdt, when kexec_load is used)",
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "-s", "--file-load", dest="method", action="store_const", const="kexec_file_load", help="use kexec_file_load"
    )
    how.add_argument(
        "-c",
        "--segments",
        dest="method",
        action="store_const",
        const="kexec_load",
        help="use kexec_load with segments built here (x86_64 bzImage or ELF vmlinux, arm64 Image)",
    )
    p.add_argument("--mem-min", type=_address, metavar="ADDR", help="lowest address for kexec_load segments")
    p.add_argument("--mem-max", type=_address, metavar="ADDR", help="highest address for kexec_load segments")
    p.add_argument("--dry-run", action="store_true", help="check and show the plan, load nothing")
    p.add_argument("--force", action="store_true", help="load even outside the bootmenu payload")
    _add_decompress_limit(p)
    p.set_defaults(run=run, action="load", method=None)

    p = sub.add_parser(
        "exec",
        help="boot the loaded kernel (kexec -e)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--force", action="store_true", help="boot even outside the bootmenu payload (reboots this machine)")
    p.add_argument("--dry-run", action="store_true", help="show what would happen")
    p.set_defaults(run=run, action="exec")

    p = sub.add_parser(
        "unload",
        help="unload the loaded kernel (kexec -u)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--force", action="store_true", help="unload even outside the bootmenu payload")
    p.set_defaults(run=run, action="unload")

    p = sub.add_parser(
        "status",
        help="whether a kernel is loaded (exit 0 if so)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(run=run, action="status")


def _size(text: str) -> int:
    """`64M`, `1G`, `4096`: bytes, with binary K/M/G suffixes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    scale = units.get(text[-1:].upper(), 1)
    digits = text[:-1] if scale != 1 else text
    if not digits.isdigit() or int(digits) == 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (bytes, or a number with K, M or G)")
    return int(digits) * scale


def _address(text: str) -> int:
    """`0x1000000`, `16M`, `4G`: a physical address."""
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return _size(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"not an address: {text!r} (a number, 0x..., or with K, M or G)") from None


def _add_decompress_limit(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-decompressed",
        type=_size,
        metavar="SIZE",
        help="largest decompressed kernel accepted when the file does not declare its size "
        "(default 512M, and never more than half of MemAvailable)",
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from kexec_core.errors import ExecRefused, KexecCoreError, PreflightError

    handler = {
        "inspect": _inspect_cmd,
        "load": _load_cmd,
        "exec": _exec_cmd,
        "unload": _unload_cmd,
        "status": _status_cmd,
    }[args.action]
    try:
        return handler(args)
    except PreflightError as err:
        code, message = EXIT_REJECTED, str(err)
    except ExecRefused as err:
        code, message = EXIT_REFUSED, str(err)
    except KexecCoreError as err:
        code, message = EXIT_FAILED, str(err)
    except OSError as err:  # e.g. /proc/cmdline unreadable: name the file, no traceback
        code, message = EXIT_FAILED, f"{err.filename or ''}: {err.strerror or err}".lstrip(": ")
    print(f"bootmenu kexec: {message}", file=sys.stderr)
    return code


def _inspect_cmd(args: argparse.Namespace) -> int:
    import json

    from kexec_core import image

    path = Path(args.file)
    info = _inspect(path, args.max_decompressed)
    segments: dict[str, Any] | None = None
    if isinstance(info, image.KernelInfo):
        info.close()  # only the description is wanted
        segments = _segments_of(path, info, args.max_decompressed)
    if args.json:
        out = info.to_json()
        if segments is not None:
            out["kexec_load"] = segments
        print(json.dumps(out, indent=2))
        return EXIT_OK
    print(f"{path}: {info.summary()}")
    for key, value in info.to_json().items():
        if isinstance(value, dict):
            for k, v in value.items():
                print(f"  {key}.{k}: {v}")
        elif key != "path":
            print(f"  {key}: {value}")
    if segments is not None:
        print("  kexec_load (-c, no initrd, empty command line):")
        for line in segments.get("lines", [segments.get("error")]):
            print(f"    {line}")
    return EXIT_OK


def _segments_of(path: Path, info: KernelInfo, limit: int | None) -> dict[str, Any] | None:
    """The segments `load -c` would make for this kernel on this machine (x86_64 bzImages; arm64 Images with the
    running devicetree), or why it cannot."""
    from kexec_core import boot
    from kexec_core.arch import Arch
    from kexec_core.errors import PreflightError
    from kexec_core.image import ImageKind

    wanted = {Arch.X86_64: ImageKind.BZIMAGE, Arch.ARM64: ImageKind.IMAGE}.get(Arch.running())
    if wanted is None or info.loaded_kernel.kind is not wanted:
        return None
    try:
        plan = boot.prepare(path, [], "", decompress_limit=limit, method=boot.LoadMethod.KEXEC_LOAD)
    except PreflightError as err:
        return {"error": err.problem}
    plan.close()
    assert plan.segments is not None
    return {**plan.segments.to_json(), "lines": plan.segments.describe()}


def _load_cmd(args: argparse.Namespace) -> int:
    import sys

    from kexec_core import boot

    cmdline = args.cmdline or ""
    if args.reuse_cmdline:
        cmdline = Path("/proc/cmdline").read_text().strip()
    method = boot.LoadMethod(args.method) if args.method else None
    if method is not boot.LoadMethod.KEXEC_LOAD and (args.mem_min is not None or args.mem_max is not None):
        print("bootmenu kexec: --mem-min/--mem-max place kexec_load segments: add -c", file=sys.stderr)
        return EXIT_USAGE
    layout = boot.MemoryLayout(mem_min=args.mem_min or 0, mem_max=args.mem_max or 1 << 64)
    plan = boot.prepare(
        Path(args.kernel),
        [Path(p) for p in args.initrd],
        cmdline,
        devicetree=Path(args.dtb) if args.dtb else None,
        decompress_limit=args.max_decompressed,
        method=method,
        memory=layout,
    )
    try:
        for line in plan.describe():
            print(line)
        boot.load(plan, dry_run=args.dry_run, force=args.force)
    finally:
        plan.close()
    print("dry run: nothing loaded" if args.dry_run else "loaded")
    return EXIT_OK


def _exec_cmd(args: argparse.Namespace) -> int:
    from kexec_core import boot

    if args.dry_run:
        for step in boot.execute_steps():
            print(f"would call {step}")
    boot.execute(force=args.force, dry_run=args.dry_run)
    return EXIT_OK


def _unload_cmd(args: argparse.Namespace) -> int:
    from kexec_core import boot

    boot.unload(force=args.force)
    print("unloaded")
    return EXIT_OK


def _status_cmd(args: argparse.Namespace) -> int:
    from kexec_core import boot

    is_loaded = boot.loaded()
    print("a kernel is loaded" if is_loaded else "no kernel is loaded")
    return EXIT_OK if is_loaded else EXIT_FAILED


def _inspect(path: Path, limit: int | None) -> KernelInfo | InitrdInfo:
    """A kernel, or else an initrd (a cpio archive, maybe compressed); the kernel's error if it is neither."""
    from kexec_core.errors import ImageError
    from kexec_core.image import ImageKind, Options, inspect_kernel
    from kexec_core.initrd import InitrdFormat, inspect_initrd

    try:
        kernel = inspect_kernel(path, Options(limit=limit))
    except ImageError as err:
        try:
            rd = inspect_initrd(path)
        except ImageError:
            raise err from None
        if rd.format is InitrdFormat.UNKNOWN:
            raise
        return rd
    if kernel.kind is ImageKind.COMPRESSED and (kernel.inner is None or kernel.inner.kind is ImageKind.UNKNOWN):
        rd = inspect_initrd(path)
        if rd.inner not in (None, InitrdFormat.UNKNOWN):
            return rd
    return kernel
