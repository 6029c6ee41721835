"""End to end: the real `bootmenu demo` (daemon in dry run + menu) in a pseudo-terminal of 80x24 with TERM=vt100,
read back through a terminal emulator (pyte) as a user on a serial console would see it."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pyte
import pytest

REPO = Path(__file__).resolve().parents[2]
ADVANCED = "Advanced options for Ubuntu"


class Terminal:
    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.screen = pyte.Screen(80, 24)
        self.stream = pyte.ByteStream(self.screen)

    def pump(self, seconds: float = 0.1) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.05))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                return

    @property
    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def flat(self) -> str:
        """The screen as one line of words: wrapped text and window borders do not split what it says."""
        return " ".join(" ".join(line.replace("|", " ").split()) for line in self.lines)

    # Generous: the bound on a loaded 2-core machine, not an expected time (the wait ends when the condition holds).
    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.pump(0.1)
            if predicate():
                return
        raise AssertionError(f"timed out waiting for {what}; the screen shows:\n{self.text}")

    def press(self, keys: str, expect: str) -> None:
        self.child.send(keys)
        self.wait(repr(expect), lambda: expect in self.text)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


@pytest.fixture
def demo() -> Iterator[Terminal]:
    env = {**os.environ, "TERM": "vt100", "LANG": "C.UTF-8"}
    env.pop("NO_COLOR", None)
    child = pexpect.spawn(sys.executable, ["-m", "bootmenu", "demo"], cwd=str(REPO), env=env, dimensions=(24, 80))
    try:
        yield Terminal(child)
    finally:
        if child.isalive():
            child.terminate(force=True)


@pytest.mark.slow
def test_demo_edits_a_submenu_entry_and_shows_the_dry_run(demo: Terminal) -> None:
    demo.wait("all three sample disks", lambda: "Linux lts (single user)" in demo.text and "Fedora Linux" in demo.text)
    daemons = children_of(demo.child.pid)
    assert daemons, "the demo runs its daemon as a child process"
    lines = demo.lines
    assert lines[0].startswith("bootmenu demo (dry run: nothing is booted)")
    assert '[Directory: ubuntu ext4 "ubuntu-root"]' in lines or '[Disk: ubuntu ext4 "ubuntu-root"]' in lines
    # The GRUB default (grubenv saved_entry) is inside the submenu: the submenu row carries the mark and, before
    # any key, the selection.
    assert f"> * {ADVANCED} >" in lines
    assert "    Ubuntu" in lines
    assert all(ch.isascii() for ch in demo.text), "vt100: ASCII drawing only"
    demo.wait("the autoboot countdown", lambda: "Booting 'Ubuntu, with Linux 6.8.0-31-generic' in" in demo.text)

    demo.press("\x1b[A", ">   Ubuntu")  # Up: stops the countdown and moves
    demo.wait("the countdown to stop", lambda: "any key stops" not in demo.text)
    demo.press("\x1b[B", f"> * {ADVANCED} >")
    demo.press("\r", f"> {ADVANCED}")
    assert "> * Ubuntu, with Linux 6.8.0-31-generic" in demo.lines
    demo.press("\x1b[B", ">   Ubuntu, with Linux 6.8.0-31-generic (recovery mode)")

    demo.press("e", "Edit: Ubuntu, with Linux 6.8.0-31-generic (recovery mode)")
    assert "linux root=UUID=3f1c7a52-8d4e-4b8a-9c1e-2a6b5d0e7f11 ro recovery" in demo.flat()
    demo.child.send(" demo_edit=1")
    demo.child.send("\x18")  # Ctrl-X: boot the edited command line
    # The report's last line: everything above it (kernel, initrd, command line) is drawn by then.
    demo.wait("the dry run report", lambda: "would be loaded and booted now; back to the menu" in demo.flat())
    flat = demo.flat()
    assert "ro recovery nomodeset dis_ucode_ldr demo_edit=1" in flat
    assert "vmlinuz-6.8.0-31-generic" in flat
    assert "initrd.img-6.8.0-31-generic" in flat
    assert "would be loaded and booted now; back to the menu" in flat
    assert all(ch.isascii() for ch in demo.text), "a long window title is cut with ASCII dots"

    demo.press("\x1b", ">   Ubuntu, with Linux 6.8.0-31-generic (recovery mode)")  # Esc: back, selection kept
    demo.child.send("q")
    demo.wait("the top level", lambda: f"> * {ADVANCED} >" in demo.text)
    demo.child.send("q")
    demo.child.expect(pexpect.EOF, timeout=15)
    demo.child.close()
    assert demo.child.exitstatus == 0
    for pid in daemons:
        assert not Path(f"/proc/{pid}").exists(), "the demo's daemon outlived it"


@pytest.mark.slow
def test_demo_details_and_x_leaves_with_a_word_about_the_shell(demo: Terminal) -> None:
    demo.wait("the Alpine disk", lambda: "Linux lts (single user)" in demo.text)
    demo.child.send("\x1b[F")  # End: the last entry, Alpine's single-user one
    demo.wait("the selection on the last entry", lambda: ">   Linux lts (single user)" in demo.text)
    demo.press("i", "Details")
    flat = demo.flat()
    assert "Kernel: /boot/vmlinuz-lts" in flat
    assert "Source: /boot/extlinux.conf:" in flat
    assert "rootfstype=ext4 single" in flat
    demo.press("\x1b", ">   Linux lts (single user)")
    demo.child.send("x")
    demo.child.expect("in the payload, x opens a shell; the demo ends here", timeout=15)
    demo.child.expect(pexpect.EOF, timeout=15)
    demo.child.close()
    assert demo.child.exitstatus == 0
