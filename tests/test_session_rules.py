"""The session rules of tests/conftest.py, checked on an inner pytest run in a scratch directory that uses the same
conftest: a test that leaves a `bootmenu daemon` running fails the run, also on two xdist workers, and the daemon is
listed and killed; a clean run passes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO, SESSION_ENV

pytestmark = pytest.mark.slow

LEAKY_TEST = """
import subprocess, sys, time
from pathlib import Path

def test_leaks_a_daemon(tmp_path):
    root = tmp_path / "disk"
    root.mkdir()
    # Its own session, never stopped: what an orphaned demo daemon looks like.
    daemon = subprocess.Popen(
        [sys.executable, "-m", "bootmenu", "daemon", "--dry-run", "--no-udev", "--cmdline", "",
         "--socket", str(tmp_path / "s"), "--run-dir", str(tmp_path / "mnt"), "--root", str(root)],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    (Path(__file__).parent / "leaked.pid").write_text(str(daemon.pid))
    deadline = time.monotonic() + 60
    while not (tmp_path / "s").exists() and daemon.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon.poll() is None
"""


def inner_run(tmp_path: Path, body: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "__init__.py").write_text("")
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "tests" / "conftest.py")
    (tmp_path / "tests" / "test_inner.py").write_text(textwrap.dedent(body))
    env = {k: v for k, v in os.environ.items() if k != SESSION_ENV and not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args, "tests"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.parametrize("workers", [[], ["-n", "2", "--dist", "loadscope"]], ids=["serial", "xdist"])
def test_a_leftover_daemon_fails_the_run_and_is_killed(tmp_path: Path, workers: list[str]) -> None:
    result = inner_run(tmp_path, LEAKY_TEST, *workers)
    pid = int((tmp_path / "tests" / "leaked.pid").read_text())
    try:
        assert "1 passed" in result.stdout, result.stdout + result.stderr
        assert result.returncode == 1, result.stdout
        assert "the test session left 1 process(es) running (now killed):" in result.stdout
        assert f"pid {pid}: " in result.stdout
        assert "-m bootmenu daemon --dry-run" in result.stdout
        assert gone(pid)
    finally:
        if not gone(pid):
            os.kill(pid, 9)


def test_a_clean_run_passes(tmp_path: Path) -> None:
    result = inner_run(tmp_path, "def test_nothing():\n    pass\n", "-n", "2", "--dist", "loadscope")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "leftover" not in result.stdout


def collected(*args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if "::" in line]


def test_qemu_tests_are_scheduled_first_longest_first() -> None:
    """Without a cache (a fresh clone, as in CI) the order comes from tests/data/durations.json."""
    order = collected()
    qemu = collected("-m", "qemu")
    assert qemu, "no QEMU tests collected"
    assert set(order[: len(qemu)]) == set(qemu)
    hints = json.loads((REPO / "tests" / "data" / "durations.json").read_text())
    known = [hints[t] for t in order[: len(qemu)] if t in hints and t.startswith("tests/qemu/")]
    assert known == sorted(known, reverse=True)
