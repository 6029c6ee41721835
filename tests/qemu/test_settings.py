"""End-to-end: every documented `bootmenu.*` kernel parameter, and bad ones, on the payload in QEMU (issues 9, 10).

Two VMs, one per scenario:
- every documented parameter at once, on a VM with a VGA console and a serial console (`console=tty0
  console=ttyS0,115200`): the rescue shell of `bootmenu.shell=1` comes first, the menu after it with its entries
  and no settings warning; booting an entry whose command line names no console from the serial menu hands the
  second kernel `console=ttyS0,115200n8` (issue 10's console hand-off).
- unknown and malformed parameters: the daemon keeps running, the menu lists the entries and its status line shows
  the warning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from discovery.settings import PARAMS
from initramfs import disks, guests
from initramfs.qemu import Disk, VmConfig
from tests.qemu.e2e_support import VM_TIMEOUT
from tests.qemu.qemu_console import SerialVm
from tests.qemu.test_e2e import MENU_TIMEOUT, second_kernel_cmdline, select, wait_menu

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(420)]

Boot = Callable[..., SerialVm]
HANDOFF_TITLE = "E2E console hand-off"
# No console= here: the daemon must add the one of the menu the entry is booted from.
HANDOFF_CFG = f"""\
set default=0
set timeout=0
set timeout_style=hidden
menuentry '{HANDOFF_TITLE}' {{
    linux /boot/vmlinuz panic=-1 quiet e2e=handoff
    initrd /boot/second.img
}}
"""
DOCUMENTED = (
    "bootmenu.shell=1 bootmenu.ascii bootmenu.mono=1 bootmenu.debug bootmenu.timeout=off "
    "bootmenu.order=label:e2e-handoff,type:disk bootmenu.console=80x24 bootmenu.console_handoff=yes "
    "bootmenu.autoboot_console=ttyS0 bootmenu.quiesce=unbind bootmenu.watchdog=off bootmenu.state=LABEL=e2e-handoff "
    "bootmenu.network=0 bootmenu.network_interfaces=eth0 bootmenu.ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:none "
    "bootmenu.timeline=1"
)
BAD = "bootmenu.colour=red bootmenu.timeout=soon bootmenu.console=wide bootmenu.shell=maybe bootmenu.timeout=off"


@pytest.fixture
def handoff_disk(tmp_path: Path, kernel: Path) -> Path:
    root = tmp_path / "handoff"
    (root / "boot" / "grub").mkdir(parents=True)
    (root / "boot" / "grub" / "grub.cfg").write_text(HANDOFF_CFG)
    (root / ".bootmenu-fs").write_text("label=e2e-handoff\nfstype=ext4\n")
    second = guests.second_stage_initrd(tmp_path / "second.img")
    return disks.disk_from_directory(
        root, tmp_path / "handoff.img", {"boot/vmlinuz": kernel, "boot/second.img": second}
    )


@pytest.fixture
def vga_and_serial(kernel: Path, payload: Path, handoff_disk: Path, tmp_path: Path) -> Iterator[Boot]:
    """A VM whose kernel writes to the VGA console and to ttyS0 (the last console=, so /dev/console is serial)."""
    vms: list[SerialVm] = []

    def start(append: str) -> SerialVm:
        config = VmConfig(
            kernel=kernel,
            initrd=payload,
            append=f"console=tty0 console=ttyS0,115200 panic=-1 quiet {append}",
            disks=(Disk(handoff_disk),),
        )
        vm = SerialVm(config, timeout=VM_TIMEOUT, transcript=tmp_path / f"console-{len(vms)}.log")
        vms.append(vm)
        return vm

    yield start
    for vm in vms:
        vm.close()


def test_every_documented_parameter_keeps_the_menu_and_a_serial_boot_hands_off_its_console(
    vga_and_serial: Boot,
) -> None:
    for param in PARAMS:
        if not param.cmdline:
            continue  # a settings-file key only (password): on the command line it is ignored with a warning
        assert param.parameter + ("=" if not param.flag else "") in DOCUMENTED, f"{param.parameter} is not tried"
    vm = vga_and_serial(DOCUMENTED)
    vm.expect("bootmenu.shell: rescue shell", timeout=MENU_TIMEOUT)
    vm.settle(2.0)
    vm.child.sendline("exit")
    took = wait_menu(vm, HANDOFF_TITLE)
    print(f"\nmenu after the bootmenu.shell=1 shell, {took:.1f} s after QEMU started")
    vm.settle()
    screen = vm.text()
    assert "settings" not in screen, f"a documented parameter drew a warning:\n{screen}"
    assert "Booting" not in screen, "bootmenu.timeout=off: no countdown, whatever the hidden GRUB menu says"
    assert all(ch.isascii() for ch in screen), "bootmenu.ascii"
    select(vm, HANDOFF_TITLE)
    vm.send("enter")
    words = second_kernel_cmdline(vm).split()
    assert "e2e=handoff" in words
    assert words[-1].startswith("console=ttyS0,115200"), words
    assert words[-1] == "console=ttyS0,115200n8"


def test_bad_parameters_are_warnings_on_the_status_line_and_the_menu_stays(boot: Boot) -> None:
    vm = boot(BAD)
    took = wait_menu(vm, "E2E GRUB default", "E2E BLS Linux")
    print(f"\nmenu with four bad parameters {took:.1f} s after QEMU started")
    screen = vm.wait_screen("bootmenu.colour=red", timeout=30)
    assert "! settings (+3 more: l): kernel command line: bootmenu.colour=red" in screen
    vm.send("l")
    for word in BAD.split()[1:-1]:  # every bad word in the status log (the window draws them in turn)
        vm.wait_screen(word, timeout=30)
