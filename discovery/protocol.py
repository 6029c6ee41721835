"""The daemon/UI protocol: versioned, newline-delimited JSON over a Unix stream socket.

Every message is one JSON object on one line: `{"v": 1, "type": "...", ...fields}`. A new client first receives
`hello` with the whole state, then live updates. Unknown message types and unknown fields are ignored by both sides,
so either can be newer; a different `v` is refused with an `error` status. Payloads are frozen dataclasses, encoded
and decoded by one generic codec driven by their field types: a value of the wrong JSON type is refused with the
field's name (never turned into a string), so nothing a client sends reaches the daemon as anything but what the
dataclass declares.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from discovery.entry import BootEntry

VERSION = 1
# A daemon -> client line (a hello with every entry) larger than this is a bug or an attack; the client gives up.
MAX_LINE = 4 * 1024 * 1024
# A client -> daemon request is an entry id and at most an edited command line; a longer line is refused.
MAX_REQUEST = 64 * 1024
# How much of a client-supplied string an error message quotes.
QUOTE_LIMIT = 40


class ProtocolError(ValueError):
    """A line that is not a valid message of this protocol version."""


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """`repr(value)` for messages that echo what a peer sent, cut to `limit` characters with the full length named,
    so an id of megabytes never becomes a status line of megabytes."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    return clip(repr(value), limit)


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


@dataclass(frozen=True)
class EntryInfo:
    """A boot entry with the daemon's id for it (what a client sends back in `boot`)."""

    id: str
    entry: BootEntry


@dataclass(frozen=True)
class StatusLine:
    level: Level
    message: str
    time: float = 0.0  # seconds since the epoch


@dataclass(frozen=True)
class Countdown:
    """Autoboot state: `remaining` seconds until `entry_id` boots; None when cancelled, off or done."""

    entry_id: str | None = None
    remaining: float | None = None


# --- messages ---

_REGISTRY: dict[str, type[Message]] = {}


class Message:
    """Base of every message; subclasses are frozen dataclasses with a `TYPE`, registered by defining them."""

    TYPE: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.TYPE:
            _REGISTRY[cls.TYPE] = cls


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


@dataclass(frozen=True)
class DeviceUpdated(Message):
    """Server -> client: a device appeared or changed state."""

    TYPE: ClassVar[str] = "device"
    device: DeviceInfo


@dataclass(frozen=True)
class DeviceRemoved(Message):
    TYPE: ClassVar[str] = "device-removed"
    name: str


@dataclass(frozen=True)
class EntryAdded(Message):
    """Server -> client: a new entry. `after` is the id it follows in menu order (None: first)."""

    TYPE: ClassVar[str] = "entry"
    entry: EntryInfo
    after: str | None = None


@dataclass(frozen=True)
class EntryRemoved(Message):
    TYPE: ClassVar[str] = "entry-removed"
    id: str


@dataclass(frozen=True)
class Status(Message):
    TYPE: ClassVar[str] = "status"
    status: StatusLine


@dataclass(frozen=True)
class CountdownUpdate(Message):
    TYPE: ClassVar[str] = "countdown"
    countdown: Countdown


@dataclass(frozen=True)
class LogLines(Message):
    """Server -> client: the daemon's log, in reply to `get-log`."""

    TYPE: ClassVar[str] = "log"
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Boot(Message):
    """Client -> server: boot entry `id`, with `cmdline` replacing its command line when given (the editor)."""

    TYPE: ClassVar[str] = "boot"
    id: str
    cmdline: str | None = None


@dataclass(frozen=True)
class CancelAutoboot(Message):
    TYPE: ClassVar[str] = "cancel-autoboot"


@dataclass(frozen=True)
class Rescan(Message):
    TYPE: ClassVar[str] = "rescan"


@dataclass(frozen=True)
class GetLog(Message):
    TYPE: ClassVar[str] = "get-log"


# --- the codec ---

# JSON names that differ from the field's: BootEntry's wire format is also `bootmenu scan --json`'s (BootEntry.to_json).
_JSON_NAMES: dict[type, dict[str, str]] = {BootEntry: {"initrds": "initrd"}}


@dataclass(frozen=True)
class _Field:
    name: str
    key: str
    type: Any
    required: bool


@functools.cache
def _fields(cls: type) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls)
    names = _JSON_NAMES.get(cls, {})
    return tuple(
        _Field(
            f.name,
            names.get(f.name, f.name),
            hints[f.name],
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    )


def to_json(value: Any) -> Any:
    """The JSON form of a protocol value: dataclasses as objects, tuples as lists, enums as their string."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.key: to_json(getattr(value, f.name)) for f in _fields(type(value))}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


_JSON_TYPE = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def _wrong(where: str, expected: str, value: object) -> ProtocolError:
    got = "null" if value is None else _JSON_TYPE.get(type(value), type(value).__name__)
    return ProtocolError(f"{where}: expected {expected}, got {got}")


def from_json(tp: Any, value: Any, where: str = "") -> Any:
    """`value` (parsed JSON) as type `tp`, or ProtocolError naming the field (`entries[0].entry.title`)."""
    if tp is Any:
        return value  # settings: any JSON value, shown as it is
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))  # the protocol only uses `X | None`
        if not isinstance(value, _python_types(inner)):
            raise _wrong(where, _expected(inner) + " or null", value)
        return from_json(inner, value, where)
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if not isinstance(value, list):
            raise _wrong(where, "a list", value)
        return tuple(from_json(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict):
        _, item = typing.get_args(tp)
        if not isinstance(value, dict):
            raise _wrong(where, "an object", value)
        return {k: from_json(item, v, f"{where}.{quote(k)}") for k, v in value.items()}
    if tp is bool or tp is str:
        if type(value) is not tp:
            raise _wrong(where, _expected(tp), value)
        return value
    if tp is int:
        if type(value) is not int:
            raise _wrong(where, "an integer", value)
        return value
    if tp is float:
        if type(value) not in (int, float):
            raise _wrong(where, "a number", value)
        number = float(value) if type(value) is float or abs(value) < 2**1023 else math.inf
        if not math.isfinite(number):
            raise ProtocolError(f"{where}: number out of range")
        return number
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if not isinstance(value, str):
            raise _wrong(where, "a string", value)
        try:
            return tp(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in tp)
            raise ProtocolError(f"{where}: {quote(value)} is not one of {choices}") from None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _wrong(where, "an object", value)
        kwargs = {}
        for f in _fields(tp):
            if f.key in value:
                kwargs[f.name] = from_json(f.type, value[f.key], f"{where}.{f.key}" if where else f.key)
            elif f.required:
                raise ProtocolError(f"{where + '.' if where else ''}{f.key}: missing")
        return tp(**kwargs)
    raise TypeError(f"no JSON decoding for {tp!r}")  # a protocol dataclass with a field type the codec lacks


def _expected(tp: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    if tp in names:
        return names[tp]
    if typing.get_origin(tp) is tuple:
        return "a list"
    return "an object" if dataclasses.is_dataclass(tp) else "a string"


def _python_types(tp: Any) -> tuple[type, ...]:
    """The JSON values that are the right kind for `tp` (whose inner errors are worth reporting as they are)."""
    if tp is float:
        return (int, float)
    if typing.get_origin(tp) is tuple:
        return (list,)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return (str,)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return (dict,)
    return (tp,) if isinstance(tp, type) else ()


def encode(message: Message) -> bytes:
    body = {"v": VERSION, "type": message.TYPE, **to_json(message)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def decode(line: bytes | str) -> Message | None:
    """The message on `line`; None for a well-formed message of a type this side does not know."""
    try:
        data = json.loads(line)
    except RecursionError:
        raise ProtocolError("not JSON: nested too deeply") from None
    except ValueError as exc:  # also UnicodeDecodeError, and integers over sys.get_int_max_str_digits() digits
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("a message must be a JSON object")
    if data.get("v") != VERSION:
        raise ProtocolError(f"protocol version {quote(data.get('v'))}, this side speaks {VERSION}")
    kind = data.get("type")
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return None
    try:
        message: Message = from_json(cls, data, "")
    except RecursionError:
        raise ProtocolError(f"bad {kind} message: nested too deeply") from None
    except ProtocolError as exc:
        raise ProtocolError(f"bad {kind} message: {exc}") from None
    return message
