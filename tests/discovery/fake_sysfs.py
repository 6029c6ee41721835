"""A fake sysfs tree for the quiesce and watchdog rules: PCI devices with class and driver links, tty consoles,
watchdog devices. Built the way the kernel lays it out (bus/pci/devices/* are symlinks into devices/pci0000:00/...)."""

from __future__ import annotations

import os
from pathlib import Path


class FakeSysfs:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "bus" / "pci" / "devices").mkdir(parents=True)
        (root / "bus" / "pci" / "drivers").mkdir(parents=True)
        (root / "bus" / "pci" / "drivers_probe").write_text("")
        (root / "class" / "tty" / "console").mkdir(parents=True)
        (root / "class" / "watchdog").mkdir(parents=True)

    def pci(self, address: str, class_code: int, driver: str | None, *, parent: str = "") -> Path:
        """A PCI device, below the bridge `parent` (its address) when given."""
        base = self.root / "devices" / "pci0000:00"
        if parent:
            base = self.device_path(parent)
        path = base / address
        path.mkdir(parents=True)
        (path / "class").write_text(f"0x{class_code:06x}\n")
        os.symlink(
            os.path.relpath(path, self.root / "bus" / "pci" / "devices"), self.root / "bus/pci/devices" / address
        )
        if driver is not None:
            drv = self.root / "bus" / "pci" / "drivers" / driver
            drv.mkdir(exist_ok=True)
            (drv / "unbind").touch()
            os.symlink(os.path.relpath(drv, path), path / "driver")
        return path

    def device_path(self, address: str) -> Path:
        return (self.root / "bus" / "pci" / "devices" / address).resolve()

    def unbind_file(self, driver: str) -> Path:
        return self.root / "bus" / "pci" / "drivers" / driver / "unbind"

    def tty(self, name: str, device: Path | None, *, active: bool = True) -> None:
        tty = self.root / "class" / "tty" / name
        tty.mkdir(parents=True)
        if device is not None:
            os.symlink(os.path.relpath(device, tty), tty / "device")
        if active:
            path = self.root / "class" / "tty" / "console" / "active"
            old = path.read_text().split() if path.exists() else []
            path.write_text(" ".join([*old, name]) + "\n")

    def watchdog(self, name: str, identity: str, bootstatus: int | None) -> None:
        wd = self.root / "class" / "watchdog" / name
        wd.mkdir()
        (wd / "identity").write_text(identity + "\n")
        if bootstatus is not None:
            (wd / "bootstatus").write_text(f"{bootstatus}\n")
