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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from discovery.entry import BootEntry
from discovery.settings import TTY_RE
from discovery.sysinfo import SystemInfo

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
    """A boot entry with the daemon's id for it (what a client sends back in `boot`), and what its config asked of
    the menu (`config_timeout` seconds, `timeout_style` such as hidden): shown in its details, never obeyed unless
    the settings say `timeout = "config"` (the firmware owns autoboot)."""

    id: str
    entry: BootEntry
    config_timeout: float | None = None
    timeout_style: str | None = None
    # The daemon's remark on the entry, shown beside its title (e.g. "did not come up last time").
    note: str = ""


@dataclass(frozen=True)
class StatusLine:
    level: Level
    message: str
    time: float = 0.0  # seconds since the epoch


@dataclass(frozen=True)
class Countdown:
    """Autoboot state: `remaining` seconds until `entry_id` boots; None when cancelled, off or done. `reason` says
    why autoboot is held or falls back (the previous boot did not come up), for every UI to show."""

    entry_id: str | None = None
    remaining: float | None = None
    reason: str = ""


# --- messages ---

_REGISTRY: dict[str, type[Message]] = {}


class Message:
    """Base of every message; subclasses are frozen dataclasses with a `TYPE`, registered by defining them.

    `payload` and `from_payload` are the generic codec's; a message may override them (then its `from_payload`
    raises KeyError, TypeError or ValueError for a bad message). A check on values belongs in `__post_init__`
    (raising ValueError): the decoder reports it with the field's path.
    """

    TYPE: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.TYPE:
            _REGISTRY[cls.TYPE] = cls

    def payload(self) -> dict[str, Any]:
        cls: type = type(self)
        return {key: getattr(self, name) for name, key in _fields(cls)}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Message:
        message: Message = from_json(cls, data)
        return message


_M = TypeVar("_M", bound=type[Message])


def _register(cls: _M) -> _M:
    """A no-op kept for messages written when registration was explicit (Message.__init_subclass__ does it now)."""
    return cls


class _Empty(Message):
    """Base of messages without fields (the generic codec needs nothing from it; kept for older definitions)."""


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
    """Client -> server: boot entry `id`; the editor's changes, each replacing the entry's own when given: `cmdline`,
    `kernel`, `initrds` (the whole list, in order) and `devicetree` ("" for none), all paths on the entry's device.
    `console` is the `console=` value of the menu's terminal (`ttyS0,115200n8`, `tty0`), for the hand-off."""

    TYPE: ClassVar[str] = "boot"
    id: str
    cmdline: str | None = None
    console: str | None = None
    kernel: str | None = None
    initrds: tuple[str, ...] | None = None
    devicetree: str | None = None

    def __post_init__(self) -> None:
        if self.console is not None and not TTY_RE.match(self.console):
            raise ValueError("console must be a tty name such as ttyS0,115200n8")
        if self.kernel is not None and not is_path(self.kernel):
            raise ValueError("kernel must be an absolute path on the entry's device or a URL")
        if self.initrds is not None:
            if len(self.initrds) > MAX_INITRDS:
                raise ValueError(f"at most {MAX_INITRDS} initrds")
            if not all(is_path(i) for i in self.initrds):
                raise ValueError("each initrd must be an absolute path on the entry's device or a URL")
        if self.devicetree and not is_path(self.devicetree):
            raise ValueError("devicetree must be an absolute path on the entry's device or a URL, or empty for none")

    def edited(self) -> bool:
        """Whether this boots something other than the entry as found (the password gates that)."""
        return any(v is not None for v in (self.cmdline, self.kernel, self.initrds, self.devicetree))


@dataclass(frozen=True)
class CheckPaths(Message):
    """Client -> server: which of `paths` are missing on entry `id`'s device (the editor asks as the operator types;
    answered with `paths-checked` to that client only). Looking is not booting: no password is needed."""

    TYPE: ClassVar[str] = "check-paths"
    id: str
    paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.paths) > MAX_INITRDS + 2 or any(len(path) > MAX_PATH_CHARS for path in self.paths):
            raise ValueError(f"at most {MAX_INITRDS + 2} paths of at most {MAX_PATH_CHARS} characters")


@dataclass(frozen=True)
class PathsChecked(Message):
    """Server -> client: of the `paths` asked about, those not a file on `device` (empty when the entry is gone), and
    those that are URLs (a network entry's), which only the boot's fetch can check."""

    TYPE: ClassVar[str] = "paths-checked"
    id: str
    paths: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    device: str = ""
    remote: tuple[str, ...] = ()


# An edited boot's bounds: a kexec takes a handful of initrds; a path is a path, not a file's contents.
MAX_INITRDS = 64
MAX_PATH_CHARS = 4096


# The URL schemes a network entry's files may have: those discovery.network can fetch (no TLS in the payload).
URL_SCHEMES = ("http://", "tftp://")


def is_path(path: str) -> bool:
    """An absolute path on the entry's device, or a URL (a network entry's files are fetched when it boots)."""
    return (path.startswith("/") or path.startswith(URL_SCHEMES)) and len(path) <= MAX_PATH_CHARS and "\0" not in path


@dataclass(frozen=True)
class CancelAutoboot(_Empty):
    TYPE: ClassVar[str] = "cancel-autoboot"


@dataclass(frozen=True)
class Rescan(_Empty):
    TYPE: ClassVar[str] = "rescan"


@dataclass(frozen=True)
class GetLog(_Empty):
    TYPE: ClassVar[str] = "get-log"


@dataclass(frozen=True)
class Power(Message):
    """Client -> server: reboot or power off the machine (`action` is kexec_core.power.PowerAction's value)."""

    TYPE: ClassVar[str] = "power"
    action: str


@dataclass(frozen=True)
class GetSysinfo(_Empty):
    """Client -> server: ask for the system information screen's facts (answered with `sysinfo`)."""

    TYPE: ClassVar[str] = "get-sysinfo"


@dataclass(frozen=True)
class Sysinfo(Message):
    """Server -> client: machine, firmware, CPUs, memory, kernel, disks (with what was found), network, watchdogs."""

    TYPE: ClassVar[str] = "sysinfo"
    info: SystemInfo = field(default_factory=SystemInfo)


# The longest password a client may send (discovery.password.MAX_PASSWORD bytes is the daemon's own limit).
MAX_PASSWORD_CHARS = 1024


@dataclass(frozen=True, repr=False)
class Authenticate(Message):
    """Client -> server: the menu password typed on `console`, to allow `action` (boot, edit, shell, power).

    A right answer allows this connection's gated requests for a while (AuthResult.seconds); a wrong one is answered
    after a delay. The password is never part of a log line (repr) or an error message.
    """

    TYPE: ClassVar[str] = "authenticate"
    password: str
    action: str = ""
    console: str = ""

    def __post_init__(self) -> None:
        if len(self.password) > MAX_PASSWORD_CHARS:
            raise ValueError(f"password longer than {MAX_PASSWORD_CHARS} characters")
        if len(self.action) > QUOTE_LIMIT or len(self.console) > QUOTE_LIMIT:
            raise ValueError(f"action and console are at most {QUOTE_LIMIT} characters")

    def __repr__(self) -> str:
        return f"Authenticate(action={self.action!r}, console={self.console!r})"


@dataclass(frozen=True)
class AuthResult(Message):
    """Server -> client: the answer to `authenticate`; `seconds` is how long the connection stays allowed."""

    TYPE: ClassVar[str] = "auth-result"
    ok: bool
    action: str = ""
    message: str = ""
    seconds: float = 0.0


# --- the codec ---
#
# Encoding: json.dumps does tuples, StrEnums and numbers itself; `_default` turns each dataclass into an object.
# Decoding: one decoder per type, built once from the dataclass field annotations. A wrong value raises `_Bad`,
# which each enclosing list and object extends with its index or key, so the path (`entries[3].entry.kernel`) is
# only put together for a message that is refused.

# JSON names that differ from the field's: BootEntry's wire format is also `bootmenu scan --json`'s (BootEntry.to_json).
_JSON_NAMES: dict[type, dict[str, str]] = {BootEntry: {"initrds": "initrd"}}

_Decoder = Callable[[Any], Any]


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, str], ...]:
    """(field name, JSON key) of a dataclass."""
    names = _JSON_NAMES.get(cls, {})
    return tuple((f.name, names.get(f.name, f.name)) for f in dataclasses.fields(cls))


def _default(value: Any) -> Any:
    if isinstance(value, Message):
        return value.payload()
    to_json = getattr(value, "to_json", None)
    if to_json is not None and dataclasses.is_dataclass(value):
        return to_json()  # BootEntry: its own JSON (also `scan --json`'s), which leaves out daemon-side fields
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {key: getattr(value, name) for name, key in _fields(type(value))}
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not part of the protocol")


def to_json(value: Any) -> Any:
    """The JSON form of a protocol value (what `encode` writes for it), as Python objects."""
    return json.loads(json.dumps(value, default=_default))


class _Bad(Exception):
    def __init__(self, reason: str, *path: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = list(path)  # innermost first

    def where(self) -> str:
        out = ""
        for part in reversed(self.path):
            out += part if part.startswith("[") or not out else "." + part
        return out


_KIND = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def _wrong(expected: str, value: object) -> _Bad:
    got = "null" if value is None else _KIND.get(type(value), type(value).__name__)
    return _Bad(f"expected {expected}, got {got}")


def _expected(tp: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    if tp in names:
        return str(names[tp])
    if typing.get_origin(tp) is tuple:
        return "a list"
    return "an object" if dataclasses.is_dataclass(tp) else "a string"


def _kinds(tp: Any) -> tuple[type, ...]:
    """The JSON value types of the right kind for `tp` (a value of another kind is refused as `X or null`)."""
    if tp is float:
        return (int, float)
    if typing.get_origin(tp) is tuple:
        return (list,)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return (str,)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return (dict,)
    return (tp,) if isinstance(tp, type) else ()


def _exact(tp: type, expected: str) -> _Decoder:
    def decode(value: Any) -> Any:
        if type(value) is not tp:  # `is`, not isinstance: true is not a number, 1 is not a boolean
            raise _wrong(expected, value)
        return value

    return decode


def _number(value: Any) -> float:
    if type(value) is float:
        number = value
    elif type(value) is int:
        number = float(value) if abs(value) < 2**1023 else math.inf
    else:
        raise _wrong("a number", value)
    if not math.isfinite(number):
        raise _Bad("number out of range")
    return number


def _identity(value: Any) -> Any:
    return value  # settings: any JSON value, shown as it is


@functools.cache
def _decoder(tp: Any) -> _Decoder:
    if tp is Any:
        return _identity
    if tp in (str, bool, int):
        return _exact(tp, _expected(tp))
    if tp is float:
        return _number
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        (inner,) = (a for a in typing.get_args(tp) if a is not type(None))  # the protocol only uses `X | None`
        decode_inner, kinds, expected = _decoder(inner), _kinds(inner), _expected(inner) + " or null"

        def optional(value: Any) -> Any:
            if value is None:
                return None
            if not isinstance(value, kinds):
                raise _wrong(expected, value)
            return decode_inner(value)

        return optional
    if origin is tuple:
        decode_item = _decoder(typing.get_args(tp)[0])

        def sequence(value: Any) -> tuple[Any, ...]:
            if type(value) is not list:
                raise _wrong("a list", value)
            out = []
            for i, item in enumerate(value):
                try:
                    out.append(decode_item(item))
                except _Bad as bad:
                    bad.path.append(f"[{i}]")
                    raise
            return tuple(out)

        return sequence
    if origin in (Mapping, dict):
        decode_value = _decoder(typing.get_args(tp)[1])

        def mapping(value: Any) -> dict[str, Any]:
            if type(value) is not dict:
                raise _wrong("an object", value)
            out = {}
            for key, item in value.items():
                try:
                    out[key] = decode_value(item)
                except _Bad as bad:
                    bad.path.append(quote(key))
                    raise
            return out

        return mapping
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        members = {str(m.value): m for m in tp}
        choices = ", ".join(members)

        def member(value: Any) -> enum.Enum:
            if type(value) is not str:
                raise _wrong("a string", value)
            if value not in members:
                raise _Bad(f"{quote(value)} is not one of {choices}")
            return members[value]

        return member
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _object_decoder(tp)
    raise TypeError(f"no JSON decoding for {tp!r}")  # a protocol dataclass with a field type the codec lacks


def _object_decoder(cls: type) -> _Decoder:
    hints = typing.get_type_hints(cls)
    names = dict(_fields(cls))
    fields = [
        (
            f.name,
            names[f.name],
            _decoder(hints[f.name]),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    ]

    def decode(value: Any) -> Any:
        if type(value) is not dict:
            raise _wrong("an object", value)
        kwargs = {}
        for name, key, decode_field, required in fields:
            if key in value:
                try:
                    kwargs[name] = decode_field(value[key])
                except _Bad as bad:
                    bad.path.append(key)
                    raise
            elif required:
                raise _Bad("missing", key)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:  # a check in __post_init__
            raise _Bad(clip(str(exc), 200)) from None

    return decode


def from_json(tp: Any, value: Any) -> Any:
    """`value` (parsed JSON) as type `tp`, or ProtocolError naming the field (`entries[0].entry.title: ...`)."""
    try:
        return _decoder(tp)(value)
    except _Bad as bad:
        where = bad.where()
        raise ProtocolError(f"{where}: {bad.reason}" if where else bad.reason) from None


def encode(message: Message) -> bytes:
    body = {"v": VERSION, "type": message.TYPE, **message.payload()}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=_default).encode() + b"\n"


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
        return cls.from_payload(data)
    except ProtocolError as exc:
        raise ProtocolError(f"bad {kind} message: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:  # a hand-written from_payload
        raise ProtocolError(f"bad {kind} message: {clip(repr(exc), 200)}") from None
