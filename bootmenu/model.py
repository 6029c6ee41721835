"""The menu's state, built only from protocol messages (discovery/protocol.py); no urwid here.

The daemon sends the whole state in `hello`, then updates. The model keeps devices in arrival order and entries in the
daemon's menu order, and turns them into rows for one menu level: device headers, entries, and one row per GRUB
submenu (entries whose `submenu` path continues below the level shown). Rows carry stable keys so the view can keep
the selection on the same entry while devices and entries come and go.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bootmenu.keys import Command
from discovery import protocol as p
from discovery.sysinfo import Disk, SystemInfo

MAX_STATUS = 500
MAX_PINNED = 20


class Change(enum.Flag):
    """What a message changed, so the view redraws only that (serial lines are slow)."""

    NONE = 0
    MENU = enum.auto()
    STATUS = enum.auto()
    COUNTDOWN = enum.auto()
    LOG = enum.auto()
    SYSINFO = enum.auto()


@dataclass(frozen=True)
class MenuPath:
    """A menu level: the top (device None) or a submenu on one device, as GRUB's `>`-joined path."""

    device: str | None = None
    titles: tuple[str, ...] = ()

    @property
    def is_top(self) -> bool:
        return self.device is None

    def child(self, device: str, title: str) -> MenuPath:
        return MenuPath(device, (*self.titles, title))

    def parent(self) -> MenuPath:
        if len(self.titles) <= 1:
            return MenuPath()
        return MenuPath(self.device, self.titles[:-1])


@dataclass(frozen=True)
class HeaderRow:
    device: p.DeviceInfo
    path: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"header:{self.device.name}"

    def text(self) -> str:
        header = self.device.header()
        if self.path:
            header += " " + " > ".join(self.path)
        if self.device.state in (p.DeviceState.LOCKED, p.DeviceState.FAILED, p.DeviceState.PROBING):
            header += f" ({self.device.state})"
        return header


@dataclass(frozen=True)
class EntryRow:
    info: p.EntryInfo
    is_default: bool

    @property
    def key(self) -> str:
        return f"entry:{self.info.id}"

    def text(self) -> str:
        entry = self.info.entry
        suffix = " (missing device)" if entry.unresolved else ""
        if entry.bad:
            suffix += " (bad: no boot tries left)"
        if self.info.note:
            suffix += f" [{self.info.note}]"
        return entry.title + suffix


@dataclass(frozen=True)
class SubmenuRow:
    device: str
    path: MenuPath
    title: str
    is_default: bool

    @property
    def key(self) -> str:
        return f"submenu:{self.device}:{'>'.join(self.path.titles)}"

    def text(self) -> str:
        return self.title


@dataclass(frozen=True)
class NoteRow:
    """A line that is not selectable: why a device shows no entries."""

    message: str
    owner: str

    @property
    def key(self) -> str:
        return f"note:{self.owner}"

    def text(self) -> str:
        return self.message


@dataclass(frozen=True)
class TitleRow:
    """A heading that is not a device: `[System]` above the action rows."""

    title: str

    @property
    def key(self) -> str:
        return f"title:{self.title}"

    def text(self) -> str:
        return f"[{self.title}]"


@dataclass(frozen=True)
class ActionRow:
    """A selectable row that runs a menu command (Petitboot's "System information", "Exit to shell")."""

    command: Command
    title: str
    is_default: bool = False

    @property
    def key(self) -> str:
        return f"action:{self.command}"

    def text(self) -> str:
        return self.title


# The rows below the entries on the top level, in order.
ACTIONS: tuple[tuple[Command, str], ...] = (
    (Command.SYSINFO, "System information"),
    (Command.REBOOT, "Reboot"),
    (Command.POWER_OFF, "Power off"),
    (Command.SHELL, "Exit to shell"),
)

Row = HeaderRow | EntryRow | SubmenuRow | NoteRow | TitleRow | ActionRow


# Devices listed only when they have entries; the others (probing, locked, failed) say why they have none.
_QUIET_WHEN_EMPTY = frozenset({p.DeviceState.MOUNTED, p.DeviceState.IGNORED})


def entry_device(entry: p.EntryInfo) -> str:
    """The device an entry is listed under: where its config is (what GRUB would show on that disk)."""
    return entry.entry.config_device or entry.entry.device


@dataclass
class MenuModel:
    devices: dict[str, p.DeviceInfo] = field(default_factory=dict)
    entries: list[p.EntryInfo] = field(default_factory=list)
    status: list[p.StatusLine] = field(default_factory=list)
    countdown: p.Countdown = field(default_factory=p.Countdown)
    countdown_at: float = 0.0
    settings: dict[str, object] = field(default_factory=dict)
    dry_run: bool = False
    log: tuple[str, ...] | None = None
    sysinfo: SystemInfo | None = None
    connected: bool = False
    ever_connected: bool = False  # a Hello arrived once: before it, the daemon is still starting
    clock: Callable[[], float] = time.monotonic
    # Index in `status` where the last boot request's messages start.
    boot_mark: int | None = None

    # --- applying messages ---

    def apply(self, message: p.Message) -> Change:
        if isinstance(message, p.Hello):
            self.devices = {d.name: d for d in message.devices}
            self.entries = list(message.entries)
            self.status = list(message.status)[-MAX_STATUS:]
            self.settings = dict(message.settings)
            self.dry_run = message.dry_run
            self.connected = True
            self.ever_connected = True
            self._set_countdown(message.countdown)
            return Change.MENU | Change.STATUS | Change.COUNTDOWN
        if isinstance(message, p.DeviceUpdated):
            self.devices[message.device.name] = message.device
            return Change.MENU
        if isinstance(message, p.DeviceRemoved):
            self.devices.pop(message.name, None)
            return Change.MENU
        if isinstance(message, p.EntryAdded):
            self._add_entry(message.entry, message.after)
            return Change.MENU
        if isinstance(message, p.EntryRemoved):
            self.entries = [e for e in self.entries if e.id != message.id]
            return Change.MENU
        if isinstance(message, p.Status):
            self.status.append(message.status)
            if len(self.status) > MAX_STATUS:
                dropped = len(self.status) - MAX_STATUS
                del self.status[:dropped]
                self.boot_mark = None if self.boot_mark is None else max(0, self.boot_mark - dropped)
            return Change.STATUS
        if isinstance(message, p.CountdownUpdate):
            self._set_countdown(message.countdown)
            return Change.COUNTDOWN
        if isinstance(message, p.LogLines):
            self.log = message.lines
            return Change.LOG
        if isinstance(message, p.Sysinfo):
            self.sysinfo = message.info
            return Change.SYSINFO
        return Change.NONE

    def _add_entry(self, info: p.EntryInfo, after: str | None) -> None:
        # An entry sent again (its config changed) replaces the old one in place, unless the daemon moves it.
        self.entries = [e for e in self.entries if e.id != info.id]
        if after is None:
            self.entries.insert(0, info)
            return
        for i, e in enumerate(self.entries):
            if e.id == after:
                self.entries.insert(i + 1, info)
                return
        self.entries.append(info)

    def _set_countdown(self, countdown: p.Countdown) -> None:
        self.countdown = countdown
        self.countdown_at = self.clock()

    def cancel_countdown(self) -> bool:
        """Stops the local countdown display; True when one was running (the daemon must be told)."""
        running = self.countdown.remaining is not None
        # Why the last boot failed stays on the screen; only the countdown stops.
        self.countdown = p.Countdown(reason=self.countdown.reason)
        return running

    # --- queries ---

    def pinned(self) -> list[str]:
        """The daemon's settings warnings: shown on the status line for as long as the menu runs."""
        warnings = self.settings.get("warnings")
        if not isinstance(warnings, list):
            return []
        return [str(w) for w in warnings[:MAX_PINNED]]

    def entry(self, entry_id: str) -> p.EntryInfo | None:
        return next((e for e in self.entries if e.id == entry_id), None)

    def default_entry(self) -> p.EntryInfo | None:
        if self.countdown.entry_id is not None:
            found = self.entry(self.countdown.entry_id)
            if found is not None:
                return found
        return next((e for e in self.entries if e.entry.default), None)

    def remaining(self) -> int | None:
        """Whole seconds until autoboot, counting down locally between the daemon's updates."""
        if self.countdown.remaining is None:
            return None
        left = self.countdown.remaining - (self.clock() - self.countdown_at)
        return max(0, int(left + 0.999))

    def countdown_text(self) -> str:
        left = self.remaining()
        reason = self.countdown.reason
        if left is None:
            return reason
        target = self.entry(self.countdown.entry_id or "")
        title = target.entry.title if target else "the default entry"
        text = f"Booting '{title}' in {left}s - any key stops"
        # Two lines: on an 80-column serial console the reason would push the countdown out of sight.
        return f"{reason}\n{text}" if reason else text

    def mark_boot(self) -> None:
        self.boot_mark = len(self.status)

    def boot_status(self) -> list[p.StatusLine]:
        """The daemon's messages since the last boot request (in dry run: what would be kexec'd)."""
        return [] if self.boot_mark is None else self.status[self.boot_mark :]

    def rows(self, path: MenuPath) -> list[Row]:
        """The rows of one menu level, in menu order."""
        default = self.default_entry()
        default_id = default.id if default else None
        if path.is_top:
            order = list(self.devices)
            for e in self.entries:  # entries naming a device the daemon has not described (yet)
                if entry_device(e) not in self.devices and entry_device(e) not in order:
                    order.append(entry_device(e))
            rows: list[Row] = []
            for name in order:
                device = self.devices.get(name) or p.DeviceInfo(name=name, state=p.DeviceState.MOUNTED)
                level = self._level_rows(name, (), default_id)
                if not level and device.state in _QUIET_WHEN_EMPTY:
                    continue  # a data disk, swap or RAID member: the log says why, the menu stays short
                rows.append(HeaderRow(device))
                if not level:
                    rows.append(NoteRow(self._empty_note(device), name))
                rows.extend(level)
            return rows
        assert path.device is not None
        device = self.devices.get(path.device) or p.DeviceInfo(name=path.device, state=p.DeviceState.MOUNTED)
        return [HeaderRow(device, path.titles), *self._level_rows(path.device, path.titles, default_id)]

    def menu_rows(self, path: MenuPath) -> list[Row]:
        """What the menu shows on one level: `rows`, and on the top level the action rows below them."""
        rows = self.rows(path)
        if path.is_top:
            rows += [TitleRow("System"), *(ActionRow(command, title) for command, title in ACTIONS)]
        return rows

    def _level_rows(self, device: str, titles: tuple[str, ...], default_id: str | None) -> list[Row]:
        rows: list[Row] = []
        seen: set[str] = set()
        depth = len(titles)
        for e in self.entries:
            if entry_device(e) != device or e.entry.submenu[:depth] != titles:
                continue
            if len(e.entry.submenu) == depth:
                rows.append(EntryRow(e, e.id == default_id))
                continue
            title = e.entry.submenu[depth]
            if title in seen:
                continue
            seen.add(title)
            sub = MenuPath(device, (*titles, title))
            rows.append(SubmenuRow(device, sub, title, self._submenu_has(device, sub.titles, default_id)))
        return rows

    def _submenu_has(self, device: str, titles: tuple[str, ...], entry_id: str | None) -> bool:
        found = self.entry(entry_id) if entry_id else None
        return found is not None and entry_device(found) == device and found.entry.submenu[: len(titles)] == titles

    def _empty_note(self, device: p.DeviceInfo) -> str:
        if device.message:
            return device.message
        return {
            p.DeviceState.PROBING: "reading boot configs...",
            p.DeviceState.LOCKED: "encrypted: not opened",
            p.DeviceState.FAILED: "could not be read",
        }.get(device.state, "no boot entries")

    def menu_exists(self, path: MenuPath) -> bool:
        if path.is_top:
            return True
        return any(
            entry_device(e) == path.device and e.entry.submenu[: len(path.titles)] == path.titles for e in self.entries
        )


# --- the system information screen ---


def size_text(size: int) -> str:
    """`512 MiB`, `1.5 GiB`: binary units, as disk tools print them."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{f'{value:.1f}'.removesuffix('.0')} {unit}"


def _join(*parts: str) -> str:
    return "  ".join(x for x in parts if x)


def _disk_lines(disk: Disk) -> list[str]:
    flags = ", ".join(x for x, on in (("removable", disk.removable), ("read-only", disk.read_only)) if on)
    lines = [_join(f"  {disk.name}", size_text(disk.size), disk.model or "(no model)", flags and f"({flags})")]
    if disk.fstype or disk.found:
        lines.append(_join("      whole disk:", disk.fstype, disk.found))
    for part in disk.partitions:
        lines.append(_join(f"    {part.name}", size_text(part.size), part.fstype, part.found or "not examined"))
    if not disk.partitions and not (disk.fstype or disk.found):
        lines.append("      no partitions, no filesystem found")
    return lines


def sysinfo_lines(info: SystemInfo) -> list[str]:
    """The screen's text: short lines (the window is 73 columns on an 80-column console; longer ones wrap)."""
    m, fw = info.machine, info.firmware
    lines = [
        f"Machine:   {_join(m.vendor, m.product, m.version) or '(no DMI or devicetree data)'}",
        f"Serial:    {m.serial or '(none, or not readable)'}",
    ]
    if m.board:
        lines.append(f"Board:     {m.board}")
    lines += [
        f"Firmware:  {_join(fw.kind or 'unknown', fw.vendor, fw.version, fw.date and f'({fw.date})')}",
        f"CPUs:      {info.cpus or '?'}{f' x {info.cpu_model}' if info.cpu_model else ''}",
        f"Memory:    {size_text(info.memory) if info.memory else '?'}",
        f"Kernel:    {_join(info.kernel or '?', info.architecture)}",
    ]
    if info.kernel_version:
        lines.append(f"           {info.kernel_version}")
    lines += ["", "Disks:"]
    for disk in info.disks:
        lines += _disk_lines(disk)
    if not info.disks:
        lines.append("  (none found)")
    lines += ["", "Network:"]
    for nic in info.nics:
        link = {True: "link", False: "no link", None: ""}[nic.carrier]
        speed = f"{nic.speed} Mb/s" if nic.speed else ""
        lines.append(_join(f"  {nic.name}", nic.mac or "(no MAC)", nic.state, link, speed))
    if not info.nics:
        lines.append("  (no interfaces)")
    if info.watchdogs:
        lines += ["", "Watchdog:"]
        for wd in info.watchdogs:
            timeout = f"timeout {wd.timeout} s" if wd.timeout is not None else ""
            lines.append(_join(f"  {wd.name}", wd.identity, timeout, wd.state))
    return lines
