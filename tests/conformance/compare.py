"""One comparison of a real boot loader's menu with bootmenu's entries, shared by every conformance harness.

A harness (grub-emu here; syslinux, systemd-boot, U-Boot alike) turns what the real loader did into a `Menu`: each
Linux item as a `Row` (menu path, kernel, initrds, the command line the kernel receives), the items it lists that
boot no Linux kernel (bootmenu does not list those), and the path of its default. `compare` holds that against
bootmenu's `BootEntry` list and gives a `Verdict` (identical / explained / different, with the differing rows);
`record` keeps it for the report per loader that conftest.py prints after the run (`make conformance`).

Rules every loader shares:
- Order, titles, submenu nesting, kernel, initrds and the command line must be equal.
- When the loader's default boots no Linux kernel (a chainloader, a firmware setup entry), bootmenu marks its first
  Linux entry instead (discovery/grub/loader.py, so that autoboot can still boot something): that is what is
  expected of it then.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from discovery.entry import BootEntry

Path = tuple[str, ...]


@dataclass(frozen=True)
class Row:
    """One Linux menu item as both sides can state it."""

    path: Path  # submenu titles, then the entry's title
    kernel: str  # "device:/path" (or just the path when a loader cannot name devices)
    initrds: tuple[str, ...]
    cmdline: str  # what the kernel receives, the loader's own words (BOOT_IMAGE=, initrd=) included

    def __str__(self) -> str:
        return str((self.path, self.kernel, self.initrds, self.cmdline))


@dataclass(frozen=True)
class Menu:
    """A real loader's answer for one config."""

    rows: tuple[Row, ...]
    default: Path = ()
    others: frozenset[Path] = field(default_factory=frozenset)  # listed items that boot no Linux kernel

    def expected_default(self) -> Path:
        if self.default in self.others and self.rows:
            return self.rows[0].path
        return self.default


class Kind(StrEnum):
    IDENTICAL = "identical"
    EXPLAINED = "explained"
    DIFFERENT = "different"


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    reason: str = ""  # why it is explained (or, for a known open difference, what is known of it)
    lines: tuple[str, ...] = ()  # the differences, one per line

    def describe(self) -> str:
        text = f"{self.kind}: {self.reason}" if self.reason else str(self.kind)
        return "\n".join([text, *self.lines]) if self.kind is Kind.DIFFERENT else text


def entry_row(entry: BootEntry, *, device: bool = True) -> Row:
    kernel = f"{entry.device}:{entry.kernel}" if device else entry.kernel
    return Row((*entry.submenu, entry.title), kernel, entry.initrds, entry.kernel_cmdline())


def differences(theirs: Menu, entries: Sequence[BootEntry], row: Callable[[BootEntry], Row] = entry_row) -> list[str]:
    """What differs, one line each (empty when bootmenu agrees with the loader)."""
    mine = [row(e) for e in entries]
    default = next(((*e.submenu, e.title) for e in entries if e.default), ())
    expected = theirs.expected_default()
    lines: list[str] = []
    if list(theirs.rows) != mine:
        lines += [f"  loader:   {r}" for r in theirs.rows if r not in mine]
        lines += [f"  bootmenu: {r}" for r in mine if r not in theirs.rows]
        if not lines:
            lines.append("  same entries, different order:")
            lines += [f"  loader:   {r.path}" for r in theirs.rows]
            lines += [f"  bootmenu: {r.path}" for r in mine]
    if theirs.rows and default != expected:
        lines.append(f"  default: loader {theirs.default}, bootmenu {default}")
    return lines


def compare(
    theirs: Menu,
    entries: Sequence[BootEntry],
    *,
    explained: str | None = None,
    row: Callable[[BootEntry], Row] = entry_row,
) -> Verdict:
    """The verdict on one config: identical, or else explained when a reason is recorded, else different."""
    lines = differences(theirs, entries, row)
    if not lines:
        return Verdict(Kind.IDENTICAL)
    if explained:
        return Verdict(Kind.EXPLAINED, explained)
    return Verdict(Kind.DIFFERENT, lines=tuple(lines))


@dataclass(frozen=True)
class Record:
    loader: str  # e.g. "GRUB 2.06 (grub-emu)"
    config: str  # fixture or corpus key
    where: str  # device:config within it, or "-"
    verdict: Verdict


# Every verdict of this run, totalled per loader by conftest.py.
RECORDS: list[Record] = []


def record(loader: str, config: str, where: str, verdict: Verdict) -> Verdict:
    """Keep the verdict for the report after the run (conftest.py)."""
    RECORDS.append(Record(loader, config, where, verdict))
    return verdict


def report() -> list[str]:
    """What `make conformance` prints after the run: per loader, a line per config (identical / explained with its
    reason / different with the differing rows), then that loader's totals."""
    lines = []
    for loader in dict.fromkeys(r.loader for r in RECORDS):
        records = sorted((r for r in RECORDS if r.loader == loader), key=lambda r: (r.config, r.where))
        lines.append(f"== {loader}")
        lines += [f"{r.config} {r.where}: {r.verdict.describe()}" for r in records]
        counts = Counter(r.verdict.kind for r in records)
        lines.append(f"{loader}: {len(records)} configs: " + ", ".join(f"{counts[k]} {k}" for k in Kind))
    return lines
