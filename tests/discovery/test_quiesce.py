"""Quiesce selection rules on a fake sysfs tree: which PCI drivers are unbound before the jump, and in which order."""

from __future__ import annotations

from pathlib import Path

from discovery import quiesce
from discovery.quiesce import DmaKind
from tests.discovery.fake_sysfs import FakeSysfs

STORAGE_AHCI = 0x010601
NVME = 0x010802
ETHERNET = 0x020000
XHCI = 0x0C0330
FIBRE = 0x0C0400
BRIDGE = 0x060400
VGA = 0x030000
SMBUS = 0x0C0500
SERIAL_UART = 0x070002


def test_class_codes_select_storage_network_usb_and_fibre_channel() -> None:
    assert DmaKind.of(STORAGE_AHCI) is DmaKind.STORAGE
    assert DmaKind.of(NVME) is DmaKind.STORAGE
    assert DmaKind.of(ETHERNET) is DmaKind.NETWORK
    assert DmaKind.of(XHCI) is DmaKind.USB
    assert DmaKind.of(FIBRE) is DmaKind.FIBRE_CHANNEL
    for other in (BRIDGE, VGA, SMBUS, SERIAL_UART):
        assert DmaKind.of(other) is None


def machine(tmp_path: Path) -> FakeSysfs:
    fake = FakeSysfs(tmp_path / "sys")
    fake.pci("0000:00:01.0", VGA, "bochs-drm")
    fake.pci("0000:00:02.0", STORAGE_AHCI, "ahci")
    fake.pci("0000:00:03.0", ETHERNET, "e1000e")
    fake.pci("0000:00:1c.0", BRIDGE, "pcieport")
    fake.pci("0000:01:00.0", NVME, "nvme", parent="0000:00:1c.0")
    fake.pci("0000:00:04.0", XHCI, "xhci_hcd")
    fake.pci("0000:00:05.0", ETHERNET, None)  # no driver: nothing to unbind
    fake.pci("0000:00:1f.3", SMBUS, "i801_smbus")
    return fake


def test_selection_children_first_and_only_bound_dma_devices(tmp_path: Path) -> None:
    fake = machine(tmp_path)
    choices = quiesce.select(fake.root)
    assert [c.device.address for c in choices] == [
        "0000:01:00.0",  # behind the bridge: deeper, so first
        "0000:00:02.0",
        "0000:00:03.0",
        "0000:00:04.0",
    ]
    assert all(c.unbind for c in choices)
    assert [c.device.driver for c in choices] == ["nvme", "ahci", "e1000e", "xhci_hcd"]


def test_the_device_behind_an_active_console_is_kept(tmp_path: Path) -> None:
    fake = machine(tmp_path)
    # A USB serial adapter on the xHCI controller is the console: its controller stays bound.
    xhci = fake.device_path("0000:00:04.0")
    usb_serial = xhci / "usb1" / "1-1" / "1-1:1.0" / "ttyUSB0"
    usb_serial.mkdir(parents=True)
    fake.tty("ttyUSB0", usb_serial)
    # The legacy UART console is no PCI device; an inactive tty on the NIC changes nothing.
    legacy = fake.root / "devices" / "pnp0" / "00:04"
    legacy.mkdir(parents=True)
    fake.tty("ttyS0", legacy)
    fake.tty("ttyX9", fake.device_path("0000:00:03.0"), active=False)
    choices = {c.device.address: c for c in quiesce.select(fake.root)}
    assert not choices["0000:00:04.0"].unbind
    assert "ttyUSB0" in choices["0000:00:04.0"].reason
    assert choices["0000:00:03.0"].unbind
    assert choices["0000:00:02.0"].unbind


def test_quiesce_unbinds_announces_each_and_goes_on_after_a_failure(tmp_path: Path) -> None:
    fake = machine(tmp_path)
    fake.unbind_file("e1000e").unlink()  # this driver's unbind fails (ENOENT)
    notes: list[str] = []
    done = quiesce.quiesce(fake.root, notes.append)
    assert done == ["0000:01:00.0", "0000:00:02.0", "0000:00:04.0"]
    assert "quiesce: unbinding 0000:00:02.0 (storage, driver ahci)" in notes
    assert "quiesce: unbound 0000:00:02.0 from ahci" in notes
    failure = [n for n in notes if n.startswith("quiesce: 0000:00:03.0")]
    assert failure
    assert "No such file or directory" in failure[0]
    assert "going on" in failure[0]
    # What the kernel got: the address, written to the driver's unbind file.
    assert fake.unbind_file("xhci_hcd").read_text() == "0000:00:04.0"


def test_rebind_asks_the_bus_to_probe_again(tmp_path: Path) -> None:
    fake = machine(tmp_path)
    quiesce.rebind(["0000:00:02.0"], fake.root)
    assert (fake.root / "bus" / "pci" / "drivers_probe").read_text() == "0000:00:02.0"


def test_no_sysfs_no_devices(tmp_path: Path) -> None:
    assert quiesce.select(tmp_path) == []
    assert quiesce.quiesce(tmp_path, lambda _: None) == []
