"""`bootmenu report`: the daemon log, kernel log, pstore records, last boot plan and system information in one file."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "report",
        help="gather what a bug report about a failed boot needs into one text file",
        description="Writes system information, the last boot plan, the previous kernel's pstore records, the kernel "
        "log and the daemon's log (from /run/bootmenu, where the payload keeps them) into one text file.",
    )
    p.add_argument("-o", "--output", type=Path, help="the file to write (default: standard output)")
    p.add_argument("--run-dir", type=Path, default=Path("/run/bootmenu"), help="the payload's run directory")
    p.add_argument("--no-kmsg", action="store_true", help="leave out the kernel log")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from discovery.report import Sources, report

    text = report(Sources(run=args.run_dir, kmsg=None if args.no_kmsg else Path("/dev/kmsg")))
    if args.output is None:
        sys.stdout.write(text)
        return 0
    tmp = args.output.with_name(args.output.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, args.output)
    except OSError as exc:
        print(f"bootmenu report: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"bootmenu report: {args.output} ({len(text.encode())} bytes)", file=sys.stderr)
    return 0
