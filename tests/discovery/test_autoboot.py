"""The autoboot countdown over a fake clock: start on the first default, keep the start, cancel for good."""

from __future__ import annotations

from discovery.autoboot import Autoboot


def test_counts_from_the_first_default_entry() -> None:
    a = Autoboot().offer(None, 10, now=100)
    assert a.remaining(100) is None, "no default entry yet: nothing to count"
    a = a.offer("ubuntu", 10, now=105)
    assert a.remaining(105) == 10
    assert a.remaining(112) == 3
    assert a.due(114.9) is None
    assert a.due(115) == "ubuntu"


def test_a_better_default_later_keeps_the_start_time() -> None:
    a = Autoboot().offer("usb-entry", 10, now=0).offer("disk-entry", 10, now=4)
    assert a.entry_id == "disk-entry"
    assert a.remaining(4) == 6


def test_cancel_is_final() -> None:
    a = Autoboot().offer("x", 10, now=0).cancel()
    assert a.remaining(1) is None
    assert a.offer("y", 10, now=2).due(100) is None


def test_zero_boots_at_once_and_none_never() -> None:
    assert Autoboot().offer("x", 0, now=7).due(7) == "x"
    assert Autoboot().offer("x", None, now=7).due(10**9) is None


def test_fires_once() -> None:
    a = Autoboot().offer("x", 1, now=0)
    assert a.due(2) == "x"
    assert a.fire().due(3) is None


def test_a_config_appearing_during_the_countdown_neither_restarts_nor_cuts_it() -> None:
    a = Autoboot().offer("disk", 10, now=0)
    # A stick with a hidden-menu GRUB (timeout=0) comes first in the boot order: it becomes the default, the
    # countdown keeps its start and its length.
    a = a.offer("usb", 0, now=4)
    assert a.entry_id == "usb"
    assert a.remaining(4) == 6
    assert a.due(9.9) is None
    assert a.due(10) == "usb"
    # Nor does a longer one stretch it.
    assert Autoboot().offer("disk", 5, now=0).offer("usb", 60, now=1).due(5) == "usb"


def test_the_default_going_and_coming_back_keeps_the_clock() -> None:
    a = Autoboot().offer("disk", 10, now=0).offer(None, 10, now=3)
    assert a.remaining(3) is None, "no default: nothing to boot"
    assert a.offer("disk", 10, now=7).remaining(7) == 3
