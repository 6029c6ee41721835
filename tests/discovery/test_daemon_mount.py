"""The real mount path and the real udev source on this host, with nothing that could write to a disk.

Mounts here are tmpfs (no block device involved); block-device mounts are exercised in QEMU (the payload tests).
"""

from __future__ import annotations

import os
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
def test_a_failed_mount_names_the_device(tmp_path: Path) -> None:
    with (
        pytest.raises(MountError, match="/dev/does-not-exist"),
        Mounter(tmp_path).mount("/dev/does-not-exist", "x", "ext4"),
    ):
        pass


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
