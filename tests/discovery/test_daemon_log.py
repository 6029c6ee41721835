"""The daemon log: one kernel-log record per message with its syslog priority, and a bounded ring for get-log."""

from __future__ import annotations

import logging
from pathlib import Path

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
