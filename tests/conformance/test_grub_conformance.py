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

from discovery.entry import SourceFormat
from discovery.fs import Platform
from discovery.grub.loader import cmdline
from discovery.scan import scan
from tests.conformance import grub_emu
from tests.conformance.compare import Kind, Menu, Row, compare, record

LOADER = "GRUB 2.06 (grub-emu)"
FIXTURES = grub_emu.REPO / "tests" / "fixtures" / "distros"
ANSWERS = grub_emu.REPO / "tests" / "data" / "grub_conformance.json"
EXPLAINED = grub_emu.REPO / "tests" / "data" / "grub_conformance.toml"


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


def grub_menu(answer: grub_emu.Answer) -> Menu:
    """GRUB's answer as a `Menu`: its Linux items as rows, the others (chainloader, fwsetup, memtest) apart."""
    rows = []
    others = []
    for item in answer.items:
        if item.linux is None or not item.linux:
            others.append(item.path)  # not a Linux entry: bootmenu does not list those
            continue
        device, kernel = _strip_device(item.linux[0], answer.disks, item.linux_root)
        initrds = tuple(_strip_device(p, answer.disks, item.linux_root)[1] for call in item.initrds for p in call)
        # What the kernel receives: GRUB prepends BOOT_IMAGE=<its first argument> (escaped like the rest). A device
        # in it is named as bootmenu names devices (`(sda1)/...`): GRUB's `(hd0,gpt1)` comes from firmware disk order,
        # which a payload cannot know.
        image = item.linux[0]
        if image.startswith("("):
            image = f"({device}){kernel}"
        words = [f"BOOT_IMAGE={cmdline([image])}", cmdline(list(item.linux[1:]))]
        rows.append(Row(item.path, f"{device}:{kernel}", initrds, " ".join(w for w in words if w)))
    return Menu(tuple(rows), answer.default, frozenset(others))


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
        where = f"{answer.device}:{answer.config}"
        verdict = record(
            LOADER,
            name,
            where,
            compare(grub_menu(answer), by_fs.get(answer.device, []), explained=explained.get(where)),
        )
        if verdict.lines:
            problems.append(f"{name} {where}:\n" + "\n".join(verdict.lines))
        elif verdict.kind is Kind.IDENTICAL and where in explained:
            problems.append(f"{name} {where}: identical now; remove its reason from {EXPLAINED.name}")
    assert not problems, "\n".join(problems)
