"""bootmenu's syslinux loader against real syslinux 6.04 booted in QEMU TCG, on every fixture with a syslinux config.

Real syslinux's answers (menu order, titles, submenus, the default, what each booted kernel received: /proc/cmdline
with BOOT_IMAGE= and initrd=, and which initrds it was given) are recorded in tests/data/syslinux_conformance.json,
keyed by a hash of the tree, so `make test` compares without booting; a changed tree is booted again (when the
packages are here: `make conformance`). Every difference is fixed in bootmenu or listed with its reason in
tests/data/syslinux_conformance.toml. See tests/conformance/syslinux_qemu.py for how syslinux is driven.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from discovery import syslinux
from discovery.entry import BootEntry
from discovery.fs import Filesystem
from discovery.scan import filesystem_for
from tests.conformance import syslinux_qemu
from tests.conformance.test_grub_conformance import VERDICTS

REPO = syslinux_qemu.REPO
FIXTURE_DIRS = (REPO / "tests" / "fixtures" / "distros", REPO / "tests" / "fixtures" / "syslinux")
ANSWERS = REPO / "tests" / "data" / "syslinux_conformance.json"
EXPLAINED = REPO / "tests" / "data" / "syslinux_conformance.toml"
NOT_OBSERVED = "<no initrd: the kernel says nothing on the serial console>"
# (menu path, what the kernel received, the initrds it was given as a sorted set: the test initrds' markers say which
# files, not in which order; the order is in the command line's initrd= and in syslinux's "Loading" lines).
Row = tuple[tuple[str, ...], str, tuple[str, ...]]


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


def syslinux_rows(answer: syslinux_qemu.Answer) -> list[Row]:
    """What real syslinux booted, item by item (items that boot no Linux are not entries)."""
    rows = []
    for item in answer.items:
        if item.outcome == "linux" and item.cmdline is not None:
            rows.append((item.path, item.cmdline, tuple(sorted(item.initrds))))
        elif item.outcome == "silent":
            rows.append((item.path, NOT_OBSERVED, ()))
    return rows


def bootmenu_rows(entries: tuple[BootEntry, ...], ui: str) -> list[Row]:
    rows = []
    for e in entries:
        path: tuple[str, ...] = (e.id or e.title,) if ui == "prompt" else (*e.submenu, e.title)
        cmdline = e.kernel_cmdline() if e.initrds else NOT_OBSERVED
        rows.append((path, cmdline, tuple(sorted(e.initrds))))
    return rows


def default_row(entries: tuple[BootEntry, ...]) -> tuple[str, tuple[str, ...]] | None:
    e = next((e for e in entries if e.default), None)
    if e is None:
        return None
    return (e.kernel_cmdline() if e.initrds else NOT_OBSERVED, tuple(sorted(e.initrds)))


def syslinux_default(answer: syslinux_qemu.Answer) -> tuple[str, tuple[str, ...]] | None:
    d = answer.default
    if d is None or d.outcome not in ("linux", "silent"):
        return None
    return (d.cmdline or NOT_OBSERVED, tuple(sorted(d.initrds))) if d.outcome == "linux" else (NOT_OBSERVED, ())


def explanations() -> dict[str, Any]:
    return tomllib.loads(EXPLAINED.read_text()) if EXPLAINED.is_file() else {}


def answer_for(key: str, tree: Path, config: str, fs: Filesystem) -> syslinux_qemu.Answer:
    cache = syslinux_qemu.load_answers(ANSWERS)
    if key in cache:
        return cache[key][0]
    if not syslinux_qemu.available():
        pytest.fail(f"no recorded syslinux answer for {key} and no syslinux/QEMU here: run `make conformance`")
    with syslinux_qemu.scratch_dir() as tmp:
        answer = syslinux_qemu.answer_config(tree, config, fs.fstype or "", fs.name, Path(tmp))
    prefix = key.split("@", 1)[0] + "@"
    cache = {k: v for k, v in syslinux_qemu.load_answers(ANSWERS).items() if not k.startswith(prefix)}
    cache[key] = [answer]
    syslinux_qemu.save_answers(ANSWERS, cache)
    return answer


def compare(answer: syslinux_qemu.Answer, entries: tuple[BootEntry, ...]) -> list[str]:
    """The differences between real syslinux's answer and bootmenu's entries ([] = identical)."""
    theirs, mine = syslinux_rows(answer), bootmenu_rows(entries, answer.ui)
    if answer.ui == "direct":
        theirs = mine = []  # no menu and no prompt: syslinux only ever boots the default
    diff = [f"  syslinux: {r}" for r in theirs if r not in mine]
    diff += [f"  bootmenu: {r}" for r in mine if r not in theirs]
    if not diff and theirs != mine:
        diff.append("  same entries, different order:")
        diff += [f"  syslinux: {r[0]}" for r in theirs]
        diff += [f"  bootmenu: {r[0]}" for r in mine]
    want, have = syslinux_default(answer), default_row(entries)
    if want != have:
        diff.append(f"  default: syslinux {want}, bootmenu {have}")
    return diff


def verdict(where: str, diff: list[str], explained: dict[str, str]) -> str:
    if not diff:
        return "identical"
    if where in explained:
        return f"explained: {explained[where]}"
    return "different"


@pytest.mark.parametrize(("fixture", "tree", "config"), CASES, ids=[f"{f.name}:{t.name}:{c}" for f, t, c in CASES])
def test_fixture_menu_matches_real_syslinux(fixture: Path, tree: Path, config: str) -> None:
    fs = filesystem_for(tree)
    where = f"{tree.name}:{config}"
    key = f"{fixture.name}:{where}@{syslinux_qemu.tree_digest(tree, config)}"
    answer = answer_for(key, tree, config, fs)
    entries = syslinux.load_config(fs, config).entries
    diff = compare(answer, entries)
    result = verdict(where, diff, explanations().get(fixture.name, {}))
    VERDICTS.append((f"syslinux {fixture.name}", where, result.split(":")[0]))
    print(f"syslinux-conformance {fixture.name} {where}: {result}")
    assert result != "different", f"{fixture.name} {where}:\n" + "\n".join(diff)
