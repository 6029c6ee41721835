"""The QEMU harness itself, on the bare busybox baseline: boot under TCG, QMP disk hotplug, no process left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from initramfs import guests
from initramfs.qemu import Accel, Disk, VmConfig, modules_in
from tests.qemu.e2e_support import BASE_APPEND, VM_TIMEOUT, E2eDisks
from tests.qemu.qemu_console import SerialVm

pytestmark = pytest.mark.qemu


def test_command_line_is_tcg_q35_with_hotplug_ports(kernel: Path) -> None:
    argv = VmConfig(kernel=kernel, hotplug_ports=2).argv()
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert argv[argv.index("-machine") + 1] == "q35"
    assert "-no-reboot" in argv
    ports = [a for a in argv if a.startswith("pcie-root-port")]
    assert [p.split(",")[1] for p in ports] == ["id=hotplug0", "id=hotplug1"]
    assert VmConfig(kernel=kernel, accel=Accel.KVM).argv()[2] == "kvm"


def test_baseline_boots_and_sees_a_disk_hot_added_over_qmp(kernel: Path, test_disks: E2eDisks, tmp_path: Path) -> None:
    from tests.qemu.e2e_support import KERNEL_CACHE

    initrd = guests.baseline_initrd(tmp_path / "baseline.img", modules_dir=modules_in(KERNEL_CACHE))
    config = VmConfig(kernel=kernel, initrd=initrd, append=BASE_APPEND, disks=(Disk(test_disks.grub),))
    with SerialVm(config, timeout=VM_TIMEOUT, transcript=tmp_path / "console.log") as vm:
        vm.expect(guests.BASELINE_MARKER, timeout=120)
        print(f"\nbare busybox /init {vm.elapsed():.1f} s after QEMU started")
        disks = vm.framed(f"{guests.BASELINE_READY} disks=", guests.BASELINE_READY_END, timeout=60)
        assert disks.split() == ["vda"]
        vm.vm.qmp().hotplug_disk(test_disks.hotplug, "hot0", "hotplug0")
        # The guest waits for the new disk itself (bounded: 240 x 0.5 s), kernel messages off its console, then
        # prints what it has framed like the other guest values ("" keeps the echoed command from matching).
        vm.child.sendline(
            "dmesg -n 1; i=0; while [ ! -e /sys/block/vdb ] && [ $i -lt 240 ]; do sleep 0.5; i=$((i+1)); done; "
            'd=$(ls /sys/block | tr \'\\n\' \' \'); echo "DIS""KS=$d"; echo "DISKS-""END length=${#d}"'
        )
        listing = vm.framed("DISKS=", "DISKS-END", timeout=150)
        assert listing.split()[:2] == ["vda", "vdb"]
        pid = vm.vm.pid
    assert pid is not None
    # Gone, not a zombie: the harness reaped it.
    assert not os.path.exists(f"/proc/{pid}")
