"""`bootmenu daemon` as a user starts it: a real process, a real socket, SIGTERM to stop."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from discovery import protocol
from discovery.protocol import EntryAdded, Hello, Level

SAMPLES = Path(__file__).resolve().parents[2] / "bootmenu" / "samples"


def _connect(path: Path, proc: subprocess.Popen[str]) -> socket.socket:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited {proc.returncode}: {proc.communicate()[1]}")
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(path))
            sock.settimeout(20)
            return sock
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the daemon never listened")


def test_daemon_serves_root_directories_and_exits_cleanly(tmp_path: Path) -> None:
    sock_path = tmp_path / "bootmenu.sock"
    log = tmp_path / "daemon.log"
    cmd = [sys.executable, "-m", "bootmenu", "daemon", "--no-udev", "--dry-run", "--socket", str(sock_path)]
    cmd += ["--log", str(log), "--cmdline", "bootmenu.timeout=off", "--root", str(SAMPLES / "fedora")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sock = _connect(sock_path, proc)
        stream = sock.makefile("rb")
        first = protocol.decode(stream.readline())
        assert isinstance(first, Hello)
        assert first.dry_run
        assert first.settings["timeout"] == "off"
        titles = [e.entry.title for e in first.entries]
        while not any("Fedora" in t for t in titles):
            message = protocol.decode(stream.readline())
            if isinstance(message, EntryAdded):
                titles.append(message.entry.entry.title)
        sock.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert not sock_path.exists()
    assert "fedora" in log.read_text()


def test_bad_settings_are_warnings_and_the_daemon_serves_on(tmp_path: Path) -> None:
    settings = tmp_path / "bootmenu.toml"
    settings.write_text(json.dumps("x") + ' = 1\ntimeout = "off"\n')
    sock_path = tmp_path / "bootmenu.sock"
    cmd = [sys.executable, "-m", "bootmenu", "daemon", "--no-udev", "--dry-run", "--socket", str(sock_path)]
    cmd += ["--settings", str(settings), "--cmdline", "bootmenu.colour=red bootmenu.shell=1 bootmenu.ascii"]
    cmd += ["--root", str(SAMPLES / "fedora")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sock = _connect(sock_path, proc)
        hello = protocol.decode(sock.makefile("rb").readline())
        assert isinstance(hello, Hello)
        warnings = hello.settings["warnings"]
        assert len(warnings) == 2, warnings
        assert "bootmenu.toml: unknown setting 'x'" in warnings[0]
        assert "bootmenu.colour=red: unknown parameter" in warnings[1]
        assert hello.settings["timeout"] == "off", "the good key of the file still counts"
        shown = [s.message for s in hello.status if s.level is Level.WARNING]
        assert shown[:2] == warnings
        sock.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
