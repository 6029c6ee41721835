"""bootmenu against real GRUB 2.06 (grub-emu) on every GRUB config of the shared corpus (../shared/corpus).

Each corpus case is laid out as tools/corpus_cases.py lays it out for test_corpus.py, its filesystems become disks
for grub-emu (see grub_emu.py), and GRUB's menu is compared with bootmenu's, as for the golden fixtures. Answers are
recorded in tests/data/grub_conformance.json by content hash; reasons for differences in
tests/data/grub_conformance.toml under `[corpus]`; any other difference fails. Skipped when the corpus is absent (it
is not part of the project).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from discovery.entry import SourceFormat
from discovery.fs import Filesystem, StaticResolver
from discovery.loaders import LoadContext, load_filesystem
from initramfs.disks import DiskError
from initramfs.run import RunError
from tests.conformance import grub_emu
from tests.conformance.compare import Kind, Verdict, compare, record
from tests.conformance.test_grub_conformance import ANSWERS, LOADER, explanations, grub_menu
from tools import corpus_cases

PLATFORM = corpus_cases.PLATFORM.firmware


def grub_cases() -> list[corpus_cases.Case]:
    cases = []
    for case in corpus_cases.all_cases():
        with tempfile.TemporaryDirectory() as tmp:
            _, results = corpus_cases.run_case(case, Path(tmp))
        if any(e.format is SourceFormat.GRUB for r in results for e in r.entries):
            cases.append(case)
    return cases


CASES = grub_cases()


# A FAT volume id as blkid and GRUB show it: a corpus ESP written with one is made a FAT disk, which can carry it.
FAT_SERIAL = re.compile(r"[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}")


def _identity_files(filesystems: list[Filesystem]) -> None:
    for fs in filesystems:
        fstype = fs.fstype or ("vfat" if FAT_SERIAL.fullmatch(fs.uuid) and len(fs.label) <= 11 else "ext4")
        fields = {"name": fs.name, "uuid": fs.uuid, "label": fs.label, "fstype": fstype}
        (fs.root / ".bootmenu-fs").write_text("".join(f"{k}={v}\n" for k, v in fields.items() if v))


def _why_no_disk(exc: DiskError | RunError) -> str:
    """The reason for the explained list, without this run's scratch paths: the identity mkfs refused."""
    if isinstance(exc, RunError) and "-U" in exc.argv[:-1]:
        argv = exc.argv
        label = argv[argv.index("-L") + 1] if "-L" in argv[:-1] else ""
        return (
            f"no disk image can represent it: UUID {argv[argv.index('-U') + 1]!r} with label {label!r} fits neither "
            "ext4 (a 128-bit UUID) nor FAT (a label of at most 11 characters)"
        )
    return f"no disk image can represent it: {str(exc).splitlines()[0][:160]}"


def _unrepresentable(roots: list[Path], scratch: Path) -> str | None:
    """Why no disk images can be made of these trees (a UUID mkfs refuses), or None when they can."""
    scratch.mkdir()
    try:
        grub_emu.Session(roots, scratch)
    except (DiskError, RunError) as exc:
        return _why_no_disk(exc)
    return None


@pytest.mark.skipif(not CASES, reason="the shared corpus (../shared/corpus) is not here")
@pytest.mark.parametrize("case", CASES, ids=[c.key for c in CASES])
def test_corpus_menu_matches_real_grub(case: corpus_cases.Case, tmp_path: Path) -> None:
    filesystems = case.build(tmp_path)
    _identity_files(filesystems)
    roots = [fs.root for fs in filesystems]
    digest = grub_emu.tree_digest(tmp_path, PLATFORM)
    key = f"corpus:{case.key}@{digest}"
    cache = grub_emu.load_answers(ANSWERS)
    recorded = explanations().get("corpus", {}).get(case.key)
    reason = recorded
    if key not in cache:
        if not grub_emu.available():
            # The corpus is not the project's: a machine with a different copy has no answers, which is no failure.
            pytest.skip(f"no recorded GRUB answer for {key} and no grub-emu here: `make conformance` records it")
        grub_emu.check_unprivileged()
        try:
            answers = grub_emu.answer_trees(roots, PLATFORM)
        except (DiskError, RunError) as exc:
            # An identity no disk can carry (a UUID mkfs refuses): GRUB cannot be asked.
            answers = []
            reason = reason or _why_no_disk(exc)
        cache = {k: v for k, v in grub_emu.load_answers(ANSWERS).items() if not k.startswith(f"corpus:{case.key}@")}
        cache[key] = answers
        grub_emu.save_answers(ANSWERS, cache)
    answers = cache[key]
    # Every filesystem's menu, as GRUB was asked about every config (not only the case's primary device).
    ctx = LoadContext(resolver=StaticResolver(tuple(filesystems)), platform=corpus_cases.PLATFORM)
    by_fs = {
        fs.name: [e for e in load_filesystem(fs, ctx).entries if e.format is SourceFormat.GRUB] for fs in filesystems
    }
    if not answers and reason is None:
        reason = _unrepresentable(roots, tmp_path / "disks")
    if not answers:
        assert reason, f"{case.key}: GRUB could not be asked and no reason is recorded"
        record(LOADER, f"corpus {case.key}", "-", Verdict(Kind.EXPLAINED, reason))
        return
    problems = []
    verdicts = []
    for answer in answers:
        where = f"{answer.device}:{answer.config}"
        verdict = record(
            LOADER,
            f"corpus {case.key}",
            where,
            compare(grub_menu(answer), by_fs.get(answer.device, []), explained=reason),
        )
        verdicts.append(verdict.kind)
        if verdict.lines:
            problems.append(f"{case.key} {where}:\n" + "\n".join(verdict.lines))
    if recorded and all(kind is Kind.IDENTICAL for kind in verdicts):
        problems.append(f"{case.key}: identical now; remove its reason from grub_conformance.toml [corpus]")
    assert not problems, "\n".join(problems)
