"""bootmenu's GRUB interpreter against real GRUB 2.06 (grub-emu) on every golden fixture with a GRUB config.

GRUB's answers are recorded in tests/data/grub_conformance.json, keyed by a hash of the fixture's files and the
harness, so a run recomputes only what changed (about a second per config). Every difference is either fixed in
bootmenu or listed with its reason in tests/data/grub_conformance.toml. `make conformance` prints the per-config
verdicts (identical / different / explained) and the totals.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from discovery.entry import BootEntry, SourceFormat
from discovery.fs import Platform
from discovery.grub.loader import cmdline
from discovery.scan import scan
from tests.conformance import grub_emu

FIXTURES = grub_emu.REPO / "tests" / "fixtures" / "distros"
ANSWERS = grub_emu.REPO / "tests" / "data" / "grub_conformance.json"
EXPLAINED = grub_emu.REPO / "tests" / "data" / "grub_conformance.toml"
Row = tuple[tuple[str, ...], str, tuple[str, ...], str]
# (fixture, device:config, verdict) of every comparison made in this run, totalled by conftest.py.
VERDICTS: list[tuple[str, str, str]] = []


def platform_of(fixture: Path) -> str:
    file = fixture / "platform"
    return file.read_text().strip() if file.is_file() else "pc"


def grub_fixtures() -> list[str]:
    names = []
    for fixture in sorted(FIXTURES.iterdir()):
        entries = scan(grub_emu.filesystems_of(fixture), Platform(firmware=platform_of(fixture)))
        if any(s.result.configs and any("grub" in c for c in s.result.configs) for s in entries):
            names.append(fixture.name)
    return names


def _fs_name(device: str, disks: dict[str, str]) -> str:
    """The filesystem behind a GRUB device name. Each test disk has one partition, so a config's hard-coded
    `hd0,msdos1` or `hd0,gpt2` (written for the machine it came from) means that disk's filesystem."""
    if device in disks:
        return disks[device]
    disk = device.split(",", 1)[0]
    return next((name for dev, name in disks.items() if dev.split(",", 1)[0] == disk), device)


def _strip_device(path: str, disks: dict[str, str], root: str) -> tuple[str, str]:
    """(filesystem name, path within it) of a GRUB path: `(hd0,gpt1)/boot/x` or `/boot/x` on `$root`."""
    if path.startswith("("):
        device, _, rest = path[1:].partition(")")
        return _fs_name(device, disks), rest or "/"
    return _fs_name(root, disks), path


def grub_rows(answer: grub_emu.Answer) -> list[Row]:
    rows = []
    for item in answer.items:
        if item.linux is None or not item.linux:
            continue  # not a Linux entry (chainloader, fwsetup, memtest): bootmenu does not list those
        device, kernel = _strip_device(item.linux[0], answer.disks, item.linux_root)
        initrds = tuple(_strip_device(p, answer.disks, item.linux_root)[1] for call in item.initrds for p in call)
        # What the kernel receives: GRUB prepends BOOT_IMAGE=<its first argument> (escaped like the rest). A device
        # in it is named as bootmenu names devices (`(sda1)/...`): GRUB's `(hd0,gpt1)` comes from firmware disk order,
        # which a payload cannot know.
        image = item.linux[0]
        if image.startswith("("):
            image = f"({device}){kernel}"
        words = [f"BOOT_IMAGE={cmdline([image])}", cmdline(list(item.linux[1:]))]
        rows.append((item.path, f"{device}:{kernel}", initrds, " ".join(w for w in words if w)))
    return rows


def bootmenu_rows(entries: list[BootEntry]) -> list[Row]:
    return [((*e.submenu, e.title), f"{e.device}:{e.kernel}", e.initrds, e.kernel_cmdline()) for e in entries]


def answers_for(fixture: Path, cache: dict[str, list[grub_emu.Answer]]) -> list[grub_emu.Answer]:
    key = f"{fixture.name}@{grub_emu.tree_digest(fixture, platform_of(fixture))}"
    if key not in cache:
        if not grub_emu.available():
            pytest.fail(f"no recorded GRUB answer for {key} and no grub-emu here: run `make conformance`")
        grub_emu.check_unprivileged()
        cache = {k: v for k, v in grub_emu.load_answers(ANSWERS).items() if not k.startswith(f"{fixture.name}@")}
        cache[key] = grub_emu.answer_fixture(fixture, platform_of(fixture))
        grub_emu.save_answers(ANSWERS, cache)
    return cache[key]


def explanations() -> dict[str, Any]:
    return tomllib.loads(EXPLAINED.read_text()) if EXPLAINED.is_file() else {}


@pytest.mark.parametrize("name", grub_fixtures())
def test_fixture_menu_matches_real_grub(name: str) -> None:
    fixture = FIXTURES / name
    answers = answers_for(fixture, grub_emu.load_answers(ANSWERS))
    scanned = scan(grub_emu.filesystems_of(fixture), Platform(firmware=platform_of(fixture)))
    by_fs = {s.fs.name: [e for e in s.result.entries if e.format is SourceFormat.GRUB] for s in scanned}
    explained = explanations().get(name, {})
    problems = []
    for answer in answers:
        # What bootmenu's GRUB loader made of this filesystem's config, including the files it sources or chains to.
        mine = by_fs.get(answer.device, [])
        theirs_rows, mine_rows = grub_rows(answer), bootmenu_rows(mine)
        default = next(((*e.submenu, e.title) for e in mine if e.default), ())
        where = f"{answer.device}:{answer.config}"
        if theirs_rows == mine_rows and (default == answer.default or not theirs_rows):
            verdict = "identical"
        elif where in explained:
            verdict = f"explained: {explained[where]}"
        else:
            verdict = "different"
            diff = [f"  GRUB:     {r}" for r in theirs_rows if r not in mine_rows]
            diff += [f"  bootmenu: {r}" for r in mine_rows if r not in theirs_rows]
            if default != answer.default:
                diff.append(f"  default: GRUB {answer.default}, bootmenu {default}")
            if not diff:
                diff.append("  same entries, different order:")
                diff += [f"  GRUB:     {r[0]}" for r in theirs_rows]
                diff += [f"  bootmenu: {r[0]}" for r in mine_rows]
            problems.append(f"{name} {where}:\n" + "\n".join(diff))
        VERDICTS.append((name, where, verdict.split(":")[0]))
        print(f"grub-conformance {name} {where}: {verdict}")
    assert not problems, "\n".join(problems)
