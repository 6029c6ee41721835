"""System information for the operator's screen: machine, firmware, CPUs, memory, kernel, disks, network, watchdogs.

Read from sysfs and procfs only (the kernel's ABI: Documentation/ABI/testing/sysfs-class-dmi, sysfs-block,
sysfs-class-net, sysfs-class-watchdog, and proc(5) for meminfo and cpuinfo), never by running programs. Every reader
takes the roots as parameters so tests use a fake tree. Reads are bounded (READ_LIMIT bytes a file, MAX_ITEMS items
a list); a missing or unreadable file is an empty value, never an error: the screen shows what there is.

The values are frozen dataclasses, sent by the daemon in `sysinfo` (discovery.protocol's codec checks every field's
type on the way in).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

READ_LIMIT = 4096
CPUINFO_LIMIT = 64 * 1024
MAX_ITEMS = 64
MAX_PARTITIONS = 128
# Block devices that are never disks an operator asks about, and those that are only when they hold something.
_NEVER = re.compile(r"^(ram|zram)\d+$")
_WHEN_USED = re.compile(r"^(loop|nbd)\d+$")


@dataclass(frozen=True)
class Machine:
    vendor: str = ""
    product: str = ""
    version: str = ""
    serial: str = ""
    board: str = ""


@dataclass(frozen=True)
class Firmware:
    kind: str = ""  # "UEFI", "BIOS", "devicetree" or "" when unknown
    vendor: str = ""
    version: str = ""
    date: str = ""


@dataclass(frozen=True)
class Partition:
    name: str
    size: int = 0  # bytes
    fstype: str = ""
    found: str = ""  # what the daemon found on it, or why not


@dataclass(frozen=True)
class Disk:
    name: str
    model: str = ""
    size: int = 0  # bytes
    removable: bool = False
    read_only: bool = False
    fstype: str = ""  # a filesystem on the whole disk (no partition table)
    found: str = ""
    partitions: tuple[Partition, ...] = ()


@dataclass(frozen=True)
class Nic:
    name: str
    mac: str = ""
    state: str = ""  # operstate: up, down, dormant, unknown
    carrier: bool | None = None  # None: not known (interface down)
    speed: int | None = None  # Mb/s when the link reports one


@dataclass(frozen=True)
class Watchdog:
    name: str
    identity: str = ""
    timeout: int | None = None  # seconds
    state: str = ""  # active, inactive


@dataclass(frozen=True)
class SystemInfo:
    machine: Machine = field(default_factory=Machine)
    firmware: Firmware = field(default_factory=Firmware)
    cpus: int = 0
    cpu_model: str = ""
    memory: int = 0  # bytes (MemTotal)
    kernel: str = ""  # release
    kernel_version: str = ""  # build string
    architecture: str = ""
    disks: tuple[Disk, ...] = ()
    nics: tuple[Nic, ...] = ()
    watchdogs: tuple[Watchdog, ...] = ()


# --- readers ---


def _read(path: Path, limit: int = READ_LIMIT) -> str:
    try:
        with path.open("rb") as f:
            return f.read(limit).decode("utf-8", "replace").strip().replace("\0", "")
    except OSError:
        return ""


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _listdir(path: Path, limit: int = MAX_ITEMS) -> list[Path]:
    try:
        return sorted(path.iterdir())[:limit]
    except OSError:
        return []


def machine(sys_root: Path) -> Machine:
    dmi = sys_root / "class" / "dmi" / "id"
    product = _read(dmi / "product_name")
    if not product:
        # Devicetree machines (arm64 boards) have no DMI; the devicetree names the board.
        product = _read(sys_root / "firmware" / "devicetree" / "base" / "model")
    board = " ".join(x for x in (_read(dmi / "board_vendor"), _read(dmi / "board_name")) if x)
    return Machine(
        vendor=_read(dmi / "sys_vendor"),
        product=product,
        version=_read(dmi / "product_version"),
        serial=_read(dmi / "product_serial"),
        board=board,
    )


def firmware(sys_root: Path) -> Firmware:
    dmi = sys_root / "class" / "dmi" / "id"
    if (sys_root / "firmware" / "efi").is_dir():
        kind = "UEFI"
    elif dmi.is_dir():
        kind = "BIOS"
    elif (sys_root / "firmware" / "devicetree").is_dir():
        kind = "devicetree"
    else:
        kind = ""
    return Firmware(
        kind=kind, vendor=_read(dmi / "bios_vendor"), version=_read(dmi / "bios_version"), date=_read(dmi / "bios_date")
    )


def cpu_count(sys_root: Path) -> int:
    """CPUs online, from the kernel's range list (`0-3,6`)."""
    text = _read(sys_root / "devices" / "system" / "cpu" / "online")
    count = 0
    for part in text.split(","):
        low, _, high = part.partition("-")
        a, b = _int(low), _int(high or low)
        if a is not None and b is not None and b >= a:
            count += b - a + 1
    return count


def cpu_model(proc_root: Path) -> str:
    for line in _read(proc_root / "cpuinfo", CPUINFO_LIMIT).splitlines():
        key, _, value = line.partition(":")
        # x86: "model name"; arm64 has no model string, some others use "cpu model" or "Hardware".
        if key.strip() in ("model name", "cpu model", "Hardware", "cpu") and value.strip():
            return value.strip()
    return ""


def memory(proc_root: Path) -> int:
    for line in _read(proc_root / "meminfo").splitlines():
        if line.startswith("MemTotal:"):
            words = line.split()
            kib = _int(words[1]) if len(words) > 1 else None
            return (kib or 0) * 1024
    return 0


def disks(sys_root: Path, found: Callable[[str], tuple[str, str]]) -> tuple[Disk, ...]:
    """Every disk with its partitions; `found(name)` gives (fstype, what the daemon found there or why not)."""
    out = []
    for path in _listdir(sys_root / "block"):
        name = path.name
        size = (_int(_read(path / "size")) or 0) * 512  # always in 512-byte sectors (sysfs-block)
        if _NEVER.match(name) or (_WHEN_USED.match(name) and size == 0):
            continue
        model = " ".join(x for x in (_read(path / "device" / "vendor"), _read(path / "device" / "model")) if x)
        parts = []
        for sub in _listdir(path, MAX_PARTITIONS * 2):
            if (sub / "partition").is_file():
                fstype, note = found(sub.name)
                parts.append(Partition(sub.name, (_int(_read(sub / "size")) or 0) * 512, fstype, note))
        fstype, note = found(name)
        out.append(
            Disk(
                name=name,
                model=model,
                size=size,
                removable=_read(path / "removable") == "1",
                read_only=_read(path / "ro") == "1",
                fstype=fstype,
                found=note,
                partitions=tuple(parts[:MAX_PARTITIONS]),
            )
        )
    return tuple(out)


def nics(sys_root: Path) -> tuple[Nic, ...]:
    out = []
    for path in _listdir(sys_root / "class" / "net"):
        if path.name == "lo":
            continue
        carrier = _read(path / "carrier")  # EINVAL (empty here) while the interface is down
        speed = _int(_read(path / "speed"))
        out.append(
            Nic(
                name=path.name,
                mac=_read(path / "address"),
                state=_read(path / "operstate"),
                carrier=None if carrier not in ("0", "1") else carrier == "1",
                speed=speed if speed is not None and speed > 0 else None,
            )
        )
    return tuple(out)


def watchdogs(sys_root: Path) -> tuple[Watchdog, ...]:
    return tuple(
        Watchdog(
            name=path.name,
            identity=_read(path / "identity"),
            timeout=_int(_read(path / "timeout")),
            state=_read(path / "state"),
        )
        for path in _listdir(sys_root / "class" / "watchdog")
    )


def gather(
    sys_root: Path = Path("/sys"),
    proc_root: Path = Path("/proc"),
    found: Callable[[str], tuple[str, str]] = lambda name: ("", ""),
) -> SystemInfo:
    kernel = proc_root / "sys" / "kernel"
    return SystemInfo(
        machine=machine(sys_root),
        firmware=firmware(sys_root),
        cpus=cpu_count(sys_root),
        cpu_model=cpu_model(proc_root),
        memory=memory(proc_root),
        kernel=_read(kernel / "osrelease"),
        kernel_version=_read(kernel / "version"),
        architecture=_read(kernel / "arch") or (os.uname().machine if proc_root == Path("/proc") else ""),
        disks=disks(sys_root, found),
        nics=nics(sys_root),
        watchdogs=watchdogs(sys_root),
    )
