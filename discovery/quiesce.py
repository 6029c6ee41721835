"""Quiesce before the jump: unbind the drivers of DMA-capable PCI devices, so that their `remove()` runs.

The kexec path (kernel_kexec -> device_shutdown) calls each driver's `shutdown()`; many DMA-capable drivers have none
and leave DMA and interrupts running into the next kernel, which then finds memory scribbled on or an interrupt storm.
Every driver has `remove()`, which unbinding runs: writing the device's address to its driver's `unbind` file
(Documentation/ABI/testing/sysfs-bus-pci). Chosen by PCI class code (PCI Code and ID Assignment specification): mass
storage (base class 0x01), network (0x02), USB controllers (0x0c03) and Fibre Channel (0x0c04). Never the device behind
an active console (a USB serial adapter's host controller, a PCI UART), or the last words before the jump would be
lost. A failure is logged and the boot goes on; `rebind` asks the bus to probe again when the jump itself failed.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SYSFS = Path("/sys")


class Quiesce(enum.StrEnum):
    """The `quiesce` setting."""

    UNBIND = "unbind"
    OFF = "off"


class DmaKind(enum.StrEnum):
    """The DMA-capable PCI device kinds whose drivers are unbound, by class code (base, subclass)."""

    STORAGE = "storage"
    NETWORK = "network"
    USB = "USB controller"
    FIBRE_CHANNEL = "Fibre Channel"

    @classmethod
    def of(cls, class_code: int) -> DmaKind | None:
        """The kind for a 24-bit class code (base << 16 | subclass << 8 | prog-if), None when not unbound."""
        base, sub = class_code >> 16, (class_code >> 8) & 0xFF
        if base == 0x01:
            return cls.STORAGE
        if base == 0x02:
            return cls.NETWORK
        if base == 0x0C and sub == 0x03:
            return cls.USB
        if base == 0x0C and sub == 0x04:
            return cls.FIBRE_CHANNEL
        return None


@dataclass(frozen=True)
class PciDevice:
    """One device under /sys/bus/pci/devices: its address, real sysfs path, class code and bound driver."""

    address: str
    path: Path
    class_code: int
    driver: str | None

    @property
    def kind(self) -> DmaKind | None:
        return DmaKind.of(self.class_code)

    def label(self) -> str:
        return f"{self.address} ({self.kind or f'class {self.class_code:06x}'}, driver {self.driver or 'none'})"


@dataclass(frozen=True)
class Choice:
    """What quiesce does with one DMA-capable device, and why."""

    device: PciDevice
    unbind: bool
    reason: str


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def sysfs_write(path: Path, text: str) -> None:
    """write(2) of `text` to a sysfs attribute; raises OSError naming the file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise OSError(exc.errno, f"open: {exc.strerror}", str(path)) from None
    try:
        os.write(fd, text.encode())
    except OSError as exc:
        raise OSError(exc.errno, f"write {text!r}: {exc.strerror}", str(path)) from None
    finally:
        os.close(fd)


def pci_devices(sysfs: Path = SYSFS) -> Iterator[PciDevice]:
    base = sysfs / "bus" / "pci" / "devices"
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return
    for name in names:
        link = base / name
        code = _read(link / "class")
        try:
            class_code = int(code, 16) if code else -1
        except ValueError:
            class_code = -1
        driver = link / "driver"
        yield PciDevice(
            address=name,
            path=link.resolve(),
            class_code=class_code,
            driver=driver.resolve().name if driver.exists() else None,
        )


def console_devices(sysfs: Path = SYSFS) -> dict[Path, str]:
    """The real sysfs device path of each active console (/sys/class/tty/console/active), with its tty name."""
    active = (_read(sysfs / "class" / "tty" / "console" / "active") or "").split()
    out: dict[Path, str] = {}
    for name in active:
        device = sysfs / "class" / "tty" / name / "device"
        if device.exists():
            out[device.resolve()] = name
    return out


def select(sysfs: Path = SYSFS) -> list[Choice]:
    """Every DMA-capable PCI device with a driver, deepest in the tree first, with the decision for it."""
    consoles = console_devices(sysfs)
    choices = []
    for device in pci_devices(sysfs):
        if device.kind is None or device.driver is None:
            continue
        behind = [tty for path, tty in consoles.items() if path == device.path or device.path in path.parents]
        if behind:
            choices.append(Choice(device, False, f"kept: the active console {behind[0]} is behind it"))
        else:
            choices.append(Choice(device, True, f"unbind {device.driver}"))
    # Children before their parents (a controller behind a bridge before anything upstream).
    choices.sort(key=lambda c: (-len(c.device.path.parts), c.device.address))
    return choices


def quiesce(sysfs: Path = SYSFS, note: Callable[[str], None] = log.info) -> list[str]:
    """Unbind every selected driver, each one announced through `note` before and after; returns the addresses
    unbound. Failures are announced and skipped."""
    done = []
    for choice in select(sysfs):
        device = choice.device
        if not choice.unbind:
            note(f"quiesce: {device.label()} {choice.reason}")
            continue
        note(f"quiesce: unbinding {device.label()}")
        try:
            sysfs_write(device.path / "driver" / "unbind", device.address)
        except OSError as exc:
            note(f"quiesce: {device.address}: {exc.filename}: {exc.strerror}; going on")
            continue
        note(f"quiesce: unbound {device.address} from {device.driver}")
        done.append(device.address)
    return done


def rebind(addresses: list[str], sysfs: Path = SYSFS, note: Callable[[str], None] = log.info) -> None:
    """After a failed jump: ask the PCI bus to find drivers for the devices again (drivers_probe)."""
    for address in addresses:
        try:
            sysfs_write(sysfs / "bus" / "pci" / "drivers_probe", address)
        except OSError as exc:
            note(f"quiesce: cannot rebind {address}: {exc.filename}: {exc.strerror}")
