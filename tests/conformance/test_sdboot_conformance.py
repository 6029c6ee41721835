"""bootmenu's BLS loader (discovery/bls.py, boot counting in discovery/loaderwrites.py) against real systemd-boot 252
(Debian's systemd-boot-efi) on OVMF under QEMU TCG.

systemd-boot's answers are recorded in tests/data/sdboot_conformance.json, keyed by a hash of the tree's files and the
harness (tests/conformance/sdboot_qemu.py), so `make test` compares without booting anything; a tree whose answer is
missing is booted (about 15 s per menu item under TCG), which needs OVMF (`make conformance` fetches it) and the lock
every QEMU run takes (`flock /tmp/qemu.lock`). Every difference is either fixed in bootmenu or listed with its reason
in tests/data/sdboot_conformance.toml. Trees: the golden fixtures holding BLS entries (the /boot partitions of
Fedora and RHEL go on the ESP as systemd-boot would read them from an ESP or XBOOTLDR) and tests/fixtures/sdboot,
written for what a reader of the specification gets wrong: sort-key/version/machine-id order, ids with and without
`.conf` in the `default` glob and the duplicate-title suffix, a missing kernel, boot counting, `@saved`, `timeout`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from discovery import bls, uki
from discovery.entry import BootEntry
from discovery.fs import Platform
from discovery.loaders import LoadContext
from discovery.loaderwrites import counted_name
from discovery.scan import filesystem_for
from tests.conformance import sdboot_qemu

REPO = sdboot_qemu.REPO
ANSWERS = REPO / "tests" / "data" / "sdboot_conformance.json"
EXPLAINED = REPO / "tests" / "data" / "sdboot_conformance.toml"
TREES = {
    "arch-systemd-boot": REPO / "tests" / "fixtures" / "distros" / "arch-systemd-boot" / "esp",
    "fedora-40": REPO / "tests" / "fixtures" / "distros" / "fedora-40" / "nvme0n1p2",
    "rhel-9": REPO / "tests" / "fixtures" / "distros" / "rhel-9" / "sda2",
    **{f"sdboot-{p.name}": p for p in sorted((REPO / "tests" / "fixtures" / "sdboot").iterdir()) if p.is_dir()},
}
# (name, verdict) of every comparison made in this run, totalled by conftest.py.
VERDICTS: list[tuple[str, str, str]] = []
Row = tuple[str, str, str, tuple[str, ...]]  # title, id, what the kernel received, initrd markers


def answer_for(name: str) -> sdboot_qemu.Answer:
    tree = TREES[name]
    key = f"{name}@{sdboot_qemu.digest(tree)}"
    answers = sdboot_qemu.load_answers(ANSWERS)
    if key not in answers:
        if not sdboot_qemu.available():
            pytest.fail(f"no recorded systemd-boot answer for {key} and no OVMF here: run `make conformance`")
        answers = {k: v for k, v in answers.items() if not k.startswith(f"{name}@")}
        answers[key] = sdboot_qemu.answer_tree(tree, filesystem_for(tree).name)
        sdboot_qemu.save_answers(ANSWERS, answers)
    return answers[key]


def bootmenu_entries(tree: Path) -> tuple[list[BootEntry], float | None]:
    """What bootmenu's standalone BLS loader (systemd-boot semantics) lists for the tree, on an x86-64 EFI machine."""
    ctx = LoadContext(platform=Platform(firmware="efi", cpu="x86_64"))
    result = bls.load(filesystem_for(tree), ctx, type2=uki.read_type2)
    return list(result.entries), result.timeout


def _id_of(entry: BootEntry) -> str:
    """systemd-boot's id for an entry: its file name without the boot counter, `.conf` kept (LoaderEntrySelected)."""
    name = Path(entry.config).name
    stem, _ = bls.split_filename(name)
    return f"{stem}.conf" if name.endswith(".conf") else stem


def bootmenu_rows(entries: list[BootEntry]) -> list[Row]:
    return [
        (e.title, _id_of(e), e.kernel_cmdline(), tuple(sorted(sdboot_qemu.marker_name(i) for i in e.initrds)))
        for e in entries
    ]


def sdboot_rows(answer: sdboot_qemu.Answer) -> list[Row]:
    rows = []
    for boot in answer.items:
        if boot.chosen < 0 or boot.chosen >= len(boot.menu) or boot.menu[boot.chosen] in sdboot_qemu.AUTO_TITLES:
            continue
        received = boot.cmdline if boot.cmdline is not None else f"<no kernel: {boot.error.splitlines()[-1:]}>"
        rows.append((boot.menu[boot.chosen], boot.variables.get("LoaderEntrySelected", ""), received, boot.initrds))
    return rows


def sdboot_menu(answer: sdboot_qemu.Answer) -> list[str]:
    menu = next((b.menu for b in answer.items if b.menu), ())
    return [t for t in menu if t not in sdboot_qemu.AUTO_TITLES]


def differences(name: str, answer: sdboot_qemu.Answer) -> list[str]:
    """Each way bootmenu's reading of the tree differs from what systemd-boot showed and booted."""
    entries, timeout = bootmenu_entries(TREES[name])
    diff: list[str] = []
    mine_titles = [e.title for e in entries]
    theirs_titles = sdboot_menu(answer)
    if mine_titles != theirs_titles:
        diff.append(f"  menu: systemd-boot {theirs_titles}, bootmenu {mine_titles}")
    theirs, mine = sdboot_rows(answer), bootmenu_rows(entries)
    diff += [f"  systemd-boot: {r}" for r in theirs if r not in mine]
    diff += [f"  bootmenu:     {r}" for r in mine if r not in theirs]
    # The default: highlighted when the menu came up, and what booted when nobody pressed a key.
    default = next((e for e in entries if e.default), None)
    first = answer.first
    booted = first.variables.get("LoaderEntrySelected")
    if (default is None) != (booted is None) or (default is not None and _id_of(default) != booted):
        diff.append(f"  default booted: systemd-boot {booted}, bootmenu {default and _id_of(default)}")
    forced = next((b for b in answer.items if b.menu), None)
    if forced is not None and 0 <= forced.highlighted < len(forced.menu):
        lit = forced.menu[forced.highlighted]
        if default is None or lit != default.title:
            diff.append(f"  highlighted: systemd-boot {lit!r}, bootmenu {default and default.title!r}")
    # timeout: a countdown from N, or no menu at all (0 / none given: systemd-boot boots at once).
    theirs_timeout = float(first.countdown) if first.countdown is not None else (None if first.menu else 0.0)
    mine_timeout = timeout if timeout is not None else 0.0
    if theirs_timeout != mine_timeout:
        diff.append(f"  timeout: systemd-boot {theirs_timeout}, bootmenu {timeout}")
    # Boot counting: the file systemd-boot renamed when it booted each entry, and bootmenu's name for it.
    for boot in (answer.first, *answer.items):
        renamed = sorted(set(answer.entries_before) - set(boot.entries_after))
        new = sorted(set(boot.entries_after) - set(answer.entries_before))
        chosen = boot.variables.get("LoaderEntrySelected")
        entry = next((e for e in entries if _id_of(e) == chosen), None)
        if entry is None:
            continue
        mine_new = counted_name(Path(entry.config).name)
        expect = ([Path(entry.config).name], [mine_new]) if mine_new else ([], [])
        if (renamed, new) != expect:
            diff.append(
                f"  boot counting of {chosen}: systemd-boot {renamed} -> {new}, bootmenu {expect[0]} -> {expect[1]}"
            )
    return diff


def explanations() -> dict[str, Any]:
    return tomllib.loads(EXPLAINED.read_text()) if EXPLAINED.is_file() else {}


@pytest.mark.parametrize("name", sorted(TREES))
def test_bls_menu_matches_real_systemd_boot(name: str) -> None:
    answer = answer_for(name)
    diff = differences(name, answer)
    explained = explanations().get(name)
    if not diff:
        verdict = "identical"
    elif explained is not None:
        verdict = f"explained: {explained}"
    else:
        verdict = "different"
    VERDICTS.append(("systemd-boot", name, verdict.split(":")[0]))
    print(f"sdboot-conformance {name}: {verdict}")
    for line in diff:
        print(line)
    assert verdict != "different", f"{name}:\n" + "\n".join(diff)
