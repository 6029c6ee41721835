"""Power actions end to end: on the payload's serial menu, `P` then `y` really powers the VM off, `R` then `y`
resets it (QEMU runs with -no-reboot, so a reset ends QEMU too; the kernel's last line tells which it was)."""

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


@pytest.mark.parametrize(
    ("key", "question", "kernel_says"),
    [
        ("P", "Power the machine off now?", rb"reboot: Power down"),
        ("R", "Reboot the machine now?", rb"reboot: Restarting system"),
    ],
)
def test_power_action_from_the_serial_menu(boot: Boot, key: str, question: str, kernel_says: bytes) -> None:
    vm = boot(NO_AUTOBOOT)
    wait_menu(vm, "E2E GRUB default")
    vm.settle()
    vm.send(key)
    vm.wait_screen(question, timeout=30)
    started = time.monotonic()
    vm.send("y")
    _last_words(vm, kernel_says)
    print(f"\n{key} y -> QEMU exited after {time.monotonic() - started:.1f} s")
