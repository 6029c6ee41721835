"""Block devices without udevd and without libudev (discovery/devices.py KernelSource): what pyudev's "kernel" source
gives, from sysfs and the kernel's uevent messages."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from discovery.devices import BlockDevice, KernelSource, PyudevSource, UEvent, parse_uevent


def _fake_block(root: Path) -> None:
    """sysfs as the kernel lays it out: /sys/class/block/* are links into /sys/devices; a removable disk sda with
    one partition, a disk vdb without, and a name whose uevent file cannot be read."""
    sda = root / "devices/pci0000:00/0000:00:1d.0/usb1/1-1/host0/block/sda"
    (sda / "sda1").mkdir(parents=True)
    (sda / "uevent").write_text("MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\n")
    (sda / "size").write_text("2048\n")
    (sda / "removable").write_text("1\n")
    (sda / "sda1" / "uevent").write_text("MAJOR=8\nMINOR=1\nDEVNAME=sda1\nDEVTYPE=partition\nPARTN=1\n")
    (sda / "sda1" / "size").write_text("2000\n")
    (sda / "sda1" / "partition").write_text("1\n")
    vdb = root / "devices/pci0000:00/0000:00:03.0/virtio2/block/vdb"
    vdb.mkdir(parents=True)
    (vdb / "uevent").write_text("MAJOR=254\nMINOR=16\nDEVNAME=vdb\nDEVTYPE=disk\n")
    (vdb / "size").write_text("8\n")
    (vdb / "removable").write_text("0\n")
    block = root / "class" / "block"
    block.mkdir(parents=True)
    for name, target in (("sda", sda), ("sda1", sda / "sda1"), ("vdb", vdb)):
        os.symlink(os.path.relpath(target, block), block / name)
    os.symlink("../../devices/nowhere", block / "gone")


@pytest.fixture
def source(tmp_path: Path) -> tuple[KernelSource, socket.socket]:
    _fake_block(tmp_path)
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    return KernelSource(tmp_path, sock=ours), kernel


def test_devices_present_at_start_from_sysfs(source: tuple[KernelSource, socket.socket]) -> None:
    found = {e.properties["DEVNAME"]: e for e in source[0].existing()}
    assert sorted(found) == ["/dev/sda", "/dev/sda1", "/dev/vdb"]  # "gone" has no uevent file
    sda, sda1, vdb = found["/dev/sda"], found["/dev/sda1"], found["/dev/vdb"]
    assert (sda.size, sda.removable, sda.partitioned) == (2048 * 512, True, True)
    assert (sda1.size, sda1.removable, sda1.partitioned) == (2000 * 512, True, False)  # the disk's removable flag
    assert (vdb.size, vdb.removable, vdb.partitioned) == (4096, False, False)
    assert sda1.properties["DEVPATH"] == "/devices/pci0000:00/0000:00:1d.0/usb1/1-1/host0/block/sda/sda1"
    assert sda1.properties["SUBSYSTEM"] == "block"
    assert sda1.properties["PARTN"] == "1"
    device = BlockDevice.from_event(sda1)
    assert (device.name, device.node, device.kind, device.devtype) == ("sda1", "/dev/sda1", "usb", "partition")
    assert BlockDevice.from_event(sda).has_partitions


def _message(action: str, devpath: str, **props: str) -> bytes:
    fields = [f"{action}@{devpath}", f"ACTION={action}", f"DEVPATH={devpath}", *(f"{k}={v}" for k, v in props.items())]
    return "\0".join(fields).encode() + b"\0"


def test_uevents_of_block_devices_only(source: tuple[KernelSource, socket.socket]) -> None:
    ours, kernel = source
    vdb = "/devices/pci0000:00/0000:00:03.0/virtio2/block/vdb"
    kernel.send(_message("add", "/devices/virtual/input/input3", SUBSYSTEM="input"))
    kernel.send(b"libudev\0\xfe\xed\xca\xfe" + b"\0" * 32)  # udevd's format: not the kernel's
    kernel.send(_message("change", vdb, SUBSYSTEM="block", DEVNAME="vdb", DEVTYPE="disk", DISK_MEDIA_CHANGE="1"))
    kernel.send(
        _message("remove", "/devices/pci0000:00/0000:00:04.0/virtio3/block/vdc", SUBSYSTEM="block", DEVNAME="vdc")
    )
    events = ours.receive()
    assert [(e.action, e.properties["DEVNAME"]) for e in events] == [("change", "/dev/vdb"), ("remove", "/dev/vdc")]
    change, remove = events
    assert change.properties["DISK_MEDIA_CHANGE"] == "1"
    assert change.properties["MAJOR"] == "254"  # and the rest from its uevent file
    assert change.size == 4096
    assert remove == UEvent("remove", remove.properties)  # gone from sysfs: no size
    assert ours.receive() == []  # nothing left, and no blocking


def test_a_uevent_message_is_parsed_or_refused() -> None:
    assert parse_uevent(_message("add", "/devices/x", SUBSYSTEM="block", EMPTY="")) == {
        "ACTION": "add",
        "DEVPATH": "/devices/x",
        "SUBSYSTEM": "block",
        "EMPTY": "",
    }
    assert parse_uevent(b"libudev\0whatever") is None
    assert parse_uevent(b"add@/devices/x\0SUBSYSTEM=block\0") is None  # no ACTION/DEVPATH
    assert parse_uevent(b"") is None


def test_the_same_devices_as_pyudev_on_this_machine() -> None:
    try:
        ours = KernelSource()
        theirs = PyudevSource("kernel")
    except (ImportError, OSError) as exc:
        pytest.skip(f"no kernel uevent socket or libudev here: {exc}")
    try:
        mine = {e.properties["DEVNAME"]: e for e in ours.existing()}
        pyudev = {e.properties["DEVNAME"]: e for e in theirs.existing()}
    finally:
        ours.close()
        theirs.close()
    if not pyudev:
        pytest.skip("no block devices in this machine's sysfs")
    assert sorted(mine) == sorted(pyudev)
    for name, event in pyudev.items():
        kernel_keys = {
            k: v for k, v in event.properties.items() if not k.startswith(("ID_", "USEC_", "TAGS", "CURRENT_TAGS"))
        }
        assert {k: mine[name].properties.get(k) for k in kernel_keys} == kernel_keys, name
        assert (mine[name].size, mine[name].removable, mine[name].partitioned) == (
            event.size,
            event.removable,
            event.partitioned,
        ), name
