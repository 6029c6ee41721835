"""discovery.timeline: stamps only with `bootmenu.timeline`, parsed back from an interleaved log, in order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery import timeline
from discovery.timeline import EVENTS, Stamp


@pytest.fixture
def guest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Fake /proc/cmdline, /proc/uptime and /dev/kmsg (a plain file) for stamp()."""
    monkeypatch.setattr(timeline, "CMDLINE", tmp_path / "cmdline")
    monkeypatch.setattr(timeline, "UPTIME", tmp_path / "uptime")
    monkeypatch.setattr(timeline, "KMSG", tmp_path / "kmsg")
    monkeypatch.setattr(timeline, "_stamped", set())
    (tmp_path / "uptime").write_text("3.25 1.00\n")
    timeline.enabled.cache_clear()
    yield tmp_path
    timeline.enabled.cache_clear()


def test_no_parameter_writes_nothing(guest: Path) -> None:
    (guest / "cmdline").write_text("console=ttyS0 quiet\n")
    timeline.stamp("daemon-started")
    assert not (guest / "kmsg").exists()


def test_parameter_off_writes_nothing(guest: Path) -> None:
    (guest / "cmdline").write_text("bootmenu.timeline bootmenu.timeline=no\n")
    timeline.stamp("daemon-started")
    assert not (guest / "kmsg").exists()


def test_stamp_once_per_event(guest: Path) -> None:
    (guest / "cmdline").write_text("quiet bootmenu.timeline\n")
    timeline.stamp("first-device-probed", "vda1")
    timeline.stamp("first-device-probed", "vdb1")
    assert (guest / "kmsg").read_text() == "bootmenu-timeline: first-device-probed 3.25 vda1\n"


def test_after_first_call(guest: Path) -> None:
    (guest / "cmdline").write_text("bootmenu.timeline=1")

    class Loop:
        calls = 0

        def draw_screen(self) -> None:
            self.calls += 1

    loop = Loop()
    timeline.after_first_call(loop, "draw_screen", "first-frame")
    loop.draw_screen()
    loop.draw_screen()
    assert loop.calls == 2
    assert (guest / "kmsg").read_text() == "bootmenu-timeline: first-frame 3.25\n"


def test_missing_kmsg_is_not_an_error(guest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (guest / "cmdline").write_text("bootmenu.timeline")
    monkeypatch.setattr(timeline, "KMSG", guest / "no" / "kmsg")
    timeline.stamp("init")  # diagnostics never raise


INTERLEAVED = (
    "[    1.20] bootmenu-timeline: init 1.20\r\n"
    "[    1.30] bootmenu-timeline: udev-ready 1.30 mdev\r\n"
    "[    2.00] virtio_blk virtio2: [vda] 40960 512-byte logical blocks\r\n"
    "[    2.50] bootmenu-timeline: modules-loaded 2.50 31 modules\r\n"
    "[    4.00] bootmenu-timeline: daemon-started 4.00\r\n"
    "[    4.60] bootmenu-timeline: first-frame 4.60\r\n"
    "[    4.50] bootmenu-timeline: first-device-probed 4.50 vda1\r\n"
    "[    4.90] bootmenu-timeline: menu-ready 4.90\r\n"
    "[    5.10] bootmenu-timeline: all-entries 5.10 3 entries\r\n"
    "[    9.00] bootmenu-timeline: first-frame 9.00\r\n"  # a restarted menu: the first one counts
)


def test_parse_and_order() -> None:
    stamps = timeline.parse(INTERLEAVED)
    assert [s.event for s in stamps] == [*EVENTS[:4], "first-frame", "first-device-probed", "menu-ready", "all-entries"]
    assert stamps[2] == Stamp("modules-loaded", 2.5, "31 modules")
    assert timeline.out_of_order(stamps) == []


def test_out_of_order_names_the_problem() -> None:
    stamps = [Stamp("init", 2.0), Stamp("udev-ready", 1.0)]
    problems = timeline.out_of_order(stamps)
    assert "modules-loaded: missing" in problems
    assert "udev-ready at 1.00 s is before init" in problems


def test_table_has_deltas() -> None:
    text = timeline.table(timeline.parse(INTERLEAVED))
    lines = text.splitlines()
    assert lines[1].split()[:3] == ["kernel", "start", "0.00s"]
    modules = next(line for line in lines if line.startswith("modules-loaded"))
    assert modules.split()[1:4] == ["2.50s", "+1.20s", "31"]
    # by time: the first device was probed before the first frame
    last = ["first-device-probed", "first-frame", "menu-ready", "all-entries"]
    assert [line.split()[0] for line in lines[-4:]] == last
