"""Evidence of a jump in the kernel log: one line per fact, written to /dev/kmsg right before reboot(KEXEC).

A serial console or a BMC's console capture always has the kernel log, even when the next kernel dies before its own
console driver runs; so what was booted, how, and what was done to the machine first goes there. /dev/kmsg takes one
record per write(2), with an optional `<N>` syslog priority prefix (Documentation/ABI/testing/dev-kmsg); records
longer than the kernel's line limit (1024 bytes less the prefix, kernel/printk) are cut, so long values are split.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)

KMSG = Path("/dev/kmsg")
# The console log level (Documentation/admin-guide/sysctl/kernel.rst, printk): its first field.
PRINTK = Path("/proc/sys/kernel/printk")
# /dev/kmsg writers are rate limited by default (10 records per 5 s, then "N output lines suppressed"); "on" lifts
# it (Documentation/admin-guide/sysctl/kernel.rst, printk_devkmsg; locked when printk.devkmsg= was given at boot).
PRINTK_DEVKMSG = Path("/proc/sys/kernel/printk_devkmsg")
# Well below the kernel's record limit (PRINTK_MESSAGE_MAX/LOG_LINE_MAX 1024), leaving room for the prefix.
MAX_RECORD = 900
# KERN_NOTICE: shown on a console at the default log level 7 and above `quiet`'s 4 when ignore_loglevel is given.
NOTICE = 5
PREFIX = "bootmenu: "


def kmsg_open(path: Path = KMSG) -> int:
    """open(2) of the kernel log for writing; raises OSError naming the path."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise OSError(exc.errno, f"open: {exc.strerror}", str(path)) from None


def kmsg_write(fd: int, record: bytes, path: Path = KMSG) -> None:
    """write(2) of one record to /dev/kmsg; raises OSError naming the path (EAGAIN/ENOSPC when throttled)."""
    try:
        os.write(fd, record)
    except OSError as exc:
        raise OSError(exc.errno, f"write: {exc.strerror}", str(path)) from None


def chunks(text: str, size: int = MAX_RECORD) -> list[str]:
    """`text` in pieces of at most `size` characters (a 2 KiB command line becomes several records)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def raise_console_level(path: Path = PRINTK, level: int = NOTICE + 1) -> int | None:
    """Make the console print records of priority < `level` (`quiet` leaves 4: errors only), so the evidence reaches
    a serial console whatever the payload's command line says. Returns the level it replaced, None when unchanged.
    Raises OSError naming the file."""
    try:
        current = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError) as exc:
        raise OSError(
            getattr(exc, "errno", None) or 5, f"cannot read the console log level: {exc}", str(path)
        ) from None
    if current >= level:
        return None
    try:
        path.write_text(f"{level}\n")
    except OSError as exc:
        raise OSError(exc.errno, f"write: {exc.strerror}", str(path)) from None
    return current


def unlimit_devkmsg(path: Path = PRINTK_DEVKMSG) -> str | None:
    """Turn /dev/kmsg's rate limit off for the evidence; returns the setting it replaced, None when unchanged.
    Raises OSError naming the file (EINVAL when the boot command line locked it)."""
    try:
        current = path.read_text().strip()
    except OSError as exc:
        raise OSError(exc.errno, f"read: {exc.strerror}", str(path)) from None
    if current == "on":
        return None
    try:
        path.write_text("on\n")
    except OSError as exc:
        raise OSError(exc.errno, f"write: {exc.strerror}", str(path)) from None
    return current


class Kmsg:
    """The kernel log as a context manager; `note(line)` writes one record and the daemon's log gets it too.

    A kernel log that cannot be opened or written is logged once and otherwise ignored: evidence must never stop a
    boot. `path=None` writes nowhere but the daemon's log (host tests, dry run).
    """

    def __init__(self, path: Path | None = KMSG) -> None:
        self.path = path
        self._fd: int | None = None
        self._failed = False
        self.written: list[str] = []

    def __enter__(self) -> Self:
        if self.path is not None:
            try:
                self._fd = kmsg_open(self.path)
            except OSError as exc:
                log.warning("cannot write evidence to the kernel log: %s: %s", exc.filename, exc.strerror)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def note(self, line: str, priority: int = NOTICE) -> None:
        # The daemon's log gets it too, but its kernel-log handler not a second time (discovery/log.py).
        log.info("%s", line, extra={"in_kmsg": self._fd is not None and not self._failed})
        for piece in chunks(line, MAX_RECORD - len(PREFIX)):
            self.written.append(piece)
            if self._fd is None or self._failed:
                continue
            try:
                kmsg_write(self._fd, f"<{priority}>{PREFIX}{piece}".encode(errors="replace"), self.path or KMSG)
            except OSError as exc:
                self._failed = True
                log.warning("kernel log: %s: %s; no more evidence is written there", exc.filename, exc.strerror)


@dataclass(frozen=True)
class Evidence:
    """The facts of one jump, as written to the kernel log."""

    entry_id: str
    title: str
    device: str
    kernel: str
    initrds: tuple[str, ...]
    cmdline: str
    method: str
    quiesce: tuple[str, ...]
    watchdog: str
    segments: tuple[str, ...] = ()  # kexec_load: the entry point and each segment (address, size, source)

    def lines(self) -> Iterator[str]:
        yield f"jump: entry {self.title!r} id {self.entry_id}"
        yield f"jump: device {self.device}"
        yield f"jump: kernel {self.kernel}"
        yield f"jump: initrds {' '.join(self.initrds) if self.initrds else 'none'}"
        yield f"jump: cmdline {self.cmdline}"
        yield f"jump: load method {self.method}"
        for segment in self.segments:
            yield f"jump: {segment}"
        yield f"jump: quiesced {', '.join(self.quiesce) if self.quiesce else 'nothing'}"
        yield f"jump: watchdog {self.watchdog}"

    def write(self, kmsg: Kmsg) -> None:
        for line in self.lines():
            kmsg.note(line)
