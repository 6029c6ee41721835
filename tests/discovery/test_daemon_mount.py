"""The real mount path and the real udev source on this host, with nothing that could write to a disk.

Mounts here are tmpfs (no block device involved); block-device mounts are exercised in QEMU (the payload tests).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from discovery.devices import BlockDevice, PyudevSource
from discovery.mount import Mounter, MountError


def _mounted(target: Path) -> bool:
    return any(line.split()[1] == str(target) for line in Path("/proc/self/mounts").read_text().splitlines())


@pytest.mark.skipif(os.geteuid() != 0, reason="mount(2) needs root")
def test_mounts_are_read_only_and_undone(tmp_path: Path) -> None:
    mounter = Mounter(tmp_path / "run")
    with mounter.mount("none", "vda2", "tmpfs") as root:
        assert root == tmp_path / "run" / "vda2"
        assert _mounted(root)
        with pytest.raises(OSError, match="Read-only file system"):
            (root / "written").write_text("no")
    assert not _mounted(tmp_path / "run" / "vda2")
    assert not (tmp_path / "run" / "vda2").exists(), "the mount point is removed too"


@pytest.mark.skipif(os.geteuid() != 0, reason="mount(2) needs root")
@pytest.mark.parametrize(
    ("fstype", "options"),
    [("ext4", "'noload'"), ("ext3", "'noload'"), ("xfs", "'norecovery'"), ("btrfs", "'rescue=nologreplay,subvolid=5'")],
)
def test_a_failed_mount_names_the_call_read_only_without_journal_replay(
    tmp_path: Path, fstype: str, options: str
) -> None:
    # The error quotes the real mount(2) call: read-only (MS_RDONLY, 0x1) and never replaying a journal or log;
    # btrfs at its top-level subvolume, which is what GRUB reads.
    with pytest.raises(MountError) as info, Mounter(tmp_path).mount("/dev/does-not-exist", "x", fstype):
        pass
    message = str(info.value)
    assert "/dev/does-not-exist" in message
    assert "flags=0x1" in message
    assert f"data={options}" in message
    assert not (tmp_path / "x").exists(), "no mount point is left behind"


@pytest.mark.skipif(os.geteuid() != 0, reason="mount(2) needs root")
def test_a_restarted_daemon_unmounts_what_a_crashed_one_left(tmp_path: Path) -> None:
    mounter = Mounter(tmp_path / "run")
    crashed = mounter.mount("none", "vda2", "tmpfs")
    root = crashed.__enter__()  # never exited: the process died
    try:
        assert mounter.leftovers() == [root]
        Mounter(tmp_path / "run").clean_up()
        assert not _mounted(root)
        assert mounter.leftovers() == []
    finally:
        if _mounted(root):
            subprocess.run(["umount", "-l", str(root)], check=False)


def test_pyudev_source_lists_this_machines_block_devices() -> None:
    source = PyudevSource()
    try:
        devices = [BlockDevice.from_event(e) for e in source.existing()]
        sysfs = set(os.listdir("/sys/class/block"))
        assert {d.name for d in devices} == sysfs
        assert all(d.node == f"/dev/{d.name}" for d in devices)
        assert all(d.size is not None for d in devices)
        assert source.fileno() >= 0
    finally:
        source.close()
