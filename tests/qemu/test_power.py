"""The operator's screens end to end on the payload's serial menu: the system information read from the VM's sysfs,
`P` then `y` really powering the VM off, `R` then `y` resetting it (QEMU runs with -no-reboot, so a reset ends QEMU
too; the kernel's last line tells which it was)."""

from __future__ import annotations

import time

import pytest

from tests.qemu.qemu_console import SerialVm
from tests.qemu.test_e2e import NO_AUTOBOOT, Boot, guest_logs, wait_menu

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(420)]


def _last_words(vm: SerialVm, pattern: bytes) -> None:
    try:
        vm.expect(pattern, timeout=90)
    except Exception:
        raise AssertionError(f"no {pattern!r}; the screen:\n{vm.text()}\nguest logs:\n{guest_logs(vm)}") from None
    vm.wait_exit(timeout=60)


def test_system_information_then_power_off(boot: Boot) -> None:
    vm = boot(NO_AUTOBOOT)
    wait_menu(vm, "E2E GRUB default", "E2E BLS Linux")
    vm.settle()
    vm.send("s")
    vm.wait_screen("Firmware:  BIOS", timeout=60)
    # The screen arrives over a 115200-baud line: let the whole box be drawn before reading it.
    vm.wait_screen("CPUs:", timeout=30)
    vm.settle()
    screen = vm.text()
    assert "Machine:   QEMU" in screen  # QEMU's SMBIOS tables, read from /sys/class/dmi/id
    assert "CPUs:      1" in screen or "CPUs:      2" in screen
    vm.send("end")
    vm.settle()
    screen = vm.text()
    # Both test disks, each with what the daemon found on it.
    assert screen.count("boot entr") >= 2, screen
    vm.send("esc")
    vm.settle()
    vm.send("P")
    vm.wait_screen("Power the machine off now?", timeout=30)
    started = time.monotonic()
    vm.send("y")
    _last_words(vm, rb"reboot: Power down")
    print(f"\nP y -> QEMU exited after {time.monotonic() - started:.1f} s")


def test_reboot_resets_the_machine(boot: Boot) -> None:
    vm = boot(NO_AUTOBOOT)
    wait_menu(vm, "E2E GRUB default")
    vm.settle()
    vm.send("R")
    vm.wait_screen("Reboot the machine now?", timeout=30)
    started = time.monotonic()
    vm.send("y")
    _last_words(vm, rb"reboot: Restarting system")
    print(f"\nR y -> QEMU exited after {time.monotonic() - started:.1f} s")
