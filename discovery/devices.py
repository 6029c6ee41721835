"""Block devices from udev: enumeration at start, then add/change/remove events, through pyudev with udevd, else
from sysfs and the kernel's uevent socket (KernelSource).

Two worlds (issue 5): with systemd-udevd running, events carry blkid's properties (ID_FS_TYPE, ID_FS_UUID,
ID_FS_LABEL, ID_FS_USAGE, ID_PART_ENTRY_UUID/NAME, ID_BUS, ID_CDROM_MEDIA); in a minimal initramfs only the kernel's
uevents exist (DEVNAME, DEVTYPE, MAJOR, MINOR) and the daemon reads the superblock itself (discovery.superblock).
`UdevSource` is the boundary tests replace: it yields `UEvent`s, plain property maps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from discovery.protocol import DeviceState
from discovery.superblock import Superblock, Usage

log = logging.getLogger(__name__)

# Kernel names that never hold boot configs worth listing.
NOISE_PREFIXES = ("ram", "zram", "loop", "dm-", "md", "nbd")


@dataclass(frozen=True)
class UEvent:
    """One udev or kernel uevent for a block device: `action` and the event's properties; size in bytes if known."""

    action: str
    properties: Mapping[str, str]
    size: int | None = None
    removable: bool = False
    # A whole disk with partitions (sysfs children): without udevd nothing else says it carries a partition table.
    partitioned: bool = False


class UdevSource(Protocol):
    """Where block-device events come from: pyudev on a real system, a fake in tests."""

    def existing(self) -> list[UEvent]: ...

    def fileno(self) -> int: ...

    def receive(self) -> list[UEvent]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class BlockDevice:
    """What the daemon knows about one block device before mounting it."""

    name: str
    node: str
    devtype: str = "partition"
    kind: str = "disk"
    fstype: str = ""
    usage: str = ""
    uuid: str = ""
    label: str = ""
    partuuid: str = ""
    partlabel: str = ""
    size: int | None = None
    removable: bool = False
    has_media: bool = True
    has_partitions: bool = False
    probed: bool = False  # udev (blkid) already identified the content

    @classmethod
    def from_event(cls, event: UEvent) -> BlockDevice:
        p = event.properties
        devname = p.get("DEVNAME", "")
        node = devname if devname.startswith("/") else f"/dev/{devname}" if devname else ""
        name = os.path.basename(node) or p.get("DEVPATH", "").rsplit("/", 1)[-1]
        return cls(
            name=name,
            node=node,
            devtype=p.get("DEVTYPE", "partition"),
            kind=_kind(name, p),
            fstype=p.get("ID_FS_TYPE", ""),
            usage=p.get("ID_FS_USAGE", ""),
            uuid=p.get("ID_FS_UUID", ""),
            label=p.get("ID_FS_LABEL", ""),
            partuuid=p.get("ID_PART_ENTRY_UUID", ""),
            partlabel=p.get("ID_PART_ENTRY_NAME", ""),
            size=event.size,
            removable=event.removable,
            has_media=p.get("ID_CDROM_MEDIA", "1") == "1" if p.get("ID_CDROM") == "1" else True,
            has_partitions=(bool(p.get("ID_PART_TABLE_TYPE")) or event.partitioned) and not p.get("ID_FS_TYPE"),
            probed="ID_FS_TYPE" in p,
        )

    def with_superblock(self, sb: Superblock | None) -> BlockDevice:
        if sb is None:
            return replace(self, probed=True)
        return replace(self, fstype=sb.fstype, uuid=sb.uuid, label=sb.label, probed=True, usage=str(sb.usage))

    @property
    def noise(self) -> bool:
        """Devices not worth listing at all: RAM disks, unused loops, whole disks that carry a partition table."""
        if self.name.startswith(NOISE_PREFIXES) and not self.size:
            return True
        return self.name.startswith(("ram", "zram")) or self.has_partitions

    def skip(self) -> tuple[DeviceState, str] | None:
        """Why this device is not mounted (state and message), or None when it is a candidate."""
        if not self.has_media or (self.size == 0 and (self.removable or self.kind == "cdrom")):
            return DeviceState.IGNORED, "no medium"
        if self.size == 0:
            return DeviceState.IGNORED, "zero size"
        if not self.probed:
            return None
        usage = Usage.of(self.fstype, self.usage)
        if usage is Usage.CRYPTO:
            return DeviceState.LOCKED, f"encrypted ({self.fstype})"
        if usage is Usage.SWAP:
            return DeviceState.IGNORED, "swap"
        if usage is Usage.RAID:
            return DeviceState.IGNORED, f"RAID/LVM member ({self.fstype})"
        if not self.fstype:
            return DeviceState.IGNORED, "no filesystem"
        if usage is not Usage.FILESYSTEM:
            return DeviceState.IGNORED, f"unsupported filesystem {self.fstype}"
        return None


def _kind(name: str, p: Mapping[str, str]) -> str:
    if p.get("ID_CDROM") == "1" or name.startswith("sr"):
        return "cdrom"
    if p.get("ID_BUS") == "usb" or "/usb" in p.get("DEVPATH", ""):
        return "usb"
    if name.startswith("nvme"):
        return "nvme"
    if name.startswith("mmcblk"):
        return "mmc"
    return "disk"


def udevd_running() -> bool:
    """systemd-udevd (or eudev) is up: its control socket exists. Else only kernel uevents are there."""
    return Path("/run/udev/control").exists()


class PyudevSource:
    """Block devices through pyudev; `source` is "udev" (processed events) or "kernel" (raw uevents, no udevd)."""

    def __init__(self, source: str | None = None) -> None:
        import pyudev

        self._context = pyudev.Context()
        self.source = source or ("udev" if udevd_running() else "kernel")
        self._monitor = pyudev.Monitor.from_netlink(self._context, source=self.source)
        self._monitor.filter_by("block")
        self._monitor.start()
        log.info("listening to %s uevents", self.source)

    @staticmethod
    def _event(action: str, device: Any) -> UEvent:
        props = {str(k): str(v) for k, v in device.properties.items()}
        size: int | None = None
        removable = False
        try:
            size = int(device.attributes.asint("size")) * 512
        except (KeyError, ValueError, OSError):
            size = None
        try:
            parent = device if device.device_type == "disk" else device.find_parent("block", "disk")
            removable = parent is not None and parent.attributes.asint("removable") == 1
        except (KeyError, ValueError, OSError):
            removable = False
        partitioned = False
        if device.device_type == "disk":
            with contextlib.suppress(OSError):
                partitioned = any(child.device_type == "partition" for child in device.children)
        return UEvent(action, props, size, removable, partitioned)

    def existing(self) -> list[UEvent]:
        return [self._event("add", d) for d in self._context.list_devices(subsystem="block")]

    def fileno(self) -> int:
        return int(self._monitor.fileno())

    def receive(self) -> list[UEvent]:
        out: list[UEvent] = []
        while True:
            device = self._monitor.poll(timeout=0)
            if device is None:
                return out
            out.append(self._event(str(device.action or "change"), device))

    def close(self) -> None:
        # pyudev's Monitor has no close(); dropping it closes the netlink socket.
        del self._monitor


# <linux/netlink.h>: the kernel's uevents; group 1 is the kernel's own (udevd sends its processed ones on group 2).
NETLINK_KOBJECT_UEVENT = 15
UEVENT_KERNEL_GROUP = 1
UEVENT_BUFFER = 8192  # UEVENT_BUFFER_SIZE is 2048 (<linux/kobject.h>): one message always fits
MAX_BATCH = 256  # messages read per wake-up; the rest wait for the next one
UEVENT_QUEUE_BYTES = 1 << 20  # the socket's receive buffer: a few thousand messages


def parse_uevent(data: bytes) -> dict[str, str] | None:
    """A kernel uevent message, `ACTION@DEVPATH` then NUL-separated KEY=VALUE pairs, as its properties; None when it
    is not one (udevd's `libudev` messages, garbage)."""
    head, _, rest = data.partition(b"\0")
    if b"@" not in head:
        return None
    props: dict[str, str] = {}
    for field in rest.split(b"\0"):
        key, sep, value = field.partition(b"=")
        if sep and key:
            props[key.decode(errors="replace")] = value.decode(errors="replace")
    return props if "ACTION" in props and "DEVPATH" in props else None


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


class KernelSource:
    """Block devices from sysfs and the kernel's uevent netlink socket, for a system without udevd: what pyudev's
    "kernel" source gives (the kernel's properties: DEVNAME, DEVTYPE, MAJOR, MINOR, PARTN...; DEVPATH and SUBSYSTEM;
    DEVNAME as a /dev path), in the standard library. pyudev loads libudev through ctypes, found by running
    ldconfig: 0.6 s of the daemon's start under QEMU TCG (issue 15). `sock`: a datagram socket instead (tests)."""

    source = "kernel"

    def __init__(self, sys_root: Path = Path("/sys"), sock: socket.socket | None = None) -> None:
        self.sys_root = sys_root
        if sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT)
            try:
                # A burst (a USB hub of disks, a rescan) must not overflow the queue before the daemon reads it.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UEVENT_QUEUE_BYTES)
                sock.bind((0, UEVENT_KERNEL_GROUP))
            except OSError:
                sock.close()
                raise
        sock.setblocking(False)
        self._sock = sock
        log.info("listening to kernel uevents")

    def _event(self, action: str, path: str, given: Mapping[str, str]) -> UEvent | None:
        """The event for the device at sysfs `path`, its uevent file's properties under `given` (a netlink message's;
        none at enumeration, where a device without a readable uevent file is left out)."""
        real = os.path.realpath(path)
        props: dict[str, str] = {}
        try:
            with open(f"{real}/uevent", errors="replace") as f:
                for line in f.read().splitlines():
                    key, sep, value = line.partition("=")
                    if sep and key:
                        props[key] = value
        except OSError:
            if not given:
                return None
        props.update(given)
        props.setdefault("DEVPATH", real.removeprefix(str(self.sys_root)))
        props.setdefault("SUBSYSTEM", "block")
        if props.get("DEVNAME") and not props["DEVNAME"].startswith("/"):
            props["DEVNAME"] = f"/dev/{props['DEVNAME']}"
        if action == "remove":
            return UEvent(action, props)
        sectors = _read_int(f"{real}/size")
        disk = real if props.get("DEVTYPE") == "disk" else os.path.dirname(real)
        partitioned = False
        if props.get("DEVTYPE") == "disk":
            with contextlib.suppress(OSError):
                partitioned = any(os.path.isfile(f"{real}/{child}/partition") for child in os.listdir(real))
        size = None if sectors is None else sectors * 512  # sysfs counts 512-byte sectors whatever the block size
        return UEvent(action, props, size, _read_int(f"{disk}/removable") == 1, partitioned)

    def existing(self) -> list[UEvent]:
        block = self.sys_root / "class" / "block"
        try:
            names = sorted(os.listdir(block))
        except OSError:
            return []
        events = (self._event("add", str(block / name), {}) for name in names)
        return [e for e in events if e is not None]

    def fileno(self) -> int:
        return self._sock.fileno()

    def receive(self) -> list[UEvent]:
        out: list[UEvent] = []
        for _ in range(MAX_BATCH):
            try:
                data, sender = self._sock.recvfrom(UEVENT_BUFFER)
            except BlockingIOError:
                break
            except OSError as exc:  # ENOBUFS: the kernel dropped messages; a rescan reads sysfs again
                log.warning("kernel uevents: %s", exc.strerror or exc)
                break
            if isinstance(sender, tuple) and sender[0] != 0:
                continue  # only the kernel (netlink port 0) sends uevents; anything else is forged
            props = parse_uevent(data)
            if props is None or props.get("SUBSYSTEM") != "block":
                continue
            event = self._event(props["ACTION"], f"{self.sys_root}{props['DEVPATH']}", props)
            if event is not None:
                out.append(event)
        return out

    def close(self) -> None:
        self._sock.close()


def open_source(choice: str | None = None) -> UdevSource:
    """The block-device source: pyudev with udevd's events ("udev"; the default while udevd runs), else the kernel's
    own uevents read without libudev."""
    if choice == "udev" or (choice is None and udevd_running()):
        return PyudevSource("udev")
    return KernelSource()
