"""The `bootmenu` command: one console script, one module per subcommand.

Each subcommand module defines `add_parser(subparsers)` and `run(args) -> int`, and keeps its heavy imports inside
`run`, so that `bootmenu ui` in the payload does not pay for the initramfs builder's imports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Subcommand name -> module. Order is the order of `bootmenu --help`.
COMMANDS: dict[str, str] = {
    "scan": "bootmenu.cmd_scan",
    "kexec": "bootmenu.cmd_kexec",
    "daemon": "bootmenu.cmd_daemon",
    "ui": "bootmenu.cmd_ui",
    "demo": "bootmenu.cmd_demo",
    "initramfs": "bootmenu.cmd_initramfs",
    "qemu": "bootmenu.cmd_qemu",
    "passwd": "bootmenu.cmd_passwd",
    "report": "bootmenu.cmd_report",
}

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with `command` (a name from COMMANDS) only that subcommand's: the payload's `bootmenu ui`
    and `bootmenu daemon` then import one subcommand module, not all of them (issue 15: start-up time)."""
    parser = argparse.ArgumentParser(
        prog="bootmenu",
        description="A boot menu for LinuxBoot: finds boot entries on disks and kexecs the chosen kernel.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    names = [COMMANDS[command]] if command in COMMANDS else COMMANDS.values()
    for module_name in names:
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(words[0] if words else None)
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `bootmenu scan | head`: not an error worth a traceback.
        sys.stderr.close()
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
