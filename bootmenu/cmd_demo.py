"""`bootmenu demo`: the menu over the bundled sample disks, with the daemon in dry run (issue 5, "bootmenu demo").

Starts `bootmenu daemon --dry-run --no-udev --root SAMPLE...` on a private socket, opens the menu on it, and stops the
daemon at exit. Nothing needs root and nothing is ever loaded or booted: booting an entry shows what would be kexec'd.
The daemon also dies with the demo when the demo is killed or loses its terminal (prctl(2) PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
# Menu order: the Ubuntu disk first, so its GRUB default is the autoboot default, as on a one-disk machine.
SAMPLES = ("ubuntu", "fedora", "alpine")
START_TIMEOUT = 20.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def set_parent_death_signal(sig: signal.Signals) -> None:
    """prctl(PR_SET_PDEATHSIG, sig): the kernel sends `sig` to this process when its parent dies."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG, {sig.name}): {os.strerror(err)}")


def die_with(parent: int) -> Callable[[], None]:
    """For Popen(preexec_fn=...): in the child, SIGTERM when `parent` dies; if it died already (before the prctl),
    exit now, since the signal would never come."""

    def arm() -> None:
        set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return arm


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the menu over bundled sample disks, dry run (no root needed, nothing is booted)",
        description="Serves three bundled sample filesystems (Ubuntu GRUB with submenus and grubenv, Fedora GRUB+BLS, "
        "Alpine extlinux) with `bootmenu daemon --dry-run` and opens the menu on them. Booting an entry shows what "
        "would be kexec'd and returns to the menu; q or x leaves.",
    )
    p.add_argument("--ascii", action="store_true", default=None, help="draw with ASCII only")
    p.add_argument("--mono", action="store_true", default=None, help="no colours")
    p.add_argument("--keep-log", action="store_true", help="print where the daemon's log is and keep it")
    p.set_defaults(run=run)


def sample_roots() -> list[Path]:
    return [SAMPLES_DIR / name for name in SAMPLES]


def run(args: argparse.Namespace) -> int:
    import shutil
    import subprocess
    import tempfile
    import time

    from bootmenu import urwid_parts

    urwid_parts.install()  # as `bootmenu ui` does: the demo is the menu the payload runs
    from bootmenu.client import Client, ClientError
    from bootmenu.controller import ExitAction, Mode, run_menu

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("bootmenu demo: the menu needs a terminal on stdin and stdout", file=sys.stderr)
        return 2
    roots = sample_roots()
    missing = [str(r) for r in roots if not (r / ".bootmenu-fs").is_file()]
    if missing:
        print(f"bootmenu demo: sample filesystems missing: {', '.join(missing)}", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="bootmenu-demo-"))
    socket_path = tmp / "daemon.sock"
    log_path = tmp / "daemon.log"
    command = [
        sys.executable, "-m", "bootmenu", "daemon", "--dry-run", "--no-udev", "--cmdline", "",
        "--socket", str(socket_path), "--run-dir", str(tmp / "mnt"), "--root", *map(str, roots),
    ]  # fmt: skip
    with log_path.open("wb") as log_file:
        # Its own session: Ctrl-C in the terminal must reach the menu, not kill the daemon under it. It must still
        # not outlive the demo (SIGKILL, SIGHUP when the terminal goes): the parent-death signal stops it then.
        daemon = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
            preexec_fn=die_with(os.getpid()),  # noqa: PLW1509 (no other thread exists yet in the demo)
        )
    try:
        client = Client(socket_path)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if daemon.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
                print(f"bootmenu demo: the daemon exited with status {daemon.returncode}:", file=sys.stderr)
                for line in tail:
                    print(f"  {line}", file=sys.stderr)
                return 1
            try:
                client.wait_connect(0.0)
                break
            except ClientError as exc:
                if time.monotonic() >= deadline:
                    print(f"bootmenu demo: {exc.filename}: {exc.strerror}", file=sys.stderr)
                    return 1
            time.sleep(0.05)
        action = run_menu(client, Mode.DEMO, ascii=args.ascii, mono=args.mono)
        if action is ExitAction.SHELL:
            print("bootmenu demo: in the payload, x opens a shell; the demo ends here.")
        return 0
    finally:
        daemon.terminate()
        try:
            daemon.wait(5)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        if args.keep_log:
            print(f"bootmenu demo: daemon log in {log_path}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
