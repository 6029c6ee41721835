"""Driving a VM's serial console: pexpect for the byte stream, pyte for the 80x24 screen the menu draws on.

Every read has a timeout, the VM has a watchdog, and leaving the `with` block kills QEMU (initramfs.qemu.Vm).
Values the guests print (the second kernel's command line, the baseline's disks) are read between a start and an end
marker (`read_framed`), so a kernel message printed into the middle of them does not cut them short.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

import pexpect
import pyte

from initramfs import guests
from initramfs.qemu import Vm, VmConfig

COLUMNS, ROWS = 80, 24
# The escape sequences a VT100-ish terminal sends for the keys the menu uses.
KEYS = {
    "up": "\x1b[A",
    "down": "\x1b[B",
    "enter": "\r",
    "esc": "\x1b",
    "ctrl-x": "\x18",
    "end": "\x1b[F",
    "home": "\x1b[H",
}


def read_framed(child: pexpect.spawn, start: str, end: str, timeout: float = 60.0) -> str:
    """Waits for `start`, then for the `end length=N` line; the value between them (initramfs.guests.parse_framed).
    Raises pexpect.TIMEOUT/EOF when either marker does not come."""
    child.expect(re.escape(start.encode()), timeout=timeout)
    # The end marker follows on the next line: a short wait, whatever the first one was.
    child.expect(re.escape(end.encode()) + rb" length=(\d+)[\r\n]", timeout=60)
    before: bytes = child.before
    return guests.parse_framed(before, int(child.match.group(1)))


def read_second_stage_cmdline(child: pexpect.spawn, timeout: float = 90.0) -> str:
    """The command line the kexec'd kernel's /init printed (initramfs.guests.second_stage_initrd)."""
    return read_framed(child, guests.SECOND_STAGE_MARKER, guests.SECOND_STAGE_END, timeout)


class _ScreenFeed:
    """A pexpect logfile_read that feeds pyte and keeps a raw transcript."""

    def __init__(self, stream: pyte.ByteStream, transcript: bytearray, live: BinaryIO | None) -> None:
        self._stream = stream
        self._transcript = transcript
        self._live = live

    def write(self, data: bytes) -> None:
        self._transcript.extend(data)
        self._stream.feed(data)
        if self._live is not None:
            self._live.write(data)
            self._live.flush()

    def flush(self) -> None:
        pass


class SerialVm:
    """A QEMU whose serial console is a pexpect child and a pyte screen; `started` is the monotonic spawn time."""

    def __init__(self, config: VmConfig, *, timeout: float = 300.0, transcript: Path | None = None) -> None:
        self.vm = Vm(config, timeout=timeout)
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.transcript = bytearray()
        # Written as it comes, so a hung run can be watched with `tail -f`.
        self._live = transcript.open("wb") if transcript is not None else None
        argv = self.vm.argv()
        self.started = time.monotonic()
        self.child = pexpect.spawn(argv[0], argv[1:], timeout=60, dimensions=(ROWS, COLUMNS), echo=False)
        self.child.logfile_read = _ScreenFeed(pyte.ByteStream(self.screen), self.transcript, self._live)
        self.vm.attach(self.child.pid)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def expect(self, pattern: str | bytes, timeout: float = 60.0) -> re.Match[bytes]:
        """Waits for a regular expression on the raw console byte stream."""
        data = pattern.encode() if isinstance(pattern, str) else pattern
        self.child.expect(data, timeout=timeout)
        match: re.Match[bytes] = self.child.match
        return match

    def framed(self, start: str, end: str, timeout: float = 60.0) -> str:
        """A value the guest printed between `start` and `end length=N` (see read_framed)."""
        return read_framed(self.child, start, end, timeout)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait_screen(self, needle: str, timeout: float = 60.0) -> str:
        """Reads the console until the rendered screen shows `needle`; returns the screen."""
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"screen never showed {needle!r} within {timeout:g} s; it shows:\n{self.text()}")
            try:
                self.child.read_nonblocking(65536, timeout=min(remaining, 1.0))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF as exc:
                raise AssertionError(f"QEMU ended before the screen showed {needle!r}:\n{self.tail()}") from exc
        return self.text()

    def settle(self, quiet: float = 1.0, timeout: float = 20.0) -> None:
        """Reads until the console has been quiet for `quiet` seconds (the menu finished redrawing)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.child.read_nonblocking(65536, timeout=quiet)
            except pexpect.TIMEOUT:
                return
            except pexpect.EOF:
                return

    def send(self, *keys: str) -> None:
        for key in keys:
            self.child.send(KEYS.get(key, key))
            time.sleep(0.2)

    def tail(self, lines: int = 40) -> str:
        text = self.transcript.decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def wait_exit(self, timeout: float = 60.0) -> None:
        self.child.expect(pexpect.EOF, timeout=timeout)

    def close(self) -> None:
        self.vm.kill()
        self.child.close(force=True)
        self.vm.__exit__(None, None, None)
        if self._live is not None:
            self._live.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
