"""`bootmenu ui` as a process in a pseudo-terminal: exit statuses for q and x, payload mode, no daemon."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

import pexpect
import pytest

from discovery import protocol as p
from tests.bootmenu.menu_data import hello

REPO = Path(__file__).resolve().parents[2]


def drain(conn: socket.socket) -> None:
    with conn:
        while conn.recv(4096):
            pass


def fake_daemon(path: Path) -> socket.socket:
    """Sends `hello` to every client and keeps the connection open until the client goes."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.sendall(p.encode(hello()))
            threading.Thread(target=drain, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return listener


def spawn_ui(*args: str) -> pexpect.spawn:
    env = {**os.environ, "TERM": "vt100"}
    return pexpect.spawn(sys.executable, ["-m", "bootmenu", "ui", *args], cwd=str(REPO), env=env, dimensions=(24, 80))


def finish(child: pexpect.spawn) -> int | None:
    child.expect(pexpect.EOF, timeout=15)
    child.close()
    status: int | None = child.exitstatus
    return status


@pytest.mark.parametrize(("flag", "keys", "status"), [("--no-payload", "q", 0), ("--no-payload", "x", 3)])
def test_q_quits_and_x_asks_the_caller_for_a_shell(tmp_path: Path, flag: str, keys: str, status: int) -> None:
    listener = fake_daemon(tmp_path / "d.sock")
    try:
        child = spawn_ui("--socket", str(tmp_path / "d.sock"), flag)
        child.expect("Fedora Linux", timeout=20)
        child.send(keys)
        assert finish(child) == status
    finally:
        listener.close()


def test_in_the_payload_q_stays_and_x_leaves(tmp_path: Path) -> None:
    listener = fake_daemon(tmp_path / "d.sock")
    try:
        child = spawn_ui("--socket", str(tmp_path / "d.sock"), "--payload")
        child.expect("Fedora Linux", timeout=20)
        child.send("q")
        child.expect("x opens a shell", timeout=10)
        time.sleep(0.3)
        assert child.isalive()
        child.send("x")
        assert finish(child) == 3
    finally:
        listener.close()


def test_no_daemon_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    child = spawn_ui("--socket", str(tmp_path / "none.sock"), "--connect-timeout", "0.2")
    child.expect(pexpect.EOF, timeout=15)
    output = child.before.decode()
    child.close()
    assert child.exitstatus == 1
    assert f"bootmenu ui: {tmp_path / 'none.sock'}: cannot connect to the boot daemon" in output
    assert "Traceback" not in output


def test_in_the_payload_the_menu_draws_before_the_daemon_listens(tmp_path: Path) -> None:
    # The payload's /init starts the menu before the daemon: its first frame says it is looking for devices, and the
    # entries appear once the daemon's socket listens (no exit, no --connect-timeout).
    sock = tmp_path / "d.sock"
    child = spawn_ui("--socket", str(sock), "--payload", "--connect-timeout", "0.2")
    listener = None
    try:
        child.expect("Looking for devices", timeout=20)
        child.expect("h=help", timeout=10)
        assert child.isalive()
        listener = fake_daemon(sock)
        child.expect("Fedora Linux", timeout=20)
        child.send("x")
        assert finish(child) == 3
    finally:
        child.terminate(force=True)
        if listener is not None:
            listener.close()
