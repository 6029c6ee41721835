"""The boot timeline (issue 15): guest-side stamps of the payload's start-up, on request only.

With the kernel parameter `bootmenu.timeline`, /init (initramfs/data/init), the daemon and the menu each write one
kernel-log line per event, `bootmenu-timeline: EVENT UPTIME [DETAIL]`, UPTIME being the first field of /proc/uptime
(seconds since the kernel started, so the kernel's own start is 0). Without it a stamp costs one read of
/proc/cmdline per process. `dmesg | grep bootmenu-timeline` in the payload's shell shows them; `make bench` and
tests/qemu/test_timeline.py read them that way and `table()` prints them with their deltas.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discovery.settings import cmdline_flag

MARKER = "bootmenu-timeline:"
CMDLINE = Path("/proc/cmdline")
UPTIME = Path("/proc/uptime")
KMSG = Path("/dev/kmsg")
# The events in the order they usually happen. The menu starts before the modules load and draws its first frame
# (looking for devices) without waiting for the daemon, so first-frame may come anywhere after init; `AFTER` says
# what must precede each event.
# first-frame is the menu's first screen (bootmenu/firstframe.py, before urwid is imported), menu-ready the urwid
# menu's first draw.
EVENTS = (
    "init", "udev-ready", "modules-loaded", "daemon-started", "first-device-probed", "first-frame", "menu-ready",
    "all-entries",
)  # fmt: skip
AFTER: dict[str, tuple[str, ...]] = {
    "init": (),
    "udev-ready": ("init",),
    "modules-loaded": ("udev-ready",),
    "daemon-started": ("modules-loaded",),
    "first-device-probed": ("daemon-started",),
    "first-frame": ("init",),
    "menu-ready": ("first-frame",),
    "all-entries": ("first-device-probed",),
}
# A line as it reaches a console or dmesg: kernel timestamps and other messages may surround it.
LINE_RE = re.compile(MARKER + r" ([a-z-]{1,40}) (\d{1,9}\.\d{1,9})(?: ([^\r\n]{0,200}))?")
MAX_STAMPS = 64  # a log holds a handful; bound what a runaway restart loop could add
_stamped: set[str] = set()


@functools.cache
def enabled() -> bool:
    try:
        return cmdline_flag(CMDLINE.read_text(errors="replace"), "timeline") is True
    except OSError:
        return False


def stamp(event: str, detail: str = "") -> None:
    """The line for `event` in the kernel log, the first time in this process and when `bootmenu.timeline` is on;
    never raises (it is diagnostics)."""
    if event in _stamped or not enabled():
        return
    _stamped.add(event)
    try:
        uptime = UPTIME.read_text().split()[0]
        with KMSG.open("w") as kmsg:
            kmsg.write(f"{MARKER} {event} {uptime} {detail}".rstrip() + "\n")
    except (OSError, IndexError):
        pass


@dataclass(frozen=True)
class Stamp:
    event: str
    seconds: float
    detail: str = ""


def parse(text: str) -> list[Stamp]:
    """The stamps in a console transcript or dmesg output, in the order found (the first of a repeated event)."""
    seen: dict[str, Stamp] = {}
    for m in LINE_RE.finditer(text):
        if m.group(1) not in seen and len(seen) < MAX_STAMPS:
            seen[m.group(1)] = Stamp(m.group(1), float(m.group(2)), (m.group(3) or "").strip())
    return list(seen.values())


def out_of_order(stamps: Iterable[Stamp]) -> list[str]:
    """What is wrong with a boot's stamps: missing events, and events stamped before one that must precede them."""
    by_event = {s.event: s for s in stamps}
    problems = [f"{e}: missing" for e in EVENTS if e not in by_event]
    for event, before in AFTER.items():
        for earlier in before:
            if event in by_event and earlier in by_event and by_event[event].seconds < by_event[earlier].seconds:
                problems.append(f"{event} at {by_event[event].seconds:.2f} s is before {earlier}")
    return problems


def table(stamps: Iterable[Stamp]) -> str:
    """Kernel start (0) and every stamp by time, with the delta from the line before."""
    rows = [Stamp("kernel start", 0.0), *sorted(stamps, key=lambda s: s.seconds)]
    lines = [f"{'event':<22} {'uptime':>8} {'delta':>8}  detail"]
    previous = 0.0
    for s in rows:
        lines.append(f"{s.event:<22} {s.seconds:7.2f}s {s.seconds - previous:+7.2f}s  {s.detail}".rstrip())
        previous = s.seconds
    return "\n".join(lines)


def after_first_call(obj: Any, method: str, *events: str) -> None:
    """Stamp `events` right after the first call of `obj.method` (the menu's first screen draw)."""
    if not enabled():
        return
    original = getattr(obj, method)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        for event in events:
            stamp(event)
        setattr(obj, method, original)
        return result

    setattr(obj, method, wrapper)
