"""bootmenu's syslinux loader against real syslinux 6.04 booted in QEMU TCG, on every fixture with a syslinux config.

Real syslinux's answers (menu order, titles, submenus, the default, what each booted kernel received: /proc/cmdline
with BOOT_IMAGE= and initrd=, and which initrds it was given) are recorded in tests/data/syslinux_conformance.json,
keyed by a hash of the tree, so `make test` compares without booting (a changed tree is skipped, named, until
`make conformance` boots and records it). Every difference is fixed in bootmenu or listed with its reason in
tests/data/syslinux_conformance.toml. See tests/conformance/syslinux_qemu.py for how syslinux is driven.
"""

from __future__ import annotations

import os
import posixpath
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from discovery import syslinux
from discovery.dmi import Sysappend
from discovery.entry import BootEntry
from discovery.fs import Filesystem
from discovery.scan import filesystem_for
from tests.conformance import syslinux_qemu
from tests.conformance.compare import Kind, Menu, Row, Verdict, compare, record

REPO = syslinux_qemu.REPO
# The small cases of the issue first (a recording run cut short still has them), then the distribution fixtures.
FIXTURE_DIRS = (REPO / "tests" / "fixtures" / "syslinux", REPO / "tests" / "fixtures" / "distros")
ANSWERS = REPO / "tests" / "data" / "syslinux_conformance.json"
EXPLAINED = REPO / "tests" / "data" / "syslinux_conformance.toml"
LOADER = "syslinux 6.04 (QEMU)"
# What a `silent` item of an answer recorded before the harness read the boot header shows for the command line.
NOT_OBSERVED = "<no initrd: the kernel says nothing on the serial console>"
RECORD = "BOOTMENU_SYSLINUX_RECORD"  # set by `make conformance`: boot and record answers that are missing
# Rows hold the initrds as a sorted set: the test initrds' markers say which files the kernel got, not in which order
# (the order is in the command line's initrd= and in syslinux's "Loading" lines).


def filesystems_of(fixture: Path) -> list[Path]:
    return sorted(p for p in fixture.iterdir() if p.is_dir())


def cases() -> list[tuple[Path, Path, str]]:
    """(fixture, filesystem tree, config) of every syslinux-family config of the fixtures."""
    out = []
    for base in FIXTURE_DIRS:
        if not base.is_dir():
            continue
        for fixture in sorted(base.iterdir()):
            for tree in filesystems_of(fixture):
                for config in syslinux.find_configs(filesystem_for(tree)):
                    out.append((fixture, tree, config))
    return out


CASES = cases()


def _initrds(item: syslinux_qemu.Item) -> tuple[str, ...]:
    """The initrds' markers as paths within the filesystem (a marker keeps the name's `..`, as the config wrote it)."""
    return tuple(sorted(posixpath.normpath(p) for p in item.initrds))


def syslinux_menu(answer: syslinux_qemu.Answer) -> Menu:
    """Real syslinux's answer as the shared comparison's Menu: each item that booted Linux a Row (the kernel is not
    observable beyond BOOT_IMAGE=, so it is left out), the items that booted nothing else, the default's path (the
    item whose boot the default run repeated; a default that no item repeats keeps its own name)."""
    rows = []
    others = set()
    for item in answer.items:
        if item.outcome == "linux" and item.cmdline is not None:
            rows.append(Row(item.path, "", _initrds(item), item.cmdline))
        elif item.outcome == "silent":
            rows.append(Row(item.path, "", (), NOT_OBSERVED))
        else:
            others.add(item.path)
    want = syslinux_default(answer)
    default: tuple[str, ...] = ()
    if want is not None:
        default = next((r.path for r in rows if (r.cmdline, r.initrds) == want), (f"<default boots: {want[0]}>",))
    return Menu(rows=tuple(rows), default=default, others=frozenset(others))


def bootmenu_row(answer: syslinux_qemu.Answer) -> Callable[[BootEntry], Row]:
    """bootmenu's entry as a Row; one without an initrd whose item syslinux booted `silent` (an answer recorded
    before the harness read the boot header, or nothing seen) shows the command line as not observed."""
    silent = {i.path for i in answer.items if i.outcome == "silent"}

    def row(e: BootEntry) -> Row:
        path: tuple[str, ...] = (e.id or e.title,) if answer.ui == "prompt" else (*e.submenu, e.title)
        cmdline = NOT_OBSERVED if not e.initrds and path in silent else e.kernel_cmdline()
        return Row(path, "", tuple(sorted(e.initrds)), cmdline)

    return row


def default_row(entries: tuple[BootEntry, ...], silent: bool = False) -> tuple[str, tuple[str, ...]] | None:
    e = next((e for e in entries if e.default), None)
    if e is None:
        return None
    return (NOT_OBSERVED if silent and not e.initrds else e.kernel_cmdline(), tuple(sorted(e.initrds)))


def syslinux_default(answer: syslinux_qemu.Answer) -> tuple[str, tuple[str, ...]] | None:
    d = answer.default
    if d is not None and d.outcome == "silent":
        return (NOT_OBSERVED, ())
    if d is None or d.outcome != "linux" or d.cmdline is None:
        return None
    return (d.cmdline, _initrds(d))


def machine_of(answer: syslinux_qemu.Answer) -> Sysappend:
    """The SYSAPPEND words bootmenu makes on the machine syslinux ran on: from the SMBIOS table recorded with the
    answer (QEMU's, as the harness set it: syslinux_qemu.SMBIOS). CPU= is left out: bootmenu reads it from the
    kernel's cpuinfo, which the harness does not record (tests/discovery/test_sysappend.py covers it)."""
    return Sysappend.from_tables(bytes.fromhex(answer.dmi)) if answer.dmi else Sysappend()


def explanations() -> dict[str, Any]:
    return tomllib.loads(EXPLAINED.read_text()) if EXPLAINED.is_file() else {}


def answer_for(key: str, tree: Path, config: str, fs: Filesystem) -> syslinux_qemu.Answer:
    cache = syslinux_qemu.load_answers(ANSWERS)
    if key in cache:
        return cache[key][0]
    if not os.environ.get(RECORD) or not syslinux_qemu.available():
        # Recording boots each item (about 10 s under TCG): `make conformance` does it (it sets RECORD), `make test`
        # compares recorded answers only and names what is missing.
        pytest.skip(f"no recorded syslinux answer for {key}: `make conformance` records it")
    progress = syslinux_qemu.progress_file(key)
    with syslinux_qemu.scratch_dir() as tmp:
        answer = syslinux_qemu.answer_config(
            tree, config, fs.fstype or "", fs.name, Path(tmp), progress=progress, uuid=fs.uuid
        )
    prefix = key.split("@", 1)[0] + "@"
    cache = {k: v for k, v in syslinux_qemu.load_answers(ANSWERS).items() if not k.startswith(prefix)}
    cache[key] = [answer]
    syslinux_qemu.save_answers(ANSWERS, cache)
    progress.unlink(missing_ok=True)
    return answer


def verdict_of(answer: syslinux_qemu.Answer, entries: tuple[BootEntry, ...], explained: str | None) -> Verdict:
    """The shared comparison; a config whose default boots at once (no menu, no prompt) is judged by its default."""
    if answer.ui == "direct":
        silent = answer.default is not None and answer.default.outcome == "silent"
        want, have = syslinux_default(answer), default_row(entries, silent)
        if want == have:
            return Verdict(Kind.IDENTICAL)
        if explained:
            return Verdict(Kind.EXPLAINED, explained)
        return Verdict(Kind.DIFFERENT, lines=(f"  default: syslinux {want}, bootmenu {have}",))
    return compare(syslinux_menu(answer), entries, explained=explained, row=bootmenu_row(answer))


@pytest.mark.parametrize(("fixture", "tree", "config"), CASES, ids=[f"{f.name}:{t.name}:{c}" for f, t, c in CASES])
def test_fixture_menu_matches_real_syslinux(fixture: Path, tree: Path, config: str) -> None:
    fs = filesystem_for(tree)
    where = f"{tree.name}:{config}"
    key = f"{fixture.name}:{where}@{syslinux_qemu.tree_digest(tree, config)}"
    answer = answer_for(key, tree, config, fs)
    entries = syslinux.load_config(fs, config, sysappend=machine_of(answer)).entries
    explained = explanations().get(fixture.name, {})
    verdict = record(LOADER, fixture.name, where, verdict_of(answer, entries, explained.get(where)))
    print(f"syslinux-conformance {fixture.name} {where}: {verdict.describe()}")
    assert not verdict.lines, f"{fixture.name} {where}:\n" + "\n".join(verdict.lines)
    assert not (verdict.kind is Kind.IDENTICAL and where in explained), "identical now: remove its reason"
