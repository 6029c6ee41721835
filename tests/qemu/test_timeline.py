"""Issue 15's boot timeline in the real payload: with `bootmenu.timeline`, every start-up event is stamped in the
kernel log, once the menu lists every entry of the two test disks, and in the order the boot makes them happen.

Only the presence and order of the stamps are asserted, never their durations (`make bench` prints those).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from discovery.timeline import EVENTS, out_of_order
from tests.qemu.qemu_console import SerialVm
from tests.qemu.timeline_shell import read_in_shell

pytestmark = pytest.mark.qemu

TITLES = ("E2E GRUB default", "E2E BLS Linux")


def test_timeline_has_every_event_in_order(boot: Callable[..., SerialVm]) -> None:
    vm = boot("bootmenu.timeout=off bootmenu.timeline")
    for title in TITLES:
        vm.wait_screen(title, timeout=180)
    vm.settle()
    vm.send("x")  # the rescue shell, from which the kernel log is read
    vm.settle(2.0)
    stamps, out = read_in_shell(vm)
    found = [s.event for s in stamps]
    assert set(found) == set(EVENTS), f"timeline events {found}; shell output:\n{out}"
    assert out_of_order(stamps) == [], out
    by_event = {s.event: s for s in stamps}
    assert by_event["modules-loaded"].detail.endswith(" modules")
    assert int(by_event["modules-loaded"].detail.split()[0]) > 0
    # Both disks' entries (at least the two titles waited for) were in the daemon when it stamped all-entries.
    assert int(by_event["all-entries"].detail.split()[0]) >= len(TITLES)
