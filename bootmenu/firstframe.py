"""The menu's first frame, drawn before the menu imports urwid and the protocol (issue 15, "first UI frame").

In the payload `bootmenu ui` needs a few seconds of CPU under QEMU TCG to import urwid, the protocol and the
widgets; this module (standard library only: os, sys, termios, atexit, all loaded with the interpreter or built in)
draws the screen the urwid menu draws before it has any entry - the title, its rule, "Looking for devices...", the
key reminder - with plain escape codes, sized as bootmenu/console.py sizes it, so the operator sees the menu at once.
tests/bootmenu/test_firstframe.py checks it line by line against widgets.MenuView rendered by urwid.

Meanwhile echo and line buffering are off, so keys typed before urwid takes over stay in the tty's input queue
unseen; `release()` reads them (urwid's start would flush them) for the menu to handle first, and gives urwid the
terminal as it was (urwid saves and restores those settings itself).

Kernel messages would scribble over the frame (under `quiet` the kernel still prints errors, e.g. a module's load
failing while coldplug runs), so the console log level is lowered here, as the urwid menu lowers it
(bootmenu/console.py's ConsoleLogLevel, which takes the level saved here and restores it before a boot or a shell);
only in the payload (its marker file), never on a host where a test draws the frame with `--payload`.

A menu on a console that is not /dev/console (tty1 beside a serial console=ttyS0) then imports under SCHED_IDLE (at
nice 19 too): on one CPU it runs only when nothing else wants to (at nice 19 it still took an eighth of the CPU from
the modules and the daemon at nice 10, initramfs/data/init, about 0.7 s before the entries under QEMU TCG), so the
console the kernel calls its own, and the daemon finding the entries, go first; `release()` puts the scheduling back
once the imports are done.
"""

from __future__ import annotations

import atexit
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (17 ms of a host's start, more under TCG)
if TYPE_CHECKING:
    from collections.abc import Callable

MARKER = "/etc/bootmenu-payload"  # kexec_core/guard.py's MARKER
FALLBACK_SIZE = (80, 24)  # bootmenu/console.py's FALLBACK_SIZE
TITLE = "bootmenu"
LOOKING = "Looking for devices..."
# widgets.MenuView.HINT, written out (building it needs bootmenu.keys, its enums and dataclasses); the test above
# checks they are the same.
HINT = "Enter=boot e=edit i=info s=sysinfo r=rescan l=log x=shell h=help q=back"
_TRUE = ("1", "yes", "true", "on")  # discovery/settings.py's yes/no words
_FALSE = ("0", "no", "false", "off")
# bootmenu/console.py's _UNICODE_TERMS: terminals that get line drawing.
_UNICODE_TERMS = ("xterm", "screen", "tmux", "rxvt", "linux", "alacritty", "foot", "kitty", "st", "konsole", "wezterm")
# SGR of palette.COLOUR's TITLE (white bold on dark blue) and HINT (dark gray), and palette.MONO's TITLE (bold).
_TITLE_SGR = "\x1b[0;1;37;44m"
_HINT_SGR = "\x1b[0;90m"
_MONO_TITLE_SGR = "\x1b[0;1m"
_RESET = "\x1b[0m"
# The alternate screen, which urwid's raw display draws on too (it enters it again, a no-op, and leaves it at exit):
# the console shows what it showed before the menu once the menu exits (a shell after `x`), not a stale first frame.
ENTER_ALTERNATE = "\x1b[?1049h"
LEAVE_ALTERNATE = "\x1b[?1049l"
SECONDARY_NICE = 19
MAX_TYPED = 4096  # keys typed during the imports kept for the menu; more than anyone types in a few seconds
TIOCGDEV = 0x80045432  # _IOR('T', 0x32, unsigned int): the device behind /dev/console
PRINTK = "/proc/sys/kernel/printk"  # bootmenu/console.py's PRINTK
QUIET_LEVEL = 1  # bootmenu/console.py's QUIET_LEVEL

_saved: list[object] = []  # (fd, termios attributes, priority, policy) while the first frame holds the terminal
_drawn: list[bool] = []
_printk_saved: list[int] = []  # the console log level before quiet_kernel() lowered it


def _quietly(call: Callable[..., object], *args: object) -> None:
    """`call(*args)`, its failure ignored: the first frame is a courtesy, the urwid menu sets the terminal again.
    (contextlib.suppress would import contextlib and collections.)"""
    import termios

    try:
        call(*args)
    except (OSError, termios.error):
        return


def _flag(cmdline: str, name: str) -> bool | None:
    """`bootmenu.NAME` as discovery.settings.cmdline_flag reads it (bare = yes, the last one wins, bad = ignored)."""
    found = None
    for word in cmdline.split():
        key, sep, value = word.partition("=")
        if key != f"bootmenu.{name}":
            continue
        value = value.lower() if sep else "1"
        if value in _TRUE:
            found = True
        elif value in _FALSE:
            found = False
    return found


def _size(fd: int, cmdline: str) -> tuple[int, int]:
    """bootmenu/console.py's size: `bootmenu.console=COLSxROWS`, else what the terminal reports, else 80x24."""
    forced = None
    for word in cmdline.split():
        key, _, value = word.partition("=")
        cols, x, rows = value.partition("x")
        if key == "bootmenu.console" and x and cols.isdigit() and rows.isdigit():
            forced = (int(cols), int(rows))
    if forced is not None and forced[0] >= 20 and forced[1] >= 5:
        return forced
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return FALLBACK_SIZE
    if size.columns <= 0 or size.lines <= 0:
        return FALLBACK_SIZE
    return size.columns, size.lines


def lines(cols: int, rows: int, *, ascii: bool) -> list[str]:
    """The first frame's text, one string per row (trailing blanks left out), as widgets.MenuView renders it with an
    empty model that is not connected yet."""
    rule = ("-" if ascii else "\u2500") * cols
    body = [""] * max(0, rows - 6)
    return [TITLE[:cols], rule, *body, rule, LOOKING[:cols], "", HINT[:cols]][:rows]


def frame(cols: int, rows: int, *, ascii: bool, mono: bool) -> str:
    """The escape codes that draw `lines()`: home, clear, each row at its place, the title and hint in the palette's
    attributes. The last cell of the screen is never written (a terminal would scroll)."""
    text = lines(cols, rows, ascii=ascii)
    attrs = {0: _MONO_TITLE_SGR if mono else _TITLE_SGR, len(text) - 1: "" if mono else _HINT_SGR}
    out = [ENTER_ALTERNATE, "\x1b[0m\x1b[H\x1b[2J"]
    for row, full in enumerate(text):
        line = full[: cols - 1] if row == rows - 1 else full
        if line:
            sgr = attrs.get(row, "")
            out.append(f"\x1b[{row + 1};1H{sgr}{line}{_RESET if sgr else ''}")
    out.append("\x1b[3;1H")
    return "".join(out)


def _utf8() -> bool:
    """locale.getpreferredencoding(False) is UTF-8 (without importing locale, which imports re)."""
    if sys.flags.utf8_mode:
        return True
    import _locale

    return _locale.nl_langinfo(_locale.CODESET).lower().replace("-", "") == "utf8"


def _in_payload(args: list[str]) -> bool:
    if "--no-payload" in args:
        return False
    return "--payload" in args or os.path.isfile(MARKER)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _stamp(cmdline: str) -> None:
    """The timeline's `first-frame` line (discovery/timeline.py's format), with `bootmenu.timeline` only."""
    if _flag(cmdline, "timeline") is not True:
        return
    uptime = _read("/proc/uptime").split(" ", 1)[0]
    try:
        with open("/dev/kmsg", "w", encoding="utf-8") as kmsg:
            kmsg.write(f"bootmenu-timeline: first-frame {uptime}\n")
    except OSError:
        pass


def quiet_kernel(path: str | None = None) -> int | None:
    """Lowers the console log level (printk's first field, PRINTK) to QUIET_LEVEL; the level it was, when higher."""
    path = path or PRINTK
    fields = _read(path).split()
    if not fields or not fields[0].isdigit() or int(fields[0]) <= QUIET_LEVEL:
        return None
    try:
        with open(path, "w", encoding="ascii") as f:
            f.write(f"{QUIET_LEVEL}\n")
    except OSError:
        return None
    _printk_saved[:] = [int(fields[0])]
    return _printk_saved[0]


def take_printk() -> int | None:
    """The console log level the first frame found, when it lowered it; the caller (the urwid menu) restores it from
    now on, not this module's exit handler."""
    return _printk_saved.pop() if _printk_saved else None


def decode_dev(dev: int) -> tuple[int, int]:
    """(major, minor) of a dev_t as TIOCGDEV returns it, the kernel's new_encode_dev(): the minor's low 8 bits, the
    major's 12, then the rest of the minor."""
    return (dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00)


def _secondary(fd: int) -> bool:
    """True when the terminal on `fd` is a tty but not the one behind /dev/console (False when unknown)."""
    import fcntl
    import struct

    try:
        mine = os.fstat(fd).st_rdev
        console = os.open("/dev/console", os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        dev = struct.unpack("I", fcntl.ioctl(console, TIOCGDEV, b"\0\0\0\0"))[0]
    except OSError:
        return False
    finally:
        os.close(console)
    return (os.major(mine), os.minor(mine)) != decode_dev(dev)


def draw(args: list[str]) -> bool:
    """Draws the first frame when `bootmenu ui ARGS` runs in the payload on a terminal; True when it did."""
    if "-h" in args or "--help" in args or not _in_payload(args):
        return False
    fd = 0
    if not (os.isatty(0) and os.isatty(1)):
        return False
    import termios

    cmdline = _read("/proc/cmdline")
    term = os.environ.get("TERM", "") or "vt100"
    if term == "dumb":
        term = "vt100"  # controller.run_menu's choice
    ascii = _flag(cmdline, "ascii")
    if "--ascii" in args:
        ascii = True
    if ascii is None:
        ascii = not _utf8() or term.split("-", 1)[0] not in _UNICODE_TERMS
    mono = True if "--mono" in args else _flag(cmdline, "mono")
    if mono is None:
        mono = term.startswith(("vt1", "vt2", "dumb")) or "NO_COLOR" in os.environ
    try:
        attrs = termios.tcgetattr(fd)
        quiet = list(attrs)
        quiet[3] = attrs[3] & ~(termios.ECHO | termios.ICANON)  # lflag: keys wait unseen in the input queue
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except termios.error:
        return False
    priority = os.getpriority(os.PRIO_PROCESS, 0)
    policy = os.sched_getscheduler(0)
    _saved[:] = [fd, attrs, priority, policy]
    atexit.register(_abandon)
    cols, rows = _size(fd, cmdline)
    os.write(1, frame(cols, rows, ascii=ascii, mono=mono).encode("utf-8"))
    _drawn.append(True)
    if os.path.isfile(MARKER):
        quiet_kernel()
    _stamp(cmdline)
    if _secondary(fd):
        _quietly(os.setpriority, os.PRIO_PROCESS, 0, max(priority, SECONDARY_NICE))
        _quietly(os.sched_setscheduler, 0, os.SCHED_IDLE, os.sched_param(0))
    return True


def _abandon() -> None:
    """At exit before urwid took over (the menu failed to start): the terminal as it was, main screen included."""
    if _saved:
        release()
        _quietly(os.write, 1, LEAVE_ALTERNATE.encode())
    if _printk_saved:  # the kernel's messages show again on the console left to a shell
        try:
            with open(PRINTK, "w", encoding="ascii") as f:
                f.write(f"{_printk_saved.pop()}\n")
        except OSError:
            pass


def drawn() -> bool:
    """Whether this process drew the first frame (then it stamped the timeline's first-frame)."""
    return bool(_drawn)


def release() -> bytes:
    """The keys typed since `draw()` (at most MAX_TYPED bytes), then the terminal's settings and this process's
    priority as they were before it (nothing if it drew nothing). The keys are read here because urwid's start
    (tty.setcbreak, TCSAFLUSH) would discard them; the menu feeds them to itself once it runs."""
    if not _saved:
        return b""
    fd, attrs, priority, policy = _saved
    _saved.clear()
    assert isinstance(fd, int)
    import termios

    typed = b""
    try:
        os.set_blocking(fd, False)
        while len(typed) < MAX_TYPED:
            chunk = os.read(fd, MAX_TYPED - len(typed))
            if not chunk:
                break
            typed += chunk
    except OSError:  # EAGAIN: nothing more queued
        pass
    finally:
        _quietly(os.set_blocking, fd, True)
    _quietly(termios.tcsetattr, fd, termios.TCSANOW, attrs)
    _quietly(os.sched_setscheduler, 0, policy, os.sched_param(0))
    _quietly(os.setpriority, os.PRIO_PROCESS, 0, priority)
    return typed
