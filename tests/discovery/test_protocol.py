"""Every protocol message survives encode -> decode unchanged, and bad lines are refused with a clear error."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery import protocol
from discovery.entry import BootCount, BootEntry, Diagnostic, Severity, SourceFormat
from discovery.protocol import (
    Boot,
    CancelAutoboot,
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
    ProtocolError,
    Rescan,
    Status,
    StatusLine,
)

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
    }
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
