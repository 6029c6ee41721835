"""Every protocol message survives encode -> decode unchanged, and bad lines are refused with a clear error."""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery import protocol
from discovery.entry import BootCount, BootEntry, Diagnostic, Severity, SourceFormat
from discovery.protocol import (
    Boot,
    CancelAutoboot,
    CheckPaths,
    Countdown,
    CountdownUpdate,
    DeviceInfo,
    DeviceRemoved,
    DeviceState,
    DeviceUpdated,
    EntryAdded,
    EntryInfo,
    EntryRemoved,
    GetLog,
    Hello,
    Level,
    LogLines,
    Message,
    PathsChecked,
    ProtocolError,
    Rescan,
    Status,
    StatusLine,
)
from tests.discovery.test_protocol_operator import OPERATOR_TYPES

text = st.text(max_size=30)
opt_text = st.none() | text
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)

diagnostics = st.builds(
    Diagnostic, file=text, line=st.integers(0, 10**6), message=text, severity=st.sampled_from(Severity)
)
entries = st.builds(
    BootEntry,
    title=text,
    kernel=text,
    initrds=st.tuples(text) | st.just(()),
    cmdline=text,
    devicetree=opt_text,
    default=st.booleans(),
    submenu=st.lists(text, max_size=3).map(tuple),
    id=opt_text,
    format=st.sampled_from(SourceFormat),
    config=text,
    line=st.integers(0, 10**6),
    device=text,
    config_device=text,
    unresolved=opt_text,
    version=opt_text,
    sort_key=opt_text,
    architecture=opt_text,
    boot_count=st.none() | st.builds(BootCount, left=st.integers(0, 9), done=st.none() | st.integers(0, 9)),
    warnings=st.lists(diagnostics, max_size=2).map(tuple),
)
devices = st.builds(
    DeviceInfo,
    name=text,
    node=text,
    kind=st.sampled_from(["disk", "usb", "cdrom", "nvme", "mmc", "directory"]),
    fstype=text,
    uuid=text,
    label=text,
    state=st.sampled_from(DeviceState),
    message=text,
    mountpoint=text,
)
entry_infos = st.builds(EntryInfo, id=text, entry=entries)
status_lines = st.builds(StatusLine, level=st.sampled_from(Level), message=text, time=finite)
countdowns = st.builds(Countdown, entry_id=opt_text, remaining=st.none() | finite)
json_values = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text | st.lists(text, max_size=3)
paths = text.map(lambda t: "/" + t.replace("\0", ""))
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(
        Hello,
        devices=st.lists(devices, max_size=3).map(tuple),
        entries=st.lists(entry_infos, max_size=3).map(tuple),
        status=st.lists(status_lines, max_size=3).map(tuple),
        countdown=countdowns,
        settings=st.dictionaries(text, json_values, max_size=4),
        dry_run=st.booleans(),
    ),
    st.builds(DeviceUpdated, device=devices),
    st.builds(DeviceRemoved, name=text),
    st.builds(EntryAdded, entry=entry_infos, after=opt_text),
    st.builds(EntryRemoved, id=text),
    st.builds(Status, status=status_lines),
    st.builds(CountdownUpdate, countdown=countdowns),
    st.builds(LogLines, lines=st.lists(text, max_size=5).map(tuple)),
    st.builds(Boot, id=text, cmdline=opt_text),
    # The whole-entry editor's boot, and its path check as the operator types.
    st.builds(
        Boot,
        id=text,
        cmdline=opt_text,
        kernel=st.none() | paths,
        initrds=st.none() | st.lists(paths, max_size=3).map(tuple),
        devicetree=st.none() | st.just("") | paths,
    ),
    st.builds(CheckPaths, id=text, paths=st.lists(paths, max_size=3).map(tuple)),
    st.builds(
        PathsChecked,
        id=text,
        paths=st.lists(paths, max_size=3).map(tuple),
        missing=st.lists(paths, max_size=3).map(tuple),
        device=text,
        remote=st.lists(paths, max_size=3).map(tuple),
    ),
    st.just(CancelAutoboot()),
    st.just(Rescan()),
    st.just(GetLog()),
)


@given(messages)
def test_every_message_round_trips(message: Message) -> None:
    line = protocol.encode(message)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1, "one message per line, even with newlines in titles"
    assert protocol.decode(line) == message


def test_every_registered_type_is_covered() -> None:
    covered = {
        Hello,
        DeviceUpdated,
        DeviceRemoved,
        EntryAdded,
        EntryRemoved,
        Status,
        CountdownUpdate,
        LogLines,
        Boot,
        CancelAutoboot,
        Rescan,
        GetLog,
        CheckPaths,
        PathsChecked,
    } | OPERATOR_TYPES
    assert set(protocol._REGISTRY.values()) == covered


def test_a_realistic_hello_round_trips() -> None:
    entry = BootEntry(
        title="Ubuntu",
        kernel="/boot/vmlinuz-6.8.0-31-generic",
        initrds=("/boot/initrd.img-6.8.0-31-generic",),
        cmdline="root=UUID=3f1c7a52 ro quiet splash",
        default=True,
        config="/boot/grub/grub.cfg",
        line=140,
        device="vda2",
        warnings=(Diagnostic("/boot/grub/grub.cfg", 12, "unknown command 'gfxmode'"),),
    )
    hello = Hello(
        devices=(DeviceInfo("vda2", "/dev/vda2", "disk", "ext4", "3f1c7a52", "root", DeviceState.MOUNTED),),
        entries=(
            EntryInfo("abc123", entry),
            EntryInfo("def456", entry, config_timeout=0.0, timeout_style="hidden"),
        ),
        status=(StatusLine(Level.INFO, "vda2: 1 boot entry", 1.7e9),),
        countdown=Countdown("abc123", 9.5),
        settings={"timeout": 10, "boot_order": ["type:usb"]},
    )
    assert protocol.decode(protocol.encode(hello)) == hello
    assert hello.devices[0].header() == '[Disk: vda2 ext4 "root"]'


def test_unknown_type_is_ignored_so_either_side_can_be_newer() -> None:
    assert protocol.decode(b'{"v": 1, "type": "shiny-new-thing", "x": 1}\n') is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json\n", "not JSON"),
        (b"[1, 2]\n", "JSON object"),
        (b'{"v": 2, "type": "rescan"}\n', "version 2"),
        (b'{"type": "rescan"}\n', "version None"),
        (b'{"v": 1, "type": "boot"}\n', "bad boot message"),
        (json.dumps({"v": 1, "type": "status", "status": {"level": "loud", "message": "x"}}).encode(), "bad status"),
    ],
)
def test_bad_lines_are_refused_with_a_reason(line: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        protocol.decode(line)


_ENTRY_HINTS = typing.get_type_hints(BootEntry)
every_field_entries = st.builds(
    BootEntry,
    **{f.name: st.from_type(_ENTRY_HINTS[f.name]) for f in dataclasses.fields(BootEntry) if f.compare},
)


@given(every_field_entries)
def test_an_entry_with_every_field_set_round_trips(entry: BootEntry) -> None:
    """BootEntry's wire form is its to_json (also `scan --json`'s); the typed decoder reads back every field of it,
    so a field added to both stays in step (or this fails naming it)."""
    message = EntryAdded(EntryInfo("e1", entry))
    assert json.loads(protocol.encode(message))["entry"]["entry"] == entry.to_json()
    assert protocol.decode(protocol.encode(message)) == message


def test_a_message_may_check_its_values_or_keep_a_codec_of_its_own() -> None:
    @dataclass(frozen=True)
    class Checked(Message):
        TYPE: ClassVar[str] = "test-checked"
        tty: str = ""

        def __post_init__(self) -> None:
            if not self.tty.startswith("tty"):
                raise ValueError(f"{self.tty[:20]!r} is not a tty name")

    @dataclass(frozen=True)
    class Own(Message):
        TYPE: ClassVar[str] = "test-own"
        n: int = 0

        def payload(self) -> dict[str, object]:
            return {"count": self.n}

        @classmethod
        def from_payload(cls, data: Mapping[str, object]) -> Own:
            count = data["count"]
            if not isinstance(count, int):
                raise TypeError("count must be an integer")
            return cls(count)

    try:
        assert protocol.decode(protocol.encode(Checked("ttyS0"))) == Checked("ttyS0")
        with pytest.raises(ProtocolError, match="bad test-checked message: 'x' is not a tty name"):
            protocol.decode(b'{"v": 1, "type": "test-checked", "tty": "x"}')
        assert protocol.encode(Own(3)) == b'{"v":1,"type":"test-own","count":3}\n'
        assert protocol.decode(protocol.encode(Own(3))) == Own(3)
        with pytest.raises(ProtocolError, match="bad test-own message: KeyError"):
            protocol.decode(b'{"v": 1, "type": "test-own"}')
        with pytest.raises(ProtocolError, match="count must be an integer"):
            protocol.decode(b'{"v": 1, "type": "test-own", "count": "3"}')
    finally:
        del protocol._REGISTRY["test-checked"], protocol._REGISTRY["test-own"]


def _boot(**fields: object) -> bytes:
    return json.dumps({"v": 1, "type": "boot", **fields}).encode()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (_boot(id="x", cmdline={"a": [1]}), "bad boot message: cmdline: expected a string or null, got an object"),
        (_boot(id=["x"]), "bad boot message: id: expected a string, got a list"),
        (_boot(id=7), "id: expected a string, got a number"),
        (_boot(id=None), "id: expected a string, got null"),
        (_boot(id=True), "id: expected a string, got a boolean"),
        (
            json.dumps({"v": 1, "type": "hello", "entries": [{"id": "a", "entry": {"title": "t", "kernel": 1}}]}),
            "bad hello message: entries[0].entry.kernel: expected a string, got a number",
        ),
        (
            json.dumps(
                {
                    "v": 1,
                    "type": "hello",
                    "entries": [{"id": "a", "entry": {"title": "t", "kernel": "k", "initrd": "x"}}],
                }
            ),
            "entries[0].entry.initrd: expected a list, got a string",
        ),
        (
            json.dumps(
                {"v": 1, "type": "entry", "entry": {"id": "a", "entry": {"title": "t", "kernel": "k", "line": True}}}
            ),
            "entry.entry.line: expected an integer, got a boolean",
        ),
        (
            json.dumps(
                {"v": 1, "type": "entry", "entry": {"id": "a", "entry": {"title": "t", "kernel": "k", "line": 1.5}}}
            ),
            "entry.entry.line: expected an integer, got a number",
        ),
        (
            json.dumps({"v": 1, "type": "countdown", "countdown": {"remaining": "9"}}),
            "countdown.remaining: expected a number or null",
        ),
        (
            b'{"v": 1, "type": "countdown", "countdown": {"remaining": 1e999}}',
            "countdown.remaining: number out of range",
        ),
        (json.dumps({"v": 1, "type": "hello", "settings": [1]}), "settings: expected an object, got a list"),
        (
            json.dumps({"v": 1, "type": "device", "device": {"name": "a", "state": "gone"}}),
            "'gone' is not one of probing",
        ),
        (json.dumps({"v": 1, "type": "device", "device": {}}), "device.name: missing"),
        (json.dumps({"v": 1, "type": "log", "lines": ["a", None]}), "lines[1]: expected a string, got null"),
    ],
)
def test_wrong_types_are_refused_naming_the_field_never_stringified(line: bytes | str, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.decode(line)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (
            b'{"v": 1, "type": "boot", "id": "x", "cmdline": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "nested too deeply",
        ),
        (b'{"v": 1, "type": "boot", "id": ' + b"9" * 5000 + b"}", "4300 digits"),
        (b'{"v": ' + b"1" * 4301 + b"}", "4300 digits"),
        (b'{"v": 1, "type": "boot", "id": "\xff"}', "not JSON"),
    ],
)
def test_parser_limits_are_a_protocol_error_not_a_crash(line: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        protocol.decode(line)


def test_client_text_in_errors_is_quoted_with_a_cap() -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.decode(json.dumps({"v": "x" * 1_000_000}))
    assert len(str(caught.value)) < 200
    assert "1000000 characters" in str(caught.value)
    with pytest.raises(ProtocolError) as caught:
        protocol.decode(json.dumps({"v": 1, "type": "device", "device": {"name": "a", "state": "s" * 10**6}}))
    assert len(str(caught.value)) < 300
    assert protocol.quote("abc") == "'abc'"
    assert protocol.quote("a" * 100, 5) == "'aaaaa'... (100 characters)"
    assert protocol.quote([1] * 100, 5) == "[1, 1... (300 characters)"
    assert protocol.clip("short", 10) == "short"


def test_numbers_widen_to_float_and_unknown_fields_are_ignored() -> None:
    line = b'{"v": 1, "type": "countdown", "countdown": {"entry_id": "a", "remaining": 10, "newer": [1]}, "x": {}}'
    assert protocol.decode(line) == CountdownUpdate(Countdown("a", 10.0))
    assert protocol.decode(b'{"v": 1, "type": "boot", "id": "a"}') == Boot("a")
    assert protocol.decode(b'{"v": 1, "type": 5}') is None, "a type that is not a string is an unknown type"


def _decodable(tp: object, seen: set[object]) -> list[str]:
    """Field types reachable from `tp` that protocol.from_json has no rule for."""
    import dataclasses
    import enum
    import types
    import typing
    from collections.abc import Mapping

    if tp in seen:
        return []
    seen.add(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in (str, int, float, bool, type(None), typing.Any):
        return []
    if origin is types.UnionType:
        return (
            [bad for a in args for bad in _decodable(a, seen)] if len(args) == 2 and type(None) in args else [str(tp)]
        )
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _decodable(args[0], seen)
    if origin in (Mapping, dict) and args[0] is str:
        return _decodable(args[1], seen)
    if isinstance(tp, type) and issubclass(tp, enum.StrEnum):
        return []
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return [bad for f in dataclasses.fields(tp) for bad in _decodable(hints[f.name], seen)]
    return [str(tp)]


def test_every_field_of_every_message_has_a_json_rule() -> None:
    """A field type the codec lacks (a Path, a set) would be a crash at decode time; this names it first."""
    seen: set[object] = set()
    generic = [c for c in protocol._REGISTRY.values() if c.from_payload.__func__ is Message.from_payload.__func__]  # type: ignore[attr-defined]
    assert [bad for cls in generic for bad in _decodable(cls, seen)] == []
