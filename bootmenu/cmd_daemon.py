"""`bootmenu daemon`: the discovery daemon (issue 5). Finds boot entries on every disk and serves them to UIs."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

DEFAULT_SOCKET = Path("/run/bootmenu.sock")
DEFAULT_RUN_DIR = Path("/run/bootmenu/mnt")
PAYLOAD_SETTINGS = Path("/etc/bootmenu/settings.toml")  # discovery.settings.PAYLOAD_SETTINGS (not imported at start-up)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "daemon",
        help="find boot entries on every block device and serve them to menus over a Unix socket",
        description="Enumerates block devices, mounts each filesystem read-only, reads its boot configs and serves "
        "the entries to `bootmenu ui` clients; boots the chosen entry through kexec.",
    )
    p.add_argument("--socket", type=Path, default=DEFAULT_SOCKET, help="Unix socket path (default %(default)s)")
    p.add_argument(
        "--settings",
        type=Path,
        default=PAYLOAD_SETTINGS,
        help="TOML settings file, read when present (default %(default)s; `bootmenu.*` kernel parameters win)",
    )
    p.add_argument("--log", type=Path, help="also log to this file")
    p.add_argument("--kmsg", action="store_true", help="also log to /dev/kmsg (inside the payload)")
    p.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="where filesystems are mounted read-only")
    p.add_argument("--root", type=Path, nargs="+", default=[], metavar="DIR", help="serve DIRs as if they were devices")
    p.add_argument("--no-udev", action="store_true", help="no block devices, only the --root directories")
    p.add_argument("--udev-source", choices=("udev", "kernel"), help="uevents to listen to (default: udev if running)")
    p.add_argument("--dry-run", action="store_true", help="never load or execute a kernel; report what would happen")
    p.add_argument("--cmdline", help="use this instead of /proc/cmdline for bootmenu.* parameters")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="also log to stderr (off by default: a menu may share the console)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from discovery import log as daemon_log
    from discovery import timeline
    from discovery.daemon import Daemon
    from discovery.devices import UdevSource, open_source
    from discovery.mount import Mounter
    from discovery.scan import ScanError, filesystem_for
    from discovery.server import Server, ServerError
    from discovery.settings import Settings

    # Bad settings are warnings the daemon shows on every menu (Settings.warnings), never a reason to exit: /init
    # would restart it forever and the menu would stay empty.
    cmdline = args.cmdline if args.cmdline is not None else _proc_cmdline()
    settings = Settings.load(args.settings, cmdline)
    try:
        roots = [filesystem_for(d) for d in args.root]
    except ScanError as exc:
        print(f"bootmenu daemon: {exc}", file=sys.stderr)
        return 2
    # /init of the payload sets BOOTMENU_DEBUG=1 for bootmenu.debug=1 as well.
    debug = settings.debug or os.environ.get("BOOTMENU_DEBUG") == "1"
    ring = daemon_log.setup(file=args.log, kmsg=args.kmsg, debug=debug)
    if args.verbose:
        logging.getLogger().addHandler(_stderr_handler())

    source: UdevSource | None = None
    if not args.no_udev:
        try:
            source = open_source(args.udev_source)
        except (ImportError, OSError) as exc:
            print(f"bootmenu daemon: cannot listen to udev: {exc} (use --no-udev with --root DIR)", file=sys.stderr)
            return 1

    mounter = None if args.no_udev else Mounter(args.run_dir)
    if mounter is not None:
        mounter.clean_up()

    async def main() -> int:
        daemon = Daemon(
            settings=settings,
            mounts=mounter,
            source=source,
            roots=roots,
            dry_run=args.dry_run,
            log_lines=ring.lines,
            payload_cmdline=cmdline,
        )
        server = Server(daemon, args.socket)
        try:
            await server.start()
        except ServerError as exc:
            print(f"bootmenu daemon: {exc.filename}: {exc.strerror}", file=sys.stderr)
            return 1
        timeline.stamp("daemon-started")  # listening: menus can connect
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await daemon.start()
        await stop.wait()
        await server.stop()
        await daemon.stop()  # unmounts everything
        return 0

    return asyncio.run(main())


def _proc_cmdline() -> str:
    try:
        return Path("/proc/cmdline").read_text(errors="replace")
    except OSError:
        return ""


def _stderr_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bootmenu daemon: %(message)s"))
    handler.setLevel(logging.INFO)
    return handler
