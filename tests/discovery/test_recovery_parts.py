"""Evidence lines, debug boot words, watchdog sysfs reading and the attempt record stores (issue 11 sections 2-4)."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest

from discovery import attempts, debugboot, watchdog
from discovery.attempts import Attempt, EfiStore, FileStore, StateSpec
from discovery.evidence import Evidence, Kmsg
from tests.discovery.fake_sysfs import FakeSysfs

# --- evidence ---


def evidence(cmdline: str = "root=/dev/vda2 ro") -> Evidence:
    return Evidence(
        entry_id="abc123",
        title="Fedora > Linux 6.11",
        device="vda2 (/dev/vda2)",
        kernel="vda2:/vmlinuz",
        initrds=("vda2:/initrd.img",),
        cmdline=cmdline,
        method="kexec_file_load",
        quiesce=("0000:00:02.0",),
        watchdog="arming /dev/watchdog0 (i6300ESB timer) with 30 s next",
    )


def test_evidence_one_record_per_fact_with_priority(tmp_path: Path) -> None:
    kmsg_file = tmp_path / "kmsg"
    kmsg_file.write_bytes(b"")
    with Kmsg(kmsg_file) as kmsg:
        evidence().write(kmsg)
    raw = kmsg_file.read_bytes().decode()
    records = raw.split("<5>bootmenu: ")[1:]
    assert [r.split(" ")[1] for r in records] == [
        "entry",
        "device",
        "kernel",
        "initrds",
        "cmdline",
        "load",
        "quiesced",
        "watchdog",
    ]
    assert "jump: cmdline root=/dev/vda2 ro" in raw
    assert "jump: quiesced 0000:00:02.0" in raw


def test_kexec_load_evidence_names_every_segment() -> None:
    from dataclasses import replace

    segments = ("entry 0x82017000 (trampoline)", "kernel: 0x80000000-0x8200ffff (33619968 bytes) from vda2:/Image")
    with Kmsg(None) as kmsg:
        replace(evidence(), method="kexec_load", segments=segments).write(kmsg)
    assert "jump: load method kexec_load" in kmsg.written
    assert [line for line in kmsg.written if line.startswith(("jump: entry 0x", "jump: kernel: "))] == [
        f"jump: {s}" for s in segments
    ]


def test_a_long_command_line_is_split_into_records(tmp_path: Path) -> None:
    with Kmsg(None) as kmsg:
        evidence("x" * 2000).write(kmsg)
    cmd = [line for line in kmsg.written if line.startswith("jump: cmdline") or set(line) == {"x"}]
    assert len(cmd) == 3
    assert all(len(line) <= 900 for line in kmsg.written)


def test_an_unwritable_kernel_log_never_stops_the_boot(tmp_path: Path) -> None:
    with Kmsg(tmp_path / "missing" / "kmsg") as kmsg:
        evidence().write(kmsg)
    assert len(kmsg.written) == 8


# --- debug boot ---


def test_debug_words_for_the_legacy_uart_console(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    tty = fake.root / "class" / "tty" / "ttyS0"
    tty.mkdir(parents=True)
    (tty / "io_type").write_text("0\n")
    (tty / "port").write_text("0x3F8\n")
    words = debugboot.debug_words("ttyS0", cmdline="console=ttyS0,115200n8 quiet", sysfs=fake.root, machine="x86_64")
    assert words == ("ignore_loglevel", "earlycon=uart8250,io,0x3f8,115200n8", "panic=30")
    assert debugboot.debug_words("ttyS0", initcall=True, sysfs=fake.root, machine="x86_64")[-1] == "initcall_debug"


def test_debug_words_for_other_consoles(tmp_path: Path) -> None:
    assert debugboot.early_console_words("tty1", cmdline="", sysfs=tmp_path, machine="x86_64") == ("earlyprintk=vga",)
    assert debugboot.early_console_words("tty1", cmdline="", sysfs=tmp_path, machine="aarch64") == ()
    assert debugboot.early_console_words("ttyAMA0", cmdline="", sysfs=tmp_path, machine="aarch64") == ("earlycon",)
    # No sysfs description of the UART: x86's earlyprintk knows ttyS0 and ttyS1 by name.
    assert debugboot.early_console_words("ttyS1", cmdline="console=ttyS1,9600", sysfs=tmp_path, machine="x86_64") == (
        "earlyprintk=serial,ttyS1,9600",
    )


def test_with_debug_replaces_quiet_and_panic() -> None:
    words = ("ignore_loglevel", "earlycon", "panic=30")
    out = debugboot.with_debug("root=/dev/vda2 quiet panic=-1 splash", words)
    assert out == "root=/dev/vda2 splash ignore_loglevel earlycon panic=30"
    assert debugboot.with_debug(out, words) == out  # twice is once


# --- watchdog ---


def test_watchdog_reset_cause_from_sysfs(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    assert watchdog.last_reset(fake.root) is None
    fake.watchdog("watchdog1", "iTCO_wdt", 0)
    fake.watchdog("watchdog0", "i6300ESB timer", watchdog.WDIOF_CARDRESET)
    found = watchdog.watchdogs(fake.root)
    assert [w.name for w in found] == ["watchdog0", "watchdog1"]
    reset = watchdog.last_reset(fake.root)
    assert reset is not None
    assert reset.name == "watchdog0"
    assert reset.label() == "/dev/watchdog0 (i6300ESB timer)"


def test_arming_without_a_device_or_on_a_non_watchdog_is_an_oserror(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path / "sys")
    with pytest.raises(OSError, match="no watchdog device"):
        watchdog.arm(30, sysfs=fake.root, dev=tmp_path)
    fake.watchdog("watchdog0", "fake", 0)
    (tmp_path / "watchdog0").write_bytes(b"")
    with pytest.raises(OSError, match="WDIOC_SETTIMEOUT") as err:
        watchdog.arm(30, sysfs=fake.root, dev=tmp_path)
    assert err.value.errno == errno.ENOTTY
    assert "WDIOC_SETTIMEOUT" in str(err.value)
    # The failed arm closed with the magic character (the device would have stopped).
    assert (tmp_path / "watchdog0").read_bytes() == b"V"


# --- attempt record ---


def attempt() -> Attempt:
    return Attempt("abc123", "E2E hang", "vda", 1700000000.0, ("old1",))


def test_record_round_trip_and_bad_records() -> None:
    assert Attempt.from_bytes(attempt().to_bytes(), "x") == attempt()
    for bad in (b"", b"[]", b'{"title": "x"}', b"\xff", b"{" * 5000):
        with pytest.raises(attempts.RecordError, match="x: "):
            Attempt.from_bytes(bad, "x")


def test_file_store(tmp_path: Path) -> None:
    store = FileStore(tmp_path, remount=False)
    assert store.read() is None
    store.write(attempt())
    assert store.read() == attempt()
    assert not list(tmp_path.glob("*.new"))


def test_efi_store_writes_attributes_then_data(tmp_path: Path) -> None:
    store = EfiStore(tmp_path)
    assert store.read() is None
    store.write(attempt())
    raw = (tmp_path / attempts.EFI_VARIABLE).read_bytes()
    assert struct.unpack("<I", raw[:4])[0] == 0x7
    assert store.read() == attempt()
    store.write(Attempt("def456", "Other", "vdb", 1.0))  # rewriting an existing variable
    again = store.read()
    assert again is not None
    assert again.entry_id == "def456"


def test_state_spec() -> None:
    spec = StateSpec.parse("LABEL=BMSTATE")
    assert spec is not None
    assert spec.matches(label="BMSTATE", uuid="")
    assert not spec.matches(label="other", uuid="")
    uuid = StateSpec.parse("UUID=ABCD-1234")
    assert uuid is not None
    assert uuid.matches(label="", uuid="abcd-1234")
    assert StateSpec.parse("BMSTATE") is None
    assert StateSpec.parse("PARTLABEL=x") is None


def test_fallback_is_the_next_entry_never_a_failed_one() -> None:
    order = ["a", "b", "c", "d"]
    assert attempts.fallback(order, ["b"], "b") == "c"
    assert attempts.fallback(order, ["c", "d"], "d") == "a"  # wraps round
    assert attempts.fallback(order, ["a", "b", "c", "d"], "d") is None
    assert attempts.fallback(order, ["x"], "x") == "a"  # the failed entry is gone: the first one
    assert attempts.fallback([], ["a"], "a") is None


def test_evidence_is_not_written_twice_by_the_daemons_kernel_log_handler(tmp_path: Path) -> None:
    import logging

    from discovery.log import KmsgHandler

    kmsg_file = tmp_path / "kmsg"
    kmsg_file.write_bytes(b"")
    handler_file = tmp_path / "handler-kmsg"
    handler_file.write_bytes(b"")
    handler = KmsgHandler(handler_file)
    logger = logging.getLogger("discovery.evidence")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with Kmsg(kmsg_file) as kmsg:
            kmsg.note("jump: entry 'x'")
        with Kmsg(tmp_path / "none" / "kmsg") as broken:
            broken.note("jump: entry 'y'")  # not in the kernel log by Kmsg: the handler writes it
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert "<5>bootmenu: jump: entry 'x'" in kmsg_file.read_text()
    by_handler = handler_file.read_text()
    assert "entry 'x'" not in by_handler
    assert "<6>bootmenu: jump: entry 'y'" in by_handler
