"""bootmenu's reading of extlinux.conf against real U-Boot 2023.01 (u-boot-qemu's qemu-x86 build, QEMU TCG).

Cases: every tree of tests/fixtures/uboot (probes for what pxe_utils settles: initrd= inside APPEND, INITRD and
APPEND order, FDT/FDTDIR lookup, DEFAULT/ONTIMEOUT/MENU DEFAULT, menu items, timeouts) and the golden fixtures with
an extlinux.conf where distro boot looks for one. U-Boot's answers (see uboot.py) are recorded in
tests/data/uboot_conformance.json keyed by a hash of the tree, the environment set and the harness, so `make test`
compares without booting; a changed tree is booted again (about 6 s per menu item) when U-Boot is unpacked here.
Differences that are not bugs are listed with their reason in tests/data/uboot_conformance.toml. The row compared per
menu item: title, kernel, initrds, device tree, the command line the kernel receives, in menu order, and the default.
"""

from __future__ import annotations

import posixpath
import tomllib
from pathlib import Path
from typing import Any

import pytest

from discovery.entry import BootEntry, SourceFormat
from discovery.fs import Platform
from discovery.scan import scan
from tests.conformance import uboot
from tests.conformance.compare import Kind, Menu, Row, Verdict, compare, record

FIXTURES = uboot.REPO / "tests" / "fixtures"
PROBES = FIXTURES / "uboot"
DISTROS = FIXTURES / "distros"
ANSWERS = uboot.REPO / "tests" / "data" / "uboot_conformance.json"
EXPLAINED = uboot.REPO / "tests" / "data" / "uboot_conformance.toml"
# What the board's environment names (ARM boards set $fdtfile; qemu-x86 has $soc/$board only).
ENV: dict[str, dict[str, str]] = {
    "fdt": {"fdtfile": "vendor/board.dtb"},
    "uboot-extlinux": {"fdtfile": "rockchip/rk3399-rockpro64.dtb"},
}
LOADER = "U-Boot 2023.01 (u-boot-qemu, sysboot)"
# What pxe_utils' "Skipping ... for failure retrieving X" names, as bootmenu's warnings name it.
SKIPPED = {"kernel": "kernel", "initrd": "initrd", "FDT": "devicetree"}


def cases() -> list[tuple[str, Path]]:
    """(case name, tree) of every tree holding an extlinux.conf where U-Boot's distro boot looks."""
    found = []
    for parent in (PROBES, DISTROS):
        for fixture in sorted(p for p in parent.iterdir() if p.is_dir()):
            for tree in sorted(p for p in fixture.iterdir() if p.is_dir()):
                if uboot.configs_in(tree):
                    found.append((fixture.name, tree))
    return found


def answers_for(name: str, tree: Path) -> list[uboot.Answer]:
    env = ENV.get(name, {})
    key = f"{name}/{tree.name}@{uboot.tree_digest(tree, env)}"
    recorded = uboot.load_answers(ANSWERS)
    if key in recorded:
        return recorded[key]
    if not uboot.available():
        pytest.fail(f"no recorded U-Boot answer for {key} and no u-boot-qemu here: run `make conformance`")
    answers = uboot.answer_tree(tree, scan([tree], Platform(firmware="efi"))[0].fs.name, env)
    # Reread: another case may have been recorded meanwhile; only this case's old answers go.
    recorded = {k: v for k, v in uboot.load_answers(ANSWERS).items() if not k.startswith(f"{name}/{tree.name}@")}
    recorded[key] = answers
    uboot.save_answers(ANSWERS, recorded)
    return answers


def _row(title: str, attempt: uboot.Attempt, tree: Path) -> Row | None:
    """What U-Boot booted for a menu item; None when the label boots no Linux (LOCALBOOT prints nothing). U-Boot
    prints nothing when a file it tries is not there; an FDTDIR file that is not in the tree was not loaded."""
    if attempt.skipped:
        # "Skipping <label> for failure retrieving kernel|initrd|FDT" (or "No kernel given, skipping <label>").
        what = attempt.skipped.rsplit(" ", 1)[-1] if "retrieving" in attempt.skipped else "kernel"
        return Row((title,), f"cannot boot: {SKIPPED.get(what, what)} missing", (), "")
    if not attempt.started:
        return None
    images = [posix for posix, ok in attempt.files if ok and not posix.lower().endswith((".dtb", ".dtbo"))]
    fdts = [
        p
        for p, ok in attempt.files
        if ok and p.lower().endswith((".dtb", ".dtbo")) and (tree / posixpath.normpath(p).lstrip("/")).is_file()
    ]
    # label_boot loads the initrd first, then the kernel, then the device tree.
    kernel = posixpath.normpath(images[-1])
    initrds = tuple(posixpath.normpath(p) for p in images[:-1])
    fdt = posixpath.normpath(fdts[0]) if fdts else None
    return Row((title,), kernel, initrds, attempt.cmdline or "", fdt)


def uboot_rows(answer: uboot.Answer, tree: Path) -> list[Row]:
    rows = []
    for (number, title), run in zip(_menu_of(answer), answer.items, strict=False):
        first = next((a for a in run.attempts if a.number == number), None)
        row = _row(title, first, tree) if first is not None else None
        if row is not None:
            rows.append(row)
    return rows


def _menu_of(answer: uboot.Answer) -> tuple[tuple[str, str], ...]:
    return next((r.menu for r in answer.items if r.menu), ())


def uboot_default(answer: uboot.Answer) -> str | None:
    """The title of the item U-Boot boots by itself; None when it waits for the user."""
    booted = answer.default_run.booted
    if booted is None:
        return None
    return dict(_menu_of(answer)).get(booted.number, booted.title)


def _bootmenu_row(e: BootEntry) -> Row:
    """bootmenu lists an entry whose file is missing, with a warning; U-Boot, asked to boot it, skips it. Both say
    the same when the first missing file, in U-Boot's order (initrd, kernel, FDT), is the one U-Boot names."""
    gone = [w.message.split(" ", 1)[0] for w in e.warnings if w.message.endswith(" not found")]
    first = next((what for what in ("initrd", "kernel", "devicetree") if what in gone), None)
    if first is not None:
        return Row((e.title,), f"cannot boot: {first} missing", (), "")
    return Row((e.title,), e.kernel, e.initrds, e.kernel_cmdline(), e.devicetree)


def explanations() -> dict[str, Any]:
    return tomllib.loads(EXPLAINED.read_text()) if EXPLAINED.is_file() else {}


def uboot_menu(answer: uboot.Answer, tree: Path) -> Menu:
    """U-Boot's answer as the shared comparison's Menu; items that boot no Linux (LOCALBOOT) are `others`."""
    rows = tuple(uboot_rows(answer, tree))
    shown = {row.path for row in rows}
    others = frozenset((title,) for _, title in _menu_of(answer) if (title,) not in shown)
    default = uboot_default(answer)
    return Menu(rows=rows, default=(default,) if default is not None else (), others=others)


def timeout_problem(answer: uboot.Answer, timeout: float | None) -> str:
    """How U-Boot started the default, against bootmenu's timeout (no durations compared): at once without a menu
    (timeout 0), after a countdown (a timeout), or not at all (no timeout: wait for the user)."""
    run = answer.default_run
    if run.booted is None:
        theirs = "waits for the user"
    else:
        theirs = "counts down, then boots" if run.prompted else "boots at once"
    mine = "waits for the user" if timeout is None else ("boots at once" if timeout == 0 else "counts down, then boots")
    return "" if theirs == mine else f"  timeout: U-Boot {theirs}, bootmenu {mine} ({timeout})"


def check(name: str, tree: Path) -> list[str]:
    """The problems found for every config of one tree (the verdicts are recorded for the report)."""
    answers = answers_for(name, tree)
    scanned = scan([tree], Platform(firmware="efi"))[0]
    explained = explanations().get(name, {})
    problems = []
    for answer in answers:
        mine = [e for e in scanned.result.entries if e.format is SourceFormat.SYSLINUX and e.config == answer.config]
        menu = uboot_menu(answer, tree)
        if answer.default_run.booted is None and scanned.result.timeout is None:
            # U-Boot waits for the user (TIMEOUT 0 with a menu) and so does bootmenu (no timeout): no default starts
            # on either side, so bootmenu's highlighted entry is not compared.
            menu = Menu(rows=menu.rows, default=next(((e.title,) for e in mine if e.default), ()), others=menu.others)
        where = f"{answer.device}:{answer.config}"
        verdict = compare(menu, mine, explained=explained.get(where), row=_bootmenu_row)
        waiting = timeout_problem(answer, scanned.result.timeout)
        if waiting and not explained.get(where):
            verdict = Verdict(Kind.DIFFERENT, lines=(*verdict.lines, waiting))
        record(LOADER, name, where, verdict)
        if verdict.lines:
            problems.append(f"{name} {where}:\n" + "\n".join(verdict.lines))
        elif verdict.kind is Kind.IDENTICAL and where in explained:
            problems.append(f"{name} {where}: identical now; remove its reason from {EXPLAINED.name}")
    return problems


@pytest.mark.parametrize(("name", "tree"), cases(), ids=[f"{n}/{t.name}" for n, t in cases()])
def test_extlinux_menu_matches_real_uboot(name: str, tree: Path) -> None:
    problems = check(name, tree)
    assert not problems, "\n".join(problems)


def test_every_probe_has_a_recorded_answer() -> None:
    """A clean clone compares against recorded answers: every case's current tree has one (no stale key)."""
    recorded = uboot.load_answers(ANSWERS)
    missing = [
        f"{n}/{t.name}" for n, t in cases() if f"{n}/{t.name}@{uboot.tree_digest(t, ENV.get(n, {}))}" not in recorded
    ]
    if missing and uboot.available():
        pytest.skip(f"not recorded yet (the comparison test records them): {missing}")
    assert not missing, f"no recorded U-Boot answer for {missing}: run `make conformance` where QEMU can run"
