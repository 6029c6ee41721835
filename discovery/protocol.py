"""The daemon/UI protocol: versioned, newline-delimited JSON over a Unix stream socket.

Every message is one JSON object on one line: `{"v": 1, "type": "...", ...fields}`. A new client first receives
`hello` with the whole state, then live updates. Unknown message types are ignored by both sides, so either can be
newer; a different `v` is refused with an `error` status. Payloads are frozen dataclasses with round-trip tests.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from discovery.entry import BootEntry
from discovery.settings import TTY_RE

VERSION = 1
# A message larger than this is a bug or an attack; the reader drops the connection.
MAX_LINE = 4 * 1024 * 1024


class ProtocolError(ValueError):
    """A line that is not a valid message of this protocol version."""


class Level(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class DeviceState(enum.StrEnum):
    PROBING = "probing"
    MOUNTED = "mounted"
    LOCKED = "locked"  # encrypted: listed, never opened
    IGNORED = "ignored"  # swap, RAID/LVM member, no medium, zero size
    FAILED = "failed"


@dataclass(frozen=True)
class DeviceInfo:
    """A block device (or a `--root` directory) as the menu shows it: `[Disk: vda2 ext4 "root"]`."""

    name: str
    node: str = ""
    kind: str = "disk"  # disk, usb, cdrom, nvme, mmc, directory
    fstype: str = ""
    uuid: str = ""
    label: str = ""
    state: DeviceState = DeviceState.PROBING
    message: str = ""
    mountpoint: str = ""

    def header(self) -> str:
        bits = [self.name]
        if self.fstype:
            bits.append(self.fstype)
        if self.label:
            bits.append(f'"{self.label}"')
        return f"[{self.kind.capitalize()}: {' '.join(bits)}]"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "node": self.node,
            "kind": self.kind,
            "fstype": self.fstype,
            "uuid": self.uuid,
            "label": self.label,
            "state": str(self.state),
            "message": self.message,
            "mountpoint": self.mountpoint,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeviceInfo:
        return cls(
            name=str(data["name"]),
            node=str(data.get("node", "")),
            kind=str(data.get("kind", "disk")),
            fstype=str(data.get("fstype", "")),
            uuid=str(data.get("uuid", "")),
            label=str(data.get("label", "")),
            state=DeviceState(data.get("state", "probing")),
            message=str(data.get("message", "")),
            mountpoint=str(data.get("mountpoint", "")),
        )


@dataclass(frozen=True)
class EntryInfo:
    """A boot entry with the daemon's id for it (what a client sends back in `boot`), and what its config asked of
    the menu (`config_timeout` seconds, `timeout_style` such as hidden): shown in its details, never obeyed unless
    the settings say `timeout = "config"` (the firmware owns autoboot)."""

    id: str
    entry: BootEntry
    config_timeout: float | None = None
    timeout_style: str | None = None
    # The daemon's remark on the entry, shown beside its title (e.g. "did not come up last time").
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "entry": self.entry.to_json(),
            "config_timeout": self.config_timeout,
            "timeout_style": self.timeout_style,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EntryInfo:
        timeout, style = data.get("config_timeout"), data.get("timeout_style")
        return cls(
            id=str(data["id"]),
            entry=BootEntry.from_json(data["entry"]),
            config_timeout=None if timeout is None else float(timeout),
            timeout_style=None if style is None else str(style),
            note=str(data.get("note") or ""),
        )


@dataclass(frozen=True)
class StatusLine:
    level: Level
    message: str
    time: float = 0.0  # seconds since the epoch

    def to_json(self) -> dict[str, Any]:
        return {"level": str(self.level), "message": self.message, "time": self.time}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StatusLine:
        return cls(Level(data["level"]), str(data["message"]), float(data.get("time", 0.0)))


@dataclass(frozen=True)
class Countdown:
    """Autoboot state: `remaining` seconds until `entry_id` boots; None when cancelled, off or done. `reason` says
    why autoboot is held or falls back (the previous boot did not come up), for every UI to show."""

    entry_id: str | None = None
    remaining: float | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"entry_id": self.entry_id, "remaining": self.remaining, "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Countdown:
        remaining = data.get("remaining")
        return cls(data.get("entry_id"), None if remaining is None else float(remaining), str(data.get("reason") or ""))


# --- messages ---


class Message:
    """Base of every message; subclasses are frozen dataclasses with a `TYPE`."""

    TYPE: ClassVar[str] = ""

    def payload(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Message:
        raise NotImplementedError


_REGISTRY: dict[str, type[Message]] = {}
_M = TypeVar("_M", bound=type[Message])


def _register(cls: _M) -> _M:
    _REGISTRY[cls.TYPE] = cls
    return cls


@_register
@dataclass(frozen=True)
class Hello(Message):
    """Server -> client, first message: the whole state."""

    TYPE: ClassVar[str] = "hello"
    devices: tuple[DeviceInfo, ...] = ()
    entries: tuple[EntryInfo, ...] = ()
    status: tuple[StatusLine, ...] = ()
    countdown: Countdown = field(default_factory=Countdown)
    settings: Mapping[str, Any] = field(default_factory=dict)
    dry_run: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "devices": [d.to_json() for d in self.devices],
            "entries": [e.to_json() for e in self.entries],
            "status": [s.to_json() for s in self.status],
            "countdown": self.countdown.to_json(),
            "settings": dict(self.settings),
            "dry_run": self.dry_run,
        }

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Hello:
        return cls(
            devices=tuple(DeviceInfo.from_json(d) for d in data.get("devices", ())),
            entries=tuple(EntryInfo.from_json(e) for e in data.get("entries", ())),
            status=tuple(StatusLine.from_json(s) for s in data.get("status", ())),
            countdown=Countdown.from_json(data.get("countdown", {})),
            settings=dict(data.get("settings", {})),
            dry_run=bool(data.get("dry_run", False)),
        )


@_register
@dataclass(frozen=True)
class DeviceUpdated(Message):
    """Server -> client: a device appeared or changed state."""

    TYPE: ClassVar[str] = "device"
    device: DeviceInfo

    def payload(self) -> dict[str, Any]:
        return {"device": self.device.to_json()}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> DeviceUpdated:
        return cls(DeviceInfo.from_json(data["device"]))


@_register
@dataclass(frozen=True)
class DeviceRemoved(Message):
    TYPE: ClassVar[str] = "device-removed"
    name: str

    def payload(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> DeviceRemoved:
        return cls(str(data["name"]))


@_register
@dataclass(frozen=True)
class EntryAdded(Message):
    """Server -> client: a new entry. `after` is the id it follows in menu order (None: first)."""

    TYPE: ClassVar[str] = "entry"
    entry: EntryInfo
    after: str | None = None

    def payload(self) -> dict[str, Any]:
        return {"entry": self.entry.to_json(), "after": self.after}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> EntryAdded:
        return cls(EntryInfo.from_json(data["entry"]), data.get("after"))


@_register
@dataclass(frozen=True)
class EntryRemoved(Message):
    TYPE: ClassVar[str] = "entry-removed"
    id: str

    def payload(self) -> dict[str, Any]:
        return {"id": self.id}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> EntryRemoved:
        return cls(str(data["id"]))


@_register
@dataclass(frozen=True)
class Status(Message):
    TYPE: ClassVar[str] = "status"
    status: StatusLine

    def payload(self) -> dict[str, Any]:
        return {"status": self.status.to_json()}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Status:
        return cls(StatusLine.from_json(data["status"]))


@_register
@dataclass(frozen=True)
class CountdownUpdate(Message):
    TYPE: ClassVar[str] = "countdown"
    countdown: Countdown

    def payload(self) -> dict[str, Any]:
        return {"countdown": self.countdown.to_json()}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> CountdownUpdate:
        return cls(Countdown.from_json(data["countdown"]))


@_register
@dataclass(frozen=True)
class LogLines(Message):
    """Server -> client: the daemon's log, in reply to `get-log`."""

    TYPE: ClassVar[str] = "log"
    lines: tuple[str, ...] = ()

    def payload(self) -> dict[str, Any]:
        return {"lines": list(self.lines)}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> LogLines:
        return cls(tuple(str(x) for x in data.get("lines", ())))


@_register
@dataclass(frozen=True)
class Boot(Message):
    """Client -> server: boot entry `id`, with `cmdline` replacing its command line when given (the editor).
    `console` is the `console=` value of the menu's terminal (`ttyS0,115200n8`, `tty0`), for the hand-off."""

    TYPE: ClassVar[str] = "boot"
    id: str
    cmdline: str | None = None
    console: str | None = None

    def payload(self) -> dict[str, Any]:
        return {"id": self.id, "cmdline": self.cmdline, "console": self.console}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Boot:
        cmdline, console = data.get("cmdline"), data.get("console")
        if console is not None and not (isinstance(console, str) and TTY_RE.match(console)):
            raise ValueError("console must be a tty name such as ttyS0,115200n8")
        return cls(str(data["id"]), None if cmdline is None else str(cmdline), console)


@dataclass(frozen=True)
class _Empty(Message):
    def payload(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Message:
        return cls()


@_register
@dataclass(frozen=True)
class CancelAutoboot(_Empty):
    TYPE: ClassVar[str] = "cancel-autoboot"


@_register
@dataclass(frozen=True)
class Rescan(_Empty):
    TYPE: ClassVar[str] = "rescan"


@_register
@dataclass(frozen=True)
class GetLog(_Empty):
    TYPE: ClassVar[str] = "get-log"


def encode(message: Message) -> bytes:
    body = {"v": VERSION, "type": message.TYPE, **message.payload()}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def decode(line: bytes | str) -> Message | None:
    """The message on `line`; None for a well-formed message of a type this side does not know."""
    try:
        data = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ProtocolError("a message must be a JSON object")
    if data.get("v") != VERSION:
        raise ProtocolError(f"protocol version {data.get('v')!r}, this side speaks {VERSION}")
    cls = _REGISTRY.get(str(data.get("type")))
    if cls is None:
        return None
    try:
        return cls.from_payload(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"bad {data.get('type')} message: {exc!r}") from exc
