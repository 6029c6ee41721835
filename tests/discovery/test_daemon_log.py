"""The daemon log: one kernel-log record per message with its syslog priority, and a bounded ring for get-log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from discovery import log as daemon_log
from discovery.log import KmsgHandler, RingHandler


def test_kmsg_records_carry_the_priority(tmp_path: Path) -> None:
    kmsg = tmp_path / "kmsg"  # /dev/kmsg takes one record per write(); a file shows what was written
    kmsg.touch()
    handler = KmsgHandler(kmsg)
    logger = logging.getLogger("test.kmsg")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("vda2: /boot/grub/grub.cfg:3: unknown command")
        logger.error("cannot boot Fedora")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert (
        kmsg.read_text() == "<4>bootmenu: vda2: /boot/grub/grub.cfg:3: unknown command<3>bootmenu: cannot boot Fedora"
    )


def test_ring_keeps_the_last_lines() -> None:
    ring = RingHandler(size=3)
    logger = logging.getLogger("test.ring")
    logger.addHandler(ring)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        for n in range(5):
            logger.info("line %d", n)
    finally:
        logger.removeHandler(ring)
    lines = ring.lines()
    assert len(lines) == 3
    assert [line.rsplit(" ", 1)[-1] for line in lines] == ["2", "3", "4"]


def test_ring_is_bounded_in_bytes_and_cuts_long_lines() -> None:
    ring = RingHandler(size=1000, max_bytes=10_000, line_chars=500)
    ring.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("test.ring.bytes")
    logger.addHandler(ring)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        for n in range(100):
            logger.info("line %d %s", n, "z" * 1_000_000)
        logger.info("last")
    finally:
        logger.removeHandler(ring)
    lines = ring.lines()
    assert sum(len(line.encode()) for line in lines) <= 10_000
    assert lines[-1] == "last"
    assert lines[-2].startswith("line 99 zzz")
    assert lines[-2].endswith("... (1000008 characters)")
    assert all(len(line) <= 540 for line in lines)


def test_the_log_file_rotates_instead_of_filling_tmpfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_log, "FILE_BYTES", 10_000)
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        daemon_log.setup(file=tmp_path / "daemon.log", kmsg=False, debug=False)
        for n in range(1000):
            logging.getLogger("test.file").info("record %d %s", n, "w" * 100)
    finally:
        for handler in root.handlers[len(before) :]:
            handler.close()
        root.handlers[:] = before
        root.setLevel(level)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["daemon.log", "daemon.log.1"]
    assert all((tmp_path / name).stat().st_size <= 10_000 for name in files)
    assert "record 999 " in (tmp_path / "daemon.log").read_text()
