"""`bootmenu ui`: the boot menu on this terminal, a client of `bootmenu daemon` (issue 5, "Menu")."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_SOCKET = Path("/run/bootmenu.sock")  # bootmenu/cmd_daemon.py's default
EXIT_SHELL = 3  # `x` outside the payload: the caller (a shell loop, /init) starts the shell
CONNECT_TIMEOUT = 30.0  # in the payload the menu may start before the daemon's socket exists


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "ui",
        help="the boot menu on this terminal (a client of `bootmenu daemon`)",
        description="Shows the daemon's boot entries under their devices; Enter boots, e edits the command line "
        "once, h shows every key. Exit status: 0 after q, 3 after x (exit to a shell; with --payload, /bin/sh is "
        "started instead), 1 when the daemon cannot be reached.",
    )
    p.add_argument("--socket", type=Path, default=DEFAULT_SOCKET, help="the daemon's socket (default %(default)s)")
    p.add_argument(
        "--payload",
        action="store_true",
        help="running as the console program of the LinuxBoot payload: q does not quit, x execs /bin/sh, "
        "and the kernel console log level is lowered while the menu is shown",
    )
    p.add_argument("--ascii", action="store_true", default=None, help="draw with ASCII only")
    p.add_argument("--mono", action="store_true", default=None, help="no colours")
    p.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT, help="seconds to wait for the daemon")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from bootmenu.client import Client, ClientError
    from bootmenu.controller import ExitAction, Mode, run_menu

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("bootmenu ui: the menu needs a terminal on stdin and stdout", file=sys.stderr)
        return 2
    client = Client(args.socket)
    try:
        client.wait_connect(args.connect_timeout)
    except ClientError as exc:
        print(f"bootmenu ui: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    mode = Mode.PAYLOAD if args.payload else Mode.HOST
    action = run_menu(client, mode, ascii=args.ascii, mono=args.mono)
    if action is ExitAction.SHELL:
        if mode is Mode.PAYLOAD:
            print("bootmenu: starting a shell; `exit` returns to the menu", flush=True)
            os.execv("/bin/sh", ["/bin/sh"])
        return EXIT_SHELL
    return 0
