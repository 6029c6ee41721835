"""The terminal the menu runs on: its size, what it can draw, and the kernel's console log level.

Serial consoles report no size (TIOCGWINSZ gives 0x0), so the menu assumes 80x24 unless the kernel command line says
`bootmenu.console=COLSxROWS`. A vt100 (or an unknown TERM, or a non-UTF-8 locale) cannot be trusted with line-drawing
characters, so the menu draws with ASCII there. While the menu runs, kernel messages would scribble over it: the console
log level (the first field of /proc/sys/kernel/printk, see Documentation/admin-guide/sysctl/kernel.rst) is lowered,
and restored before booting and at exit.
"""

from __future__ import annotations

import codecs
import locale
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from discovery.settings import cmdline_flag

log = logging.getLogger(__name__)

FALLBACK_SIZE = (80, 24)
PRINTK = Path("/proc/sys/kernel/printk")
# KERN_ALERT: only messages more urgent than "critical" reach the console while the menu is up.
QUIET_LEVEL = 1
_CONSOLE_ARG = re.compile(r"(?:^|(?<=\s))bootmenu\.console=(\d+)x(\d+)(?=\s|$)")
# Terminals known to show Unicode line drawing when the locale is UTF-8; anything else gets ASCII.
_UNICODE_TERMS = ("xterm", "screen", "tmux", "rxvt", "linux", "alacritty", "foot", "kitty", "st", "konsole", "wezterm")


class ConsoleError(OSError):
    """The console log level could not be changed (names the file and errno)."""


@dataclass(frozen=True)
class Glyphs:
    """Characters the widgets draw with; ASCII for terminals that cannot show line drawing."""

    hline: str
    vline: str
    tl: str
    tr: str
    bl: str
    br: str
    submenu: str
    ellipsis: str


UNICODE_GLYPHS = Glyphs("─", "│", "┌", "┐", "└", "┘", "▸", "…")
ASCII_GLYPHS = Glyphs("-", "|", "+", "+", "+", "+", ">", "...")


@dataclass(frozen=True)
class ConsoleSettings:
    """How to draw on this terminal. `size` is None when the terminal reports its own size."""

    size: tuple[int, int] | None
    ascii: bool
    mono: bool
    # True when `size` is only the 80x24 guess: a size from the daemon's settings may replace it.
    guessed: bool = False
    # The terminal's device name (ttyS0, tty1; "" when unknown) and the running kernel's command line: what a
    # debug boot needs for its early console words (discovery/debugboot.py).
    tty: str = field(default="", compare=False)
    cmdline: str = field(default="", compare=False)

    @property
    def glyphs(self) -> Glyphs:
        return ASCII_GLYPHS if self.ascii else UNICODE_GLYPHS


def kernel_cmdline(path: Path = Path("/proc/cmdline")) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def size_override(cmdline: str) -> tuple[int, int] | None:
    """`bootmenu.console=COLSxROWS` from the kernel command line (the last one wins, as in the kernel)."""
    found = _CONSOLE_ARG.findall(cmdline)
    if not found:
        return None
    cols, rows = (int(v) for v in found[-1])
    if cols < 20 or rows < 5:
        return None
    return cols, rows


def terminal_size(fd: int) -> tuple[int, int] | None:
    """The size the terminal on `fd` reports, None when it reports nothing (serial lines) or is no terminal."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    if size.columns <= 0 or size.lines <= 0:
        return None
    return size.columns, size.lines


def needs_ascii(term: str, encoding: str) -> bool:
    try:
        utf8 = codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        utf8 = False
    base = term.split("-", maxsplit=1)[0]
    return not utf8 or base not in _UNICODE_TERMS


def detect(
    fd: int,
    env: Mapping[str, str] | None = None,
    cmdline: str | None = None,
    *,
    ascii: bool | None = None,
    mono: bool | None = None,
) -> ConsoleSettings:
    """Settings for the terminal on `fd`: a size only when we must impose one (override or unknown size)."""
    env = os.environ if env is None else env
    cmdline = kernel_cmdline() if cmdline is None else cmdline
    term = env.get("TERM", "") or "vt100"
    size = size_override(cmdline)
    guessed = size is None and terminal_size(fd) is None
    if guessed:
        size = FALLBACK_SIZE
    encoding = locale.getpreferredencoding(False)
    forced_ascii, forced_mono = cmdline_flag(cmdline, "ascii"), cmdline_flag(cmdline, "mono")
    if ascii is None:
        ascii = forced_ascii if forced_ascii is not None else needs_ascii(term, encoding)
    if mono is None:
        plain = term.startswith(("vt1", "vt2", "dumb")) or "NO_COLOR" in env
        mono = forced_mono if forced_mono is not None else plain
    try:
        tty = os.path.basename(os.ttyname(fd))
    except OSError:
        tty = ""
    return ConsoleSettings(size=size, ascii=ascii, mono=mono, guessed=guessed, tty=tty, cmdline=cmdline)


class ConsoleLogLevel:
    """Lowers the kernel console log level while the menu is shown; `restore()` before booting and at exit.

    Only the first printk field (console_loglevel) is written: writing one number leaves the others as they are.
    """

    def __init__(self, path: Path = PRINTK, quiet: int = QUIET_LEVEL, *, saved: int | None = None) -> None:
        """`saved`: the level before someone lowered it for this menu already (the first frame did), restored as
        if this had lowered it."""
        self.path = path
        self.quiet = quiet
        self.saved = saved

    def lower(self) -> None:
        if self.saved is not None:
            return
        try:
            text = self.path.read_text()
        except OSError as exc:
            raise ConsoleError(exc.errno, f"cannot read console log level: {exc.strerror}", str(self.path)) from exc
        try:
            current = int(text.split()[0])
        except (ValueError, IndexError) as exc:
            raise ConsoleError(0, f"cannot read console log level: {text[:20]!r} is no number", str(self.path)) from exc
        if current <= self.quiet:
            return
        self._write(self.quiet)
        self.saved = current

    def restore(self) -> None:
        if self.saved is None:
            return
        self._write(self.saved)
        self.saved = None

    def _write(self, level: int) -> None:
        try:
            self.path.write_text(f"{level}\n")
        except OSError as exc:
            raise ConsoleError(exc.errno, f"cannot set console log level: {exc.strerror}", str(self.path)) from exc

    def __enter__(self) -> ConsoleLogLevel:
        self.lower()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()
