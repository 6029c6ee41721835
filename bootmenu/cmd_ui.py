"""`bootmenu ui`: the boot menu on this terminal, a client of `bootmenu daemon` (issue 5, "Menu")."""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

DEFAULT_SOCKET = Path("/run/bootmenu.sock")  # bootmenu/cmd_daemon.py's default
EXIT_SHELL = 3  # `x`: the caller (the payload's /init, a shell loop) starts the shell; initramfs/data/init agrees
CONNECT_TIMEOUT = 30.0  # in the payload the menu may start before the daemon's socket exists


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "ui",
        help="the boot menu on this terminal (a client of `bootmenu daemon`)",
        description="Shows the daemon's boot entries under their devices; Enter boots, e edits the command line "
        "once, h shows every key. Exit status: 0 after q, 3 after x (exit to a shell: the caller, such as the "
        "payload's /init, starts it), 1 when the daemon cannot be reached, 2 without a terminal. In the payload the "
        "menu draws at once and waits for a daemon that is still starting (looking for devices).",
    )
    p.add_argument("--socket", type=Path, default=DEFAULT_SOCKET, help="the daemon's socket (default %(default)s)")
    p.add_argument(
        "--payload",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the console program of the LinuxBoot payload (default: detected, as kexec_core's safety guard does): "
        "q does not quit, and the kernel console log level is lowered while the menu is shown",
    )
    p.add_argument("--ascii", action="store_true", default=None, help="draw with ASCII only")
    p.add_argument("--mono", action="store_true", default=None, help="no colours")
    p.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT, help="seconds to wait for the daemon")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from bootmenu import urwid_parts

    # Before anything imports urwid: only the widgets, display and loop the menu uses (3 MiB less per menu).
    urwid_parts.install()
    from bootmenu.client import Client, ClientError
    from bootmenu.controller import ExitAction, Mode, run_menu

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("bootmenu ui: the menu needs a terminal on stdin and stdout", file=sys.stderr)
        return 2
    payload = args.payload
    if payload is None:
        from kexec_core.guard import environment

        payload = environment().is_boot_environment
    client = Client(args.socket)
    try:
        if payload:
            # The payload's /init starts the menu before the daemon: a socket not there yet is the daemon starting,
            # which the menu waits for on screen (it connects when the socket listens), not a reason to exit.
            client.connect()
        else:
            client.wait_connect(args.connect_timeout)
    except ClientError as exc:
        if not (payload and exc.errno in (errno.ENOENT, errno.ECONNREFUSED)):
            print(f"bootmenu ui: {exc.filename}: {exc.strerror}", file=sys.stderr)
            return 1
    action = run_menu(client, Mode.PAYLOAD if payload else Mode.HOST, ascii=args.ascii, mono=args.mono)
    return EXIT_SHELL if action is ExitAction.SHELL else 0
