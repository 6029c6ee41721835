"""syslinux's SYSAPPEND words (`SYSUUID=`, `CPU=`, `SYSVENDOR=`, ...), made from this machine's firmware tables.

syslinux 6.04 adds, per bit of a label's SYSAPPEND (or IPAPPEND) mask, one word it made at start-up (core/dmi.c,
core/sysappend.c, com32/include/syslinux/sysappend.h for the bit numbers; com32/menu/readconfig.c and
com32/elflink/ldlinux/readconfig.c, record(), for where they go: after APPEND and ` initrd=`):

- bit 0 `ip=` and bit 1 `BOOTIF=` come from the PXE stack (PXELINUX only): none here.
- bit 2 `SYSUUID=`: the 16 bytes at offset 8 of the SMBIOS type 1 structure, as stored, in lowercase hex grouped
  4-2-2-2-6 with dashes (no byte swapping: not the order Linux shows in product_uuid for SMBIOS 2.6+); none unless
  byte 6 is in 0x10..0xef (a UUID with a version).
- bit 3 `CPU=`: the CPU family digit (6 for family 6 and above) then P (PAE), V (VMX), T (SMX), X (NX), L (long mode),
  S (SVM) for the CPUID flags present, in that order; here from the kernel's /proc/cpuinfo (`cpu family`, `flags`:
  pae vmx smx nx lm svm), which hides a flag the kernel disabled (vmx when the firmware locked VMX off).
- bits 4-16: strings of the first structure of their type long enough to hold the field: type 1 offsets 4, 5, 6, 7,
  0x19, 0x1a (SYSVENDOR, SYSPRODUCT, SYSVERSION, SYSSERIAL, SYSSKU, SYSFAMILY), type 2 offsets 4-8 (MBVENDOR,
  MBPRODUCT, MBVERSION, MBSERIAL, MBASSET), type 0 offsets 4, 5 (BIOSVENDOR, BIOSVERSION). Leading and trailing
  blanks and control characters are dropped, an empty string gives no word, and inside a word every run of them
  becomes one `_` (`Standard PC (i440FX + PIIX, 1996)` -> `Standard_PC_(i440FX_+_PIIX,_1996)`).
- bit 17 `SYSFF=`: the chassis type (type 3, offset 5) without its lock bit, in decimal; none when 0.
- bit 18 `FSUUID=`: the UUID of the filesystem syslinux booted from (FAT and ext2/3/4 only): see syslinux.py.

The table is Linux's copy of the firmware's SMBIOS structure table, /sys/firmware/dmi/tables/DMI (root only), read
once with a bound; a missing or unreadable table or cpuinfo gives no words, never an error.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DMI_TABLE = Path("/sys/firmware/dmi/tables/DMI")
CPUINFO = Path("/proc/cpuinfo")
TABLE_LIMIT = 1 << 20  # SMBIOS 2 tables are at most 64 KiB; SMBIOS 3 ones rarely more than a few
CPUINFO_LIMIT = 64 * 1024  # the first processor's block is what is read
MAX_STRUCTURES = 4096

# Bit numbers of the SYSAPPEND mask (com32/include/syslinux/sysappend.h).
SYSUUID, CPU, SYSFF, FSUUID = 2, 3, 17, 18
# (bit, word prefix, structure type, offset of the string number) as core/dmi.c lists them.
STRINGS = (
    (4, "SYSVENDOR=", 1, 0x04),
    (5, "SYSPRODUCT=", 1, 0x05),
    (6, "SYSVERSION=", 1, 0x06),
    (7, "SYSSERIAL=", 1, 0x07),
    (8, "SYSSKU=", 1, 0x19),
    (9, "SYSFAMILY=", 1, 0x1A),
    (10, "MBVENDOR=", 2, 0x04),
    (11, "MBPRODUCT=", 2, 0x05),
    (12, "MBVERSION=", 2, 0x06),
    (13, "MBSERIAL=", 2, 0x07),
    (14, "MBASSET=", 2, 0x08),
    (15, "BIOSVENDOR=", 0, 0x04),
    (16, "BIOSVERSION=", 0, 0x05),
)
CPU_FLAGS = (("pae", "P"), ("vmx", "V"), ("smx", "T"), ("nx", "X"), ("lm", "L"), ("svm", "S"))
_BLANKS = re.compile(r"[\x00-\x20\x7f]+")
END_OF_TABLE = 127


def mangled(text: str) -> str:
    """A value as syslinux writes it in a word: blanks and control characters trimmed, inner runs made one `_`."""
    return _BLANKS.sub("_", text.strip("".join(map(chr, range(0x21))) + "\x7f"))


@dataclass(frozen=True)
class Structure:
    """One SMBIOS structure: its type, its formatted area (header included) and its strings (numbered from 1)."""

    type: int
    formatted: bytes
    strings: tuple[bytes, ...]

    def data(self, offset: int, length: int) -> bytes | None:
        end = offset + length
        return self.formatted[offset:end] if offset >= 2 and end <= len(self.formatted) else None

    def string(self, offset: int) -> str | None:
        """The string the byte at `offset` numbers; None when absent (number 0, or past the strings)."""
        if offset < 2 or offset >= len(self.formatted):
            return None
        number = self.formatted[offset]
        if not number or number > len(self.strings):
            return None
        return self.strings[number - 1].decode("latin-1")


def structures(table: bytes) -> Iterator[Structure]:
    """The structures of a table, up to the end-of-table one (type 127) or the first malformed header."""
    at = 0
    for _ in range(MAX_STRUCTURES):
        if at + 4 > len(table):
            return
        kind, length = table[at], table[at + 1]
        if kind == END_OF_TABLE or length < 4 or at + length > len(table):
            return
        formatted = table[at : at + length]
        end = table.find(b"\0\0", at + length)
        if end < 0:
            return
        area = table[at + length : end]
        yield Structure(kind, formatted, tuple(area.split(b"\0")) if area else ())
        at = end + 2


def _first(table: bytes, kind: int, fits: int) -> Structure | None:
    """The first structure of `kind` whose formatted area reaches past `fits` (core/dmi.c skips shorter ones)."""
    return next((s for s in structures(table) if s.type == kind and len(s.formatted) > fits), None)


def uuid_word(table: bytes) -> str | None:
    structure = _first(table, 1, 0x08 + 15)
    raw = structure.data(0x08, 16) if structure else None
    if raw is None or not 0x10 <= raw[6] < 0xF0:
        return None
    h = raw.hex()
    return f"SYSUUID={h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def cpu_word(cpuinfo: str) -> str | None:
    """`CPU=` from the first processor of /proc/cpuinfo; None when it is not an x86 one (no `cpu family`)."""
    block = cpuinfo.split("\n\n", 1)[0]
    fields = {}
    for line in block.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    family = fields.get("cpu family", "")
    if not family.isdigit():
        return None
    flags = set(fields.get("flags", "").split())
    digit = "6" if int(family) >= 6 else family
    return "CPU=" + digit + "".join(letter for flag, letter in CPU_FLAGS if flag in flags)


@dataclass(frozen=True)
class Sysappend:
    """The words syslinux would have made on this machine, by SYSAPPEND bit (FSUUID, per filesystem, is not here)."""

    words: tuple[tuple[int, str], ...] = ()

    def get(self, bit: int) -> str | None:
        return next((w for b, w in self.words if b == bit), None)

    @classmethod
    def from_tables(cls, table: bytes, cpuinfo: str = "") -> Sysappend:
        words: dict[int, str] = {}
        if (cpu := cpu_word(cpuinfo)) is not None:
            words[CPU] = cpu
        if table:
            if (uuid := uuid_word(table)) is not None:
                words[SYSUUID] = uuid
            chassis = _first(table, 3, 0x05)
            raw = chassis.data(0x05, 1) if chassis else None
            if raw and raw[0] & 0x7F:
                words[SYSFF] = f"SYSFF={raw[0] & 0x7F}"
            for bit, prefix, kind, offset in STRINGS:
                structure = _first(table, kind, offset)
                text = structure.string(offset) if structure else None
                if text is not None and (value := mangled(text)):
                    words[bit] = prefix + value
        return cls(tuple(sorted(words.items())))

    @classmethod
    def detect(cls, table: Path = DMI_TABLE, cpuinfo: Path = CPUINFO) -> Sysappend:
        """This machine's words: the DMI table and cpuinfo read with a bound; what cannot be read gives none."""
        return cls.from_tables(_read(table, TABLE_LIMIT), _read(cpuinfo, CPUINFO_LIMIT).decode("latin-1"))


@functools.cache
def machine() -> Sysappend:
    """This machine's words, read once per process (the firmware's tables do not change while it runs)."""
    return Sysappend.detect()


def _read(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(limit)
    except OSError:  # ENOENT without DMI or on non-x86, EACCES when not root: no words
        return b""
