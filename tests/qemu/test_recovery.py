"""Recovery end to end (issue 11 sections 2-4) on q35 with an i6300esb watchdog whose expiry resets the machine.

One disk: a vfat filesystem labelled BMSTATE holding a GRUB config whose default entry's kernel never comes up (its
/init hangs) and a second entry that works, plus the boot attempt record (`state = "LABEL=BMSTATE"`). QEMU runs
without -no-reboot, so a watchdog reset restarts the firmware and the payload, as on a real board. The test follows
one machine through: autoboot of the hanging entry (the serial log shows the quiesce unbinds and the jump's
evidence), the watchdog reset, the menu saying the previous boot did not come up, the fallback entry autobooting
after its countdown, and its kernel reading the disk the payload had unbound the driver of.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pexpect
import pytest

from initramfs import disks, guests
from initramfs.guests import (
    SECOND_STAGE_DISKS_MARKER,
    SECOND_STAGE_HANG_MARKER,
    SECOND_STAGE_PANIC_MARKER,
)
from initramfs.qemu import Disk, VmConfig, modules_in
from tests.qemu.e2e_support import BASE_APPEND, COMMON, KERNEL_CACHE
from tests.qemu.qemu_console import SerialVm, read_second_stage_cmdline

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(1500)]

# Long enough for the fallback kernel to reach its /init and power off under TCG on a loaded machine.
WATCHDOG_SECONDS = 60
# Two payload starts, two kexecs and a watchdog expiry under TCG on shared cores.
VM_TIMEOUT = 1200.0
MENU_TIMEOUT = 300.0
GRUB_CFG = f"""\
set default=0
set timeout=30
menuentry 'E2E hang' {{
    linux /boot/vmlinuz {COMMON} e2e=hang e2e.hang
    initrd /boot/second.img
}}
menuentry 'E2E fallback' {{
    linux /boot/vmlinuz {COMMON} e2e=fallback
    initrd /boot/second.img
}}
"""


def state_disk(base: Path, kernel: Path) -> Path:
    tree = base / "esp"
    (tree / "boot" / "grub").mkdir(parents=True)
    (tree / "boot" / "grub" / "grub.cfg").write_text(GRUB_CFG)
    (tree / ".bootmenu-fs").write_text("label=BMSTATE\nfstype=vfat\n")
    second = guests.second_stage_initrd(base / "second.img", modules_dir=modules_in(KERNEL_CACHE))
    return disks.disk_from_directory(tree, base / "esp.img", {"boot/vmlinuz": kernel, "boot/second.img": second})


def expect(vm: SerialVm, pattern: bytes, what: str, timeout: float) -> re.Match[bytes]:
    try:
        return vm.expect(pattern, timeout=timeout)
    except (pexpect.TIMEOUT, pexpect.EOF):
        raise AssertionError(f"no {what} within {timeout:g} s; the console ended with:\n{vm.tail(60)}") from None


def test_hanging_kernel_comes_back_to_the_menu_and_the_fallback_entry_boots(
    kernel: Path, payload: Path, tmp_path: Path
) -> None:
    image = state_disk(tmp_path, kernel)
    append = f"{BASE_APPEND} bootmenu.timeout=8 bootmenu.watchdog={WATCHDOG_SECONDS} bootmenu.state=LABEL=BMSTATE"
    config = VmConfig(
        kernel=kernel,
        initrd=payload,
        append=append,
        disks=(Disk(image),),
        no_reboot=False,
        extra=("-device", "i6300esb", "-action", "watchdog=reset"),
    )
    with SerialVm(config, timeout=VM_TIMEOUT, transcript=tmp_path / "console.log") as vm:
        # The first start autoboots the hanging default; before the jump the kernel log gets the quiesce and the plan.
        expect(vm, rb"bootmenu: jump: entry 'E2E hang'", "jump evidence", MENU_TIMEOUT + 60)
        evidence = expect(vm, rb"bootmenu: jump: quiesced ([^\r\n]*)[\r\n]", "quiesce list", 30).group(1).decode()
        watchdog = expect(vm, rb"bootmenu: jump: watchdog ([^\r\n]*)[\r\n]", "watchdog state", 30).group(1).decode()
        log = vm.transcript.decode("utf-8", "replace")
        unbound = dict(re.findall(r"bootmenu: quiesce: unbound (\S+) from (\S+)", log))
        assert "virtio-pci" in unbound.values(), log[-3000:]
        assert all(address in evidence for address in unbound), evidence
        assert f"with {WATCHDOG_SECONDS} s" in watchdog, watchdog
        assert "i6300ESB" in watchdog, watchdog
        expect(vm, SECOND_STAGE_HANG_MARKER.encode(), "hanging second kernel", 120)
        hung = time.monotonic()
        # The watchdog resets the machine; the payload starts again and says why it does not boot the default.
        # The menu draws before the disks are read (its status line says why first): wait for the entry's own mark.
        screen = vm.wait_screen("did not come up last time", timeout=WATCHDOG_SECONDS * 3 + MENU_TIMEOUT)
        print(f"\nwatchdog reset to the menu's notice: {time.monotonic() - hung:.1f} s after the kernel hung")
        rows = [line for line in screen.splitlines() if "E2E hang" in line]
        assert any("did not come up last time" in row for row in rows), screen
        vm.wait_screen("Booting 'E2E fallback' in", timeout=60)
        # After the normal countdown the fallback entry boots; its kernel reads the disk whose driver was unbound.
        # Up to the line's end: pexpect would otherwise match the part of the line that has arrived so far.
        found = expect(
            vm, SECOND_STAGE_DISKS_MARKER.encode() + rb"([^\r\n]*)[\r\n]", "disks in the fallback kernel", 240
        )
        disks_seen = dict(item.split(":") for item in found.group(1).decode().split())
        assert disks_seen.get("vda") == str(16 * 65536), disks_seen
        cmdline = read_second_stage_cmdline(vm.child, timeout=60)
        assert "e2e=fallback" in cmdline.split()
        transcript = vm.transcript.decode("utf-8", "replace")
        assert transcript.count("bootmenu: jump: entry 'E2E fallback'") == 1
        vm.wait_exit()


# RAM kept out of both kernels' hands (memmap=SIZE$ADDRESS) for ramoops, which survives QEMU's reset.
RAMOOPS = "ramoops.mem_address=0x30000000 ramoops.mem_size=0x100000 ramoops.ecc=1"
PANIC_CFG = f"""\
set default=0
set timeout=30
menuentry 'E2E panic' {{
    linux /boot/vmlinuz {COMMON} 'memmap=1M$0x30000000' {RAMOOPS} e2e=panic e2e.panic
    initrd /boot/second.img
}}
"""


def test_a_kernel_panic_is_shown_by_the_menu_after_the_reset(kernel: Path, payload: Path, tmp_path: Path) -> None:
    tree = tmp_path / "esp"
    (tree / "boot" / "grub").mkdir(parents=True)
    (tree / "boot" / "grub" / "grub.cfg").write_text(PANIC_CFG)
    (tree / ".bootmenu-fs").write_text("label=E2EPANIC\nfstype=vfat\n")
    second = guests.second_stage_initrd(tmp_path / "second.img", modules_dir=modules_in(KERNEL_CACHE))
    image = disks.disk_from_directory(tree, tmp_path / "esp.img", {"boot/vmlinuz": kernel, "boot/second.img": second})
    config = VmConfig(
        kernel=kernel,
        initrd=payload,
        append=f"{BASE_APPEND} bootmenu.timeout=off memmap=1M$0x30000000 {RAMOOPS}",
        disks=(Disk(image),),
        no_reboot=False,
    )
    with SerialVm(config, timeout=VM_TIMEOUT, transcript=tmp_path / "console.log") as vm:
        vm.wait_screen("E2E panic", timeout=MENU_TIMEOUT)
        vm.settle()
        vm.send("enter")
        expect(vm, SECOND_STAGE_PANIC_MARKER.encode(), "panicking second kernel", 180)
        # panic=-1 resets at once; ramoops kept the log tail in the reserved RAM; the payload shows what happened.
        screen = vm.wait_screen("The previous kernel crashed: Kernel panic - not syncing", timeout=MENU_TIMEOUT)
        assert "sysrq triggered crash" in screen, screen
        # The log view has the record's last lines, quoted by the daemon as "dmesg-ramoops-0: LINE".
        vm.send("l")
        vm.wait_screen("Status log", timeout=60)
        vm.wait_screen("dmesg-ramoops-0: ", timeout=60)
