"""Console hand-off: the `console=` word that makes a booted kernel talk where the operator chose it (issue 10).

The kernel's syntax is Documentation/admin-guide/serial-console.rst: `console=ttyS0,115200n8` (device, then baud,
parity n/o/e and data bits), `console=hvc0` (a hypervisor console has no line settings), `console=tty0` (the
foreground virtual terminal). Baud, parity and bits come from the tty's termios (termios(3)), so the booted system
uses the line the menu was just using.
"""

from __future__ import annotations

import enum
import os
import re
import termios
from collections.abc import Sequence
from typing import Any

from discovery.settings import TTY_RE, cmdline_words

# termios speed constants to bits per second; the ones a serial console uses.
_SPEEDS = {
    getattr(termios, f"B{baud}"): baud
    for baud in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000)
    if hasattr(termios, f"B{baud}")
}
_BITS = {termios.CS5: 5, termios.CS6: 6, termios.CS7: 7, termios.CS8: 8}
_SERIAL = re.compile(r"^(ttyS|ttyAMA|ttyUSB|ttyACM|ttymxc|ttySC|ttyPS|ttyMSM)\d+$")
_HYPERVISOR = re.compile(r"^(hvc|hvsi|ttysclp)\d+$")
_VT = re.compile(r"^tty\d+$")


class ConsoleKind(enum.StrEnum):
    SERIAL = "serial"  # a UART: baud, parity and bits matter
    HYPERVISOR = "hypervisor"  # virtio/Xen/Power console: no line settings
    VT = "vt"  # a virtual terminal on VGA or a framebuffer

    @classmethod
    def of(cls, name: str) -> ConsoleKind | None:
        if _SERIAL.match(name):
            return cls.SERIAL
        if _HYPERVISOR.match(name):
            return cls.HYPERVISOR
        if _VT.match(name):
            return cls.VT
        return None


def line_options(attrs: Sequence[Any]) -> str:
    """`115200n8` from a termios attribute list (tcgetattr's [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])."""
    cflag, ospeed = int(attrs[2]), int(attrs[5])
    baud = _SPEEDS.get(ospeed, 0)
    parity = ("o" if cflag & termios.PARODD else "e") if cflag & termios.PARENB else "n"
    bits = _BITS.get(cflag & termios.CSIZE, 8)
    return f"{baud}{parity}{bits}" if baud else ""


def tcgetattr(fd: int, name: str) -> list[Any]:
    try:
        return termios.tcgetattr(fd)
    except termios.error as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        raise OSError(code, f"tcgetattr: {os.strerror(code) if code else exc}", name) from None


def describe(name: str, fd: int | None) -> str | None:
    """The `console=` value for tty `name` (read through `fd` when its line settings matter); None when it is not
    a console the kernel can hand off to (a pty, /dev/console)."""
    kind = ConsoleKind.of(name)
    if kind is ConsoleKind.VT:
        return "tty0"  # the VT in front, whichever one the menu was on
    if kind is ConsoleKind.HYPERVISOR:
        return name
    if kind is ConsoleKind.SERIAL:
        options = line_options(tcgetattr(fd, name)) if fd is not None else ""
        return f"{name},{options}" if options else name
    return None


# The kernel lists the active consoles here, the one behind /dev/console last (drivers/tty/tty_io.c).
ACTIVE_CONSOLES = "/sys/class/tty/console/active"


def describe_fd(fd: int, active: str = ACTIVE_CONSOLES) -> str | None:
    """The `console=` value for the terminal on `fd` (the menu's stdin), None when it is none the kernel knows.
    A menu on /dev/console (the payload's fallback) is on the kernel's preferred console."""
    try:
        path = os.ttyname(fd)
    except OSError:
        return None
    if not path.startswith("/dev/"):
        return None
    name = path.removeprefix("/dev/")
    if name == "console":
        try:
            with open(active) as f:
                names = f.read(4096).split()
        except OSError:
            return None
        if not names:
            return None
        name = names[-1]
    try:
        return describe(name, fd)
    except OSError:
        return None


def describe_device(name: str, dev: str = "/dev") -> str:
    """The `console=` value for `name` from the settings (`ttyS0`, or `ttyS0,9600n8` taken as it is), opening the
    device to read its line settings. Raises OSError naming the device."""
    if "," in name:
        return name
    kind = ConsoleKind.of(name)
    if kind is not ConsoleKind.SERIAL:
        found = describe(name, None)
        return found or name
    path = os.path.join(dev, name)
    # O_NOCTTY: the daemon must not acquire it as its terminal; O_NONBLOCK: no wait for carrier detect.
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return describe(name, fd) or name
    finally:
        os.close(fd)


def preferred(cmdline: str) -> str | None:
    """The payload's own console: the value of the last `console=` on its command line (the kernel's /dev/console)."""
    found = None
    for word in cmdline_words(cmdline):
        if word.startswith("console="):
            found = word.removeprefix("console=")
    return found if found and TTY_RE.match(found) else None


def names_console(cmdline: str) -> bool:
    return any(word.startswith("console=") for word in cmdline_words(cmdline))
