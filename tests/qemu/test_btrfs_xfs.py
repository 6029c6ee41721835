"""btrfs and xfs disks made by mkfs.btrfs/mkfs.xfs, read by the payload in QEMU and booted from.

The btrfs disk is laid out as Ubuntu installs it: everything in a top-level `@` directory, grub.cfg in
`@/boot/grub`, and its paths written from the top level (`linux /@/boot/vmlinuz`), as GRUB reads btrfs from its
top-level subvolume; a snapper-style snapshot entry points into `/@/.snapshots/1/snapshot`. btrfs-progs 6.2
(bookworm) cannot create subvolumes offline (`--subvol` came later), so `@` is a directory of the top level here:
the paths resolve the same way, because the payload mounts the top level (`subvolid=5`) as GRUB reads it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from initramfs import disks, guests
from initramfs.qemu import Disk, VmConfig
from tests.qemu.e2e_support import BASE_APPEND, COMMON, VM_TIMEOUT
from tests.qemu.qemu_console import SerialVm
from tests.qemu.test_e2e import NO_AUTOBOOT, second_kernel_cmdline, select, wait_menu

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(420)]

BTRFS_CFG = f"""\
set default=0
set timeout=5
menuentry 'Ubuntu on btrfs' {{
    linux /@/boot/vmlinuz {COMMON} e2e=btrfs
    initrd /@/boot/second.img
}}
menuentry 'Ubuntu on btrfs, snapshot 1' {{
    linux /@/.snapshots/1/snapshot/boot/vmlinuz {COMMON} e2e=btrfs-snapshot
    initrd /@/.snapshots/1/snapshot/boot/second.img
}}
"""
XFS_CFG = f"""\
menuentry 'RHEL on xfs' {{
    linux /boot/vmlinuz {COMMON} e2e=xfs
    initrd /boot/second.img
}}
"""


def _tree(base: Path, name: str, fstype: str, files: dict[str, str]) -> Path:
    root = base / name
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    (root / ".bootmenu-fs").write_text(f"label=e2e-{name}\nfstype={fstype}\n")
    return root


def test_btrfs_top_level_paths_and_xfs_are_listed_and_a_snapshot_entry_boots(
    kernel: Path, payload: Path, tmp_path: Path
) -> None:
    second = tmp_path / "second.img"
    guests.second_stage_initrd(second)
    btrfs = _tree(tmp_path, "btrfs", "btrfs", {"@/boot/grub/grub.cfg": BTRFS_CFG})
    snapshot = "@/.snapshots/1/snapshot/boot"
    btrfs_files = {
        "@/boot/vmlinuz": kernel,
        "@/boot/second.img": second,
        f"{snapshot}/vmlinuz": kernel,
        f"{snapshot}/second.img": second,
    }
    xfs = _tree(tmp_path, "xfs", "xfs", {"boot/grub2/grub.cfg": XFS_CFG})
    images = (
        disks.disk_from_directory(btrfs, tmp_path / "btrfs.img", btrfs_files),
        disks.disk_from_directory(xfs, tmp_path / "xfs.img", {"boot/vmlinuz": kernel, "boot/second.img": second}),
    )
    config = VmConfig(
        kernel=kernel,
        initrd=payload,
        append=f"{BASE_APPEND} {NO_AUTOBOOT}",
        disks=tuple(Disk(i) for i in images),
    )
    vm = SerialVm(config, timeout=VM_TIMEOUT, transcript=tmp_path / "console.log")
    try:
        wait_menu(vm, "Ubuntu on btrfs, snapshot 1", "RHEL on xfs")
        vm.settle()
        select(vm, "Ubuntu on btrfs, snapshot 1")
        vm.send("enter")
        assert "e2e=btrfs-snapshot" in second_kernel_cmdline(vm).split()
    finally:
        vm.close()
