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

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pyte
import pytest

from discovery import bls, uki
from discovery.entry import BootEntry
from discovery.fs import Platform
from discovery.loaders import LoadContext
from discovery.loaderwrites import counted_name
from discovery.scan import filesystem_for
from kexec_core import pe
from tests.conformance import sdboot_qemu
from tests.conformance.compare import Kind, Verdict, record

REPO = sdboot_qemu.REPO
ANSWERS = REPO / "tests" / "data" / "sdboot_conformance.json"
EXPLAINED = REPO / "tests" / "data" / "sdboot_conformance.toml"
TREES = {
    "arch-systemd-boot": REPO / "tests" / "fixtures" / "distros" / "arch-systemd-boot" / "esp",
    "fedora-40": REPO / "tests" / "fixtures" / "distros" / "fedora-40" / "nvme0n1p2",
    "rhel-9": REPO / "tests" / "fixtures" / "distros" / "rhel-9" / "sda2",
    **{f"sdboot-{p.name}": p for p in sorted((REPO / "tests" / "fixtures" / "sdboot").iterdir()) if p.is_dir()},
}
LOADER = "systemd-boot 252 (OVMF, QEMU TCG)"
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
    """What bootmenu's standalone BLS loader (systemd-boot semantics) lists for the tree, on an x86-64 EFI machine;
    with the UKIs a tree's specs stand for built as systemd-boot saw them (sdboot_qemu.materialized)."""
    ctx = LoadContext(platform=Platform(firmware="efi", cpu="x86_64"))
    with sdboot_qemu.materialized(tree) as root:
        result = bls.load(filesystem_for(root), ctx, type2=uki.read_type2)
        embedded = {e.kernel for e in result.entries if e.kernel.lower().endswith(".efi") and _has_initrd(root, e)}
    entries = [
        e.replace(initrds=(sdboot_qemu.uki_initrd(Path(e.kernel).name), *e.initrds)) if e.kernel in embedded else e
        for e in result.entries
    ]
    return entries, result.timeout


def _has_initrd(root: Path, entry: BootEntry) -> bool:
    """Whether the UKI of `entry` carries an .initrd section: the kernel receives it as kexec_core unpacks it."""
    path = root / entry.kernel.lstrip("/")
    return pe.parse(path, path.read_bytes()[:65536], path.stat().st_size).section(".initrd") is not None


def _id_of(entry: BootEntry) -> str:
    """systemd-boot 252's id for an entry (LoaderEntrySelected): its file name lowercased, `.conf` and the boot
    counter kept (`good+3.conf`; later versions drop the counter)."""
    return Path(entry.config).name.lower()


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


Difference = tuple[str, str]  # (kind, what differs): a tree's explanations in the toml are per kind


def _missing_kernel(entry: BootEntry) -> bool:
    return any(w.message.startswith("kernel ") and "not found" in w.message for w in entry.warnings)


def differences(name: str, answer: sdboot_qemu.Answer) -> list[Difference]:
    """Each way bootmenu's reading of the tree differs from what systemd-boot showed and booted, by kind: `menu`,
    `rows` (title, id, command line, initrds of each entry), `default`, `highlighted`, `timeout`, `counting`, and
    `missing-kernel` (entries bootmenu lists whose kernel file is missing; the others are compared without them)."""
    listed, timeout = bootmenu_entries(TREES[name])
    theirs_titles = sdboot_menu(answer)
    diff: list[Difference] = []
    dropped = [e for e in listed if _missing_kernel(e) and e.title not in theirs_titles]
    if dropped:
        diff.append(("missing-kernel", f"  bootmenu lists {[e.title for e in dropped]}, systemd-boot does not"))
    entries = [e for e in listed if e not in dropped]
    mine_titles = [e.title for e in entries]
    if mine_titles != theirs_titles:
        diff.append(("menu", f"  menu: systemd-boot {theirs_titles}, bootmenu {mine_titles}"))
    theirs, mine = sdboot_rows(answer), bootmenu_rows(entries)
    diff += [("rows", f"  systemd-boot: {r}") for r in theirs if r not in mine]
    diff += [("rows", f"  bootmenu:     {r}") for r in mine if r not in theirs]
    # The default: highlighted when the menu came up, and what booted when nobody pressed a key.
    default = next((e for e in entries if e.default), None)
    first = answer.first
    booted = first.variables.get("LoaderEntrySelected")
    if (default is None) != (booted is None) or (default is not None and _id_of(default) != booted):
        diff.append(("default", f"  default booted: systemd-boot {booted}, bootmenu {default and _id_of(default)}"))
    forced = next((b for b in answer.items if b.menu), None)
    if forced is not None and 0 <= forced.highlighted < len(forced.menu):
        lit = forced.menu[forced.highlighted]
        if default is None or lit != default.title:
            diff.append(("highlighted", f"  highlighted: systemd-boot {lit!r}, bootmenu {default and default.title!r}"))
    # timeout: a countdown from N, or no menu at all (0 / none given: systemd-boot boots at once).
    theirs_timeout = float(first.countdown) if first.countdown is not None else (None if first.menu else 0.0)
    mine_timeout = timeout if timeout is not None else 0.0
    if theirs_timeout != mine_timeout:
        diff.append(("timeout", f"  timeout: systemd-boot {theirs_timeout}, bootmenu {timeout}"))
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
            line = f"  boot counting of {chosen}: systemd-boot {renamed} -> {new}, bootmenu {expect[0]} -> {expect[1]}"
            diff.append(("counting", line))
    return diff


def explanations() -> dict[str, Any]:
    return tomllib.loads(EXPLAINED.read_text()) if EXPLAINED.is_file() else {}


@pytest.mark.parametrize("name", sorted(TREES))
def test_bls_menu_matches_real_systemd_boot(name: str) -> None:
    answer = answer_for(name)
    diff = differences(name, answer)
    explained: dict[str, str] = explanations().get(name, {})
    kinds = sorted({kind for kind, _ in diff})
    open_kinds = [kind for kind in kinds if kind not in explained]
    if not diff:
        verdict = Verdict(Kind.IDENTICAL)
    elif not open_kinds:
        verdict = Verdict(Kind.EXPLAINED, "; ".join(f"{kind}: {explained[kind]}" for kind in kinds))
    else:
        verdict = Verdict(Kind.DIFFERENT, lines=tuple(line for _, line in diff))
    record(LOADER, name, "-", verdict)
    stale = sorted(set(explained) - set(kinds))
    assert not open_kinds, f"{name}:\n" + "\n".join(line for _, line in diff)
    assert not stale, f"{name}: no {stale} difference now; remove its reason from {EXPLAINED.name}"


def test_menu_and_variables_are_read_as_systemd_boot_draws_and_sets_them() -> None:
    """The harness's reading of OVMF's serial console (bytes as systemd-boot 252 drew its menu here) and of an EFI
    variable's UTF-16 text, so a recorded answer means what it says."""
    screen = pyte.Screen(sdboot_qemu.COLUMNS, sdboot_qemu.ROWS)
    drawn = (
        b"\x1b[2J\x1b[01;01H\x1b[24;22H             Arch Linux              \x1b[25;22H\x1b[0m\x1b[30m\x1b[47m"
        b"       Arch Linux (linux-lts)        \x1b[26;22H\x1b[0m\x1b[37m\x1b[40m   Arch Linux (fallback initramfs)   "
        b"\x1b[27;22H   Reboot Into Firmware Interface    \x1b[29;01H                                  Boot in 4 s."
        b"                                 \x1b[28;19H" + b"\xc4" * 42
    )
    pyte.ByteStream(screen).feed(drawn)
    titles, highlighted, countdown = sdboot_qemu._screen_menu(screen)
    assert titles == [
        "Arch Linux",
        "Arch Linux (linux-lts)",
        "Arch Linux (fallback initramfs)",
        *sdboot_qemu.AUTO_TITLES[:1],
    ]
    assert (highlighted, countdown) == (1, 4)
    hexdump = "a-b.conf\0auto-x\0".encode("utf-16-le").hex()
    assert sdboot_qemu._utf16(hexdump) == "a-b.conf|auto-x"


def test_recording_sees_a_qemu_lock_held_by_flock_around_it(tmp_path: Path) -> None:
    """Under `flock LOCK cmd` the harness must not take LOCK again (it would wait for ever); otherwise it takes it."""
    lock = tmp_path / "qemu.lock"
    probe = "from pathlib import Path; from tests.conformance import sdboot_qemu as s; "
    probe += f"print(s._under_flock(Path('{lock}')))"
    python = [sys.executable, "-c", probe]
    under = subprocess.run(["flock", str(lock), *python], cwd=REPO, capture_output=True, text=True, check=True)
    alone = subprocess.run(python, cwd=REPO, capture_output=True, text=True, check=True)
    assert (under.stdout.strip(), alone.stdout.strip()) == ("True", "False")
