"""`bootmenu demo` never leaves its daemon behind (issue 9 item 4): killed, hung up on, or its terminal closed, the
demo's daemon (in a session of its own, so the terminal's signals do not reach it) dies with it."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pexpect
import pytest

from tests.bootmenu.test_demo import REPO, Terminal, children_of

pytestmark = pytest.mark.slow


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper has already exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)  # polls the condition; the bound is the timeout
    return False


def start_demo() -> tuple[Terminal, list[int]]:
    env = {**os.environ, "TERM": "vt100", "LANG": "C.UTF-8"}
    child = pexpect.spawn(sys.executable, ["-m", "bootmenu", "demo"], cwd=str(REPO), env=env, dimensions=(24, 80))
    term = Terminal(child)
    term.wait("the menu", lambda: "Fedora Linux" in term.text, timeout=60)
    daemons = [pid for pid in children_of(child.pid) if b"daemon" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(daemons) == 1, "the demo runs one daemon as its child"
    return term, daemons


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP, signal.SIGTERM], ids=lambda s: s.name)
def test_daemon_dies_with_the_demo(sig: signal.Signals) -> None:
    term, (daemon,) = start_demo()
    try:
        os.kill(term.child.pid, sig)
        term.child.expect(pexpect.EOF, timeout=30)
        assert wait_gone(daemon), f"the daemon (pid {daemon}) outlived the demo killed by {sig.name}"
    finally:
        term.child.close(force=True)
        if alive(daemon):
            os.kill(daemon, signal.SIGKILL)


def test_daemon_dies_when_the_terminal_goes_away() -> None:
    term, (daemon,) = start_demo()
    try:
        # Closing the pty master: the kernel hangs up the demo's terminal, as when an ssh session drops.
        term.child.close(force=False)
        assert wait_gone(daemon), f"the daemon (pid {daemon}) outlived the demo's terminal"
    finally:
        term.child.close(force=True)
        if alive(daemon):
            os.kill(daemon, signal.SIGKILL)
