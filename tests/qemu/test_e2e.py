"""End-to-end: the payload on the Debian kernel in QEMU (TCG), driven through the serial console (issue 6).

Each test boots its own VM with two disks (GRUB with a submenu on ext4, BLS on a vfat ESP). Booting an entry really
kexecs the Debian kernel with an initrd whose /init prints the command line it got and powers off, so the tests check
what the second kernel actually received. The durations are printed (run with -s to see them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pexpect
import pytest

from initramfs.guests import SECOND_STAGE_MARKER
from tests.qemu.e2e_support import E2eDisks
from tests.qemu.qemu_console import SerialVm, read_second_stage_cmdline

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(420)]

Boot = Callable[..., SerialVm]
# TCG on two shared cores: the kernel, Python start-up and the first scan take a while.
MENU_TIMEOUT = 180.0
NO_AUTOBOOT = "bootmenu.timeout=off"


def wait_menu(vm: SerialVm, *titles: str) -> float:
    """Waits until every title is on the screen; the seconds since QEMU started."""
    for title in titles:
        vm.wait_screen(title, timeout=MENU_TIMEOUT)
    return vm.elapsed()


def row_of(vm: SerialVm, title: str) -> str:
    rows = [line for line in vm.text().splitlines() if title in line]
    assert rows, f"{title!r} is not on the screen:\n{vm.text()}"
    return rows[0]


def select(vm: SerialVm, title: str) -> None:
    """Moves the selection (the row starting with `>`) onto `title`, from the top."""
    vm.send("home")
    vm.settle(0.7)
    for _ in range(12):
        if row_of(vm, title).lstrip().startswith(">"):
            return
        vm.send("down")
        vm.settle(0.7)
    raise AssertionError(f"could not select {title!r}; the screen shows:\n{vm.text()}")


def guest_logs(vm: SerialVm) -> str:
    """The daemon's and menu's logs, read from the payload's rescue shell (for the message of a failed test)."""
    try:
        vm.send("esc", "esc", "x")
        vm.settle(2.0)
        vm.child.sendline("tail -n 25 /run/bootmenu/daemon.log /run/bootmenu/ui-ttyS0.log; echo LOGS-DONE")
        vm.expect(r"LOGS-DONE\r*\n", timeout=20)
        before: bytes = vm.child.before
        return before.decode("utf-8", "replace")
    except Exception as exc:
        return f"(no logs: {exc})"


def second_kernel_cmdline(vm: SerialVm, timeout: float = 90.0) -> str:
    """The command line the kexec'd kernel printed (its /init prints it, then powers off)."""
    # Read between the start and end markers: a kernel message interleaved into the line is cut out again.
    try:
        return read_second_stage_cmdline(vm.child, timeout=timeout)
    except (pexpect.TIMEOUT, pexpect.EOF):
        screen = vm.text()
        raise AssertionError(
            f"no second kernel within {timeout:g} s; the screen:\n{screen}\nguest logs:\n{guest_logs(vm)}"
        ) from None


def test_menu_lists_entries_of_two_disks(boot: Boot) -> None:
    vm = boot(NO_AUTOBOOT)
    took = wait_menu(vm, "E2E GRUB default", "Advanced options for E2E GRUB", "E2E BLS Linux")
    print(f"\nmenu with both disks' entries {took:.1f} s after QEMU started")
    screen = vm.text()
    # The submenu is one row; its entry is inside it, not on the top level.
    assert "E2E GRUB recovery" not in screen
    assert "E2E garbage kernel" in screen


def test_non_default_entry_kexecs_with_its_command_line(boot: Boot) -> None:
    vm = boot(NO_AUTOBOOT)
    wait_menu(vm, "E2E BLS Linux")
    vm.settle()
    select(vm, "E2E BLS Linux")
    started = time.monotonic()
    vm.send("enter")
    cmdline = second_kernel_cmdline(vm)
    print(f"\nEnter -> second kernel's /init: {time.monotonic() - started:.1f} s")
    assert "e2e=bls" in cmdline.split()
    assert "e2e=grub-default" not in cmdline
    vm.wait_exit()


def test_unified_kernel_image_boots_its_own_kernel_initrd_and_cmdline(boot: Boot) -> None:
    vm = boot(NO_AUTOBOOT)
    wait_menu(vm, "E2E UKI")
    vm.settle()
    select(vm, "E2E UKI")
    vm.send("enter")
    # The second-stage initrd exists only inside the UKI's .initrd section: its marker proves the section was loaded.
    assert "e2e=uki" in second_kernel_cmdline(vm).split()


def test_entry_in_submenu_boots(boot: Boot) -> None:
    vm = boot(NO_AUTOBOOT)
    wait_menu(vm, "Advanced options for E2E GRUB")
    vm.settle()
    select(vm, "Advanced options for E2E GRUB")
    vm.send("enter")
    vm.wait_screen("E2E GRUB recovery", timeout=30)
    vm.settle()
    select(vm, "E2E GRUB recovery")
    vm.send("enter")
    assert "e2e=grub-recovery" in second_kernel_cmdline(vm).split()


def test_editor_appends_a_word_the_second_kernel_sees(boot: Boot) -> None:
    vm = boot(NO_AUTOBOOT)
    wait_menu(vm, "E2E GRUB default")
    vm.settle()
    select(vm, "E2E GRUB default")
    vm.send("e")
    vm.wait_screen("e2e=grub-default", timeout=30)
    vm.send("end", " e2e.edited=yes", "ctrl-x")
    words = second_kernel_cmdline(vm).split()
    assert "e2e=grub-default" in words
    assert "e2e.edited=yes" in words


def test_timeout_autoboots_the_default_entry(boot: Boot) -> None:
    vm = boot("bootmenu.timeout=2")
    # No key is pressed: the GRUB default boots by itself once the timeout runs out.
    cmdline = second_kernel_cmdline(vm, timeout=MENU_TIMEOUT + 60)
    print(f"\nautoboot reached the second kernel {vm.elapsed():.1f} s after QEMU started")
    assert "e2e=grub-default" in cmdline.split()
    # GRUB's Linux loader prepends the kernel path as written; the booted kernel gets it too.
    assert cmdline.split()[0] == "BOOT_IMAGE=/boot/vmlinuz"


def test_garbage_kernel_shows_error_and_another_entry_still_boots(boot: Boot) -> None:
    vm = boot(NO_AUTOBOOT)
    wait_menu(vm, "E2E garbage kernel", "E2E BLS Linux")
    vm.settle()
    select(vm, "E2E garbage kernel")
    vm.send("enter")
    vm.settle(2.0, timeout=30)
    screen = vm.wait_screen("garbage", timeout=30)
    assert SECOND_STAGE_MARKER not in vm.transcript.decode("utf-8", "replace")
    lowered = screen.lower()
    assert any(word in lowered for word in ("error", "not a", "cannot", "invalid", "failed")), screen
    # The menu is still up: dismiss the message and boot a good entry.
    vm.send("esc")
    vm.settle()
    vm.wait_screen("E2E BLS Linux", timeout=30)
    select(vm, "E2E BLS Linux")
    vm.send("enter")
    assert "e2e=bls" in second_kernel_cmdline(vm).split()


def test_hot_added_disk_appears_in_the_menu(boot: Boot, test_disks: E2eDisks, tmp_path: Path) -> None:
    vm = boot(NO_AUTOBOOT)
    wait_menu(vm, "E2E GRUB default", "E2E BLS Linux")
    assert "E2E hot-added disk" not in vm.text()
    plugged = time.monotonic()
    vm.vm.qmp().hotplug_disk(test_disks.hotplug, "hot0", "hotplug0")
    vm.wait_screen("E2E hot-added disk", timeout=90)
    print(f"\nhot-added disk in the menu {time.monotonic() - plugged:.1f} s after device_add")
