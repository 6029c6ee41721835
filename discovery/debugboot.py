"""Debug boot: the words added to an entry's command line so that its kernel says as much as it can, early.

Kernel parameters (Documentation/admin-guide/kernel-parameters.txt): `ignore_loglevel` prints every message whatever
`quiet` or `loglevel=` say; `earlycon=uart8250,io|mmio|mmio32,ADDR,OPTIONS` (8250 UARTs, the address from the tty's
sysfs `port`/`iomem_base` and `io_type`, drivers/tty/serial/8250) or a bare `earlycon` (the devicetree's stdout-path
or ACPI SPCR, on arm64 and riscv) gives output before the console driver loads; x86's `earlyprintk=vga` covers a VT;
`panic=30` reboots 30 s after a panic, so the firmware and this menu come back; `initcall_debug` logs every initcall
(only on request: it is very verbose and slows the boot).
"""

from __future__ import annotations

import enum
import platform
import re
from pathlib import Path

PANIC_SECONDS = 30
DEFAULT_SERIAL_OPTIONS = "115200n8"
# 8250 io_type values (include/uapi/linux/serial.h: UPIO_PORT, UPIO_MEM, UPIO_MEM32) as earlycon names them.
_IO_TYPES = {"0": "io", "2": "mmio", "3": "mmio32"}
# Words a debug boot replaces rather than duplicates; `quiet` is dropped.
_REPLACED = ("panic", "earlycon", "earlyprintk", "loglevel")


class Console(enum.StrEnum):
    """The kind of console the menu runs on, which decides the early console words."""

    SERIAL = "serial"  # ttyS<n>: an 8250 UART
    VT = "vt"  # tty<n>: the VGA/framebuffer console
    OTHER = "other"  # ttyAMA0, hvc0, ...: leave it to the firmware's description (bare earlycon)

    @classmethod
    def of(cls, name: str) -> Console:
        if re.fullmatch(r"ttyS\d+", name):
            return cls.SERIAL
        if re.fullmatch(r"tty\d*|console", name):
            return cls.VT
        return cls.OTHER


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def serial_options(name: str, cmdline: str) -> str:
    """The `console=NAME,OPTIONS` options of the running kernel (its speed), else 115200n8."""
    for word in cmdline.split():
        key, _, value = word.partition("=")
        if key == "console":
            tty, _, options = value.partition(",")
            if tty == name and options:
                return options
    return DEFAULT_SERIAL_OPTIONS


def early_console_words(name: str, *, cmdline: str, sysfs: Path = Path("/sys"), machine: str = "") -> tuple[str, ...]:
    """The earlycon/earlyprintk words for the console `name` (a tty name such as ttyS0 or tty1)."""
    arch = machine or platform.machine()
    x86 = arch in ("x86_64", "i686", "i386")
    kind = Console.of(name)
    if kind is Console.SERIAL:
        tty = sysfs / "class" / "tty" / name
        io = _IO_TYPES.get(_read(tty / "io_type") or "")
        address = _read(tty / ("port" if io == "io" else "iomem_base"))
        options = serial_options(name, cmdline)
        if io is not None and address is not None and int(address, 16) != 0:
            return (f"earlycon=uart8250,{io},{address.lower()},{options}",)
        if x86 and name in ("ttyS0", "ttyS1"):
            speed = re.match(r"\d*", options)
            return (f"earlyprintk=serial,{name},{speed[0] if speed and speed[0] else '115200'}",)
        return ("earlycon",)
    if kind is Console.VT:
        return ("earlyprintk=vga",) if x86 else ()
    return ("earlycon",)


def debug_words(
    console: str, *, initcall: bool = False, cmdline: str = "", sysfs: Path = Path("/sys"), machine: str = ""
) -> tuple[str, ...]:
    """Every word a debug boot adds, in the order they are appended."""
    words = ["ignore_loglevel", *early_console_words(console, cmdline=cmdline, sysfs=sysfs, machine=machine)]
    words.append(f"panic={PANIC_SECONDS}")
    if initcall:
        words.append("initcall_debug")
    return tuple(words)


def with_debug(cmdline: str, words: tuple[str, ...]) -> str:
    """`cmdline` with `words` appended; `quiet` and words the debug words replace (panic=, earlycon...) removed."""
    replaced = {w.partition("=")[0] for w in words if w.partition("=")[0] in _REPLACED}
    kept = [w for w in cmdline.split() if w != "quiet" and w.partition("=")[0] not in replaced and w not in set(words)]
    return " ".join([*kept, *words])
