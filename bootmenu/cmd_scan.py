"""`bootmenu scan [--json] PATH...`: the boot entries GRUB, BLS or syslinux would show on directory trees.

Human output is a tree per device and submenu with the default marked `*`; `--json` prints one array of every entry in
menu order (depth first), the shape of `BootEntry.to_json`. Diagnostics go with the tree, or to stderr with `--json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from discovery.entry import BootEntry
    from discovery.scan import ScannedFilesystem

EXIT_OK = 0
EXIT_USAGE = 2


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "scan",
        help="list the boot entries on filesystem trees",
        description="Read the boot configs (GRUB, Boot Loader Spec, syslinux) of each PATH, the root directory of a "
        "filesystem, and list the entries the boot loader would show. A `.bootmenu-fs` file in a PATH may give its "
        "name, uuid, label and fstype (key=value lines) so GRUB `search` can find it from another PATH.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", type=Path, help="root directory of a filesystem")
    parser.add_argument("--json", action="store_true", help="print a JSON array of entries in menu order")
    parser.add_argument(
        "--platform",
        choices=("efi", "pc"),
        help="firmware GRUB's $grub_platform reports (default: efi when /sys/firmware/efi exists, else pc)",
    )
    parser.add_argument("--cpu", help="what GRUB's $grub_cpu reports (default: this machine's, e.g. x86_64)")
    parser.add_argument(
        "--dmi-table",
        type=Path,
        default=Path("/sys/firmware/dmi/tables/DMI"),
        metavar="FILE",
        help="SMBIOS table the syslinux SYSAPPEND words (SYSUUID=, SYSVENDOR=, ...) are made from (default: this "
        "machine's, readable by root; /dev/null: none)",
    )
    parser.add_argument(
        "--cpuinfo",
        type=Path,
        default=Path("/proc/cpuinfo"),
        metavar="FILE",
        help="cpuinfo the SYSAPPEND CPU= word is made from (default: this machine's; /dev/null: none)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from discovery.dmi import Sysappend
    from discovery.fs import Platform
    from discovery.scan import ScanError, scan

    detected = Platform.detect()
    platform = Platform(firmware=args.platform or detected.firmware, cpu=args.cpu or detected.cpu)
    sysappend = Sysappend.detect(args.dmi_table, args.cpuinfo)
    try:
        scanned = scan(args.paths, platform, sysappend)
    except ScanError as exc:
        print(f"bootmenu scan: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        entries = [entry.to_json() for item in scanned for entry in item.result.entries]
        json.dump(entries, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        for item in scanned:
            for diag in item.result.diagnostics:
                print(f"{item.fs.name}: {diag.severity}: {diag}", file=sys.stderr)
    else:
        for index, item in enumerate(scanned):
            if index:
                sys.stdout.write("\n")
            print_tree(item, sys.stdout)
    return EXIT_OK


def print_tree(item: ScannedFilesystem, out: TextIO) -> None:
    """One device: its entries indented under their submenus, `*` on the default, then the diagnostics."""
    fs, result = item.fs, item.result
    out.write(f"{fs.describe()}  ({fs.root})\n")
    if result.timeout is not None:
        out.write(f"  timeout: {result.timeout:g}s\n")
    if not result.entries:
        out.write("  (no boot entries)\n")
    shown: tuple[str, ...] = ()
    for entry in result.entries:
        # Print the submenu headers this entry enters that the previous one was not in.
        common = _common_prefix(shown, entry.submenu)
        for depth in range(common, len(entry.submenu)):
            out.write(f"{'  ' * (depth + 1)}  {entry.submenu[depth]} >\n")
        shown = entry.submenu
        _write_entry(entry, "  " * (len(entry.submenu) + 1), out)
    if result.diagnostics:
        out.write("  warnings:\n")
        for diag in result.diagnostics:
            out.write(f"    {diag.severity}: {diag}\n")


def _write_entry(entry: BootEntry, indent: str, out: TextIO) -> None:
    mark = "*" if entry.default else " "
    source = f"{entry.format} {entry.config}:{entry.line}" if entry.line else f"{entry.format} {entry.config}"
    out.write(f"{indent}{mark} {entry.title}    [{source}]\n")
    detail = indent + "      "
    where = f" on {entry.device}" if entry.device and entry.device != entry.config_device else ""
    out.write(f"{detail}kernel  {entry.kernel}{where}\n")
    if entry.unresolved:
        out.write(f"{detail}unresolved device: {entry.unresolved}\n")
    for initrd in entry.initrds:
        out.write(f"{detail}initrd  {initrd}\n")
    if entry.devicetree:
        out.write(f"{detail}fdt     {entry.devicetree}\n")
    if entry.cmdline:
        out.write(f"{detail}cmdline {entry.cmdline}\n")
    for warning in entry.warnings:
        out.write(f"{detail}warning: {warning}\n")


def _common_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n
