"""The hardware watchdog: armed as the last step before the jump, and asked at start whether it reset the machine.

Linux watchdog API (Documentation/watchdog/watchdog-api.rst, include/uapi/linux/watchdog.h): opening /dev/watchdogN
starts the timer; WDIOC_SETTIMEOUT sets its timeout in seconds (the driver may round it and writes back what it set);
closing without first writing the magic character 'V' leaves it running. So the daemon opens it, sets the timeout and
jumps with the descriptor open: a next kernel that dies before its own watchdog driver (or systemd's
RuntimeWatchdogSec) takes over is reset into the firmware, and so back into this menu. The watchdog core stops a
running watchdog from its reboot notifier (kexec sends SYS_RESTART) for drivers that ask for it; the payload's /init
loads the core with `stop_on_reboot=0`, so the timer survives the jump (tests/qemu/test_recovery.py, i6300esb).

At start the cause of the last reset is read from sysfs (/sys/class/watchdog/watchdogN/bootstatus, WDIOF_* bits,
CONFIG_WATCHDOG_SYSFS), never by opening the device, which would start the timer. WDIOF_CARDRESET means "the last
reboot was caused by the watchdog card". QEMU's i6300esb keeps a reboot flag across the reset it causes, and the
Linux i6300esb driver reports it as WDIOF_CARDRESET (its reload register's timeout bit).

The trade-off of `watchdog = SECONDS`: a kernel that boots fine but whose system never takes over the watchdog
(no driver, no watchdog daemon, nowayout unset and nothing pinging) is reset after SECONDS too. Only turn it on for
systems that run a watchdog service, with SECONDS longer than their boot to that service.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from discovery.blockmap import ioctl_int

log = logging.getLogger(__name__)

SYSFS = Path("/sys")
DEV = Path("/dev")

# include/uapi/asm-generic/ioctl.h: _IOC(dir, type, nr, size) = dir << 30 | size << 16 | type << 8 | nr, the
# encoding of x86, arm64 and riscv (powerpc, mips and sparc differ and are not targets of the payload).
_IOC_WRITE = 1
_IOC_READ = 2
_INT_SIZE = 4


def _ioc(direction: int, nr: int, size: int = _INT_SIZE) -> int:
    return (direction << 30) | (size << 16) | (ord("W") << 8) | nr


# include/uapi/linux/watchdog.h
WDIOC_GETBOOTSTATUS = _ioc(_IOC_READ, 2)
WDIOC_KEEPALIVE = _ioc(_IOC_READ, 5)
WDIOC_SETTIMEOUT = _ioc(_IOC_READ | _IOC_WRITE, 6)
WDIOC_GETTIMEOUT = _ioc(_IOC_READ, 7)
WDIOF_CARDRESET = 0x0020
MAGIC_CLOSE = b"V"


@dataclass(frozen=True)
class Watchdog:
    """One watchdog device as sysfs describes it."""

    name: str  # watchdog0
    identity: str  # "i6300ESB timer"
    bootstatus: int | None  # WDIOF_* bits; None when sysfs does not say

    @property
    def card_reset(self) -> bool:
        return self.bootstatus is not None and bool(self.bootstatus & WDIOF_CARDRESET)

    def node(self, dev: Path = DEV) -> Path:
        return dev / self.name

    def label(self) -> str:
        return f"/dev/{self.name} ({self.identity or 'unknown'})"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def watchdogs(sysfs: Path = SYSFS) -> list[Watchdog]:
    """The watchdog devices, watchdog0 first."""
    base = sysfs / "class" / "watchdog"
    try:
        names = [n for n in os.listdir(base) if re.fullmatch(r"watchdog\d+", n)]
    except OSError:
        return []
    out = []
    for name in sorted(names, key=lambda n: int(n.removeprefix("watchdog"))):
        status = _read(base / name / "bootstatus")
        try:
            bootstatus = int(status, 0) if status else None
        except ValueError:
            bootstatus = None
        out.append(Watchdog(name, _read(base / name / "identity") or "", bootstatus))
    return out


def last_reset(sysfs: Path = SYSFS) -> Watchdog | None:
    """The watchdog that says it caused the last reset (WDIOF_CARDRESET in bootstatus), if any."""
    return next((w for w in watchdogs(sysfs) if w.card_reset), None)


@dataclass
class Armed:
    """A running watchdog; its descriptor stays open through the jump (closing it is what `disarm` is for)."""

    fd: int
    path: Path
    timeout: int

    def describe(self) -> str:
        return f"armed {self.path} with a {self.timeout} s timeout"


def arm(seconds: int, *, sysfs: Path = SYSFS, dev: Path = DEV) -> Armed:
    """Start the first watchdog with a timeout of `seconds`. Raises OSError (none present, ioctl refused)."""
    found = watchdogs(sysfs)
    if not found:
        raise OSError(2, "no watchdog device (/sys/class/watchdog is empty)", str(sysfs / "class" / "watchdog"))
    path = found[0].node(dev)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise OSError(exc.errno, f"open: {exc.strerror}", str(path)) from None
    try:
        actual = ioctl_int(fd, WDIOC_SETTIMEOUT, seconds, f"WDIOC_SETTIMEOUT, {seconds}", path)
        ioctl_int(fd, WDIOC_KEEPALIVE, 0, "WDIOC_KEEPALIVE, 0", path)
    except OSError:
        disarm(Armed(fd, path, seconds))
        raise
    return Armed(fd, path, actual or seconds)


def disarm(armed: Armed) -> None:
    """Stop the watchdog (the jump failed; the menu is back): the magic close. A nowayout watchdog keeps running."""
    try:
        os.write(armed.fd, MAGIC_CLOSE)
    except OSError as exc:
        log.warning("%s: cannot stop the watchdog: %s", armed.path, exc.strerror)
    try:
        os.close(armed.fd)
    except OSError as exc:
        log.warning("%s: close: %s", armed.path, exc.strerror)
