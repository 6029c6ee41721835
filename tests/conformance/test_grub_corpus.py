"""bootmenu against real GRUB 2.06 (grub-emu) on every GRUB config of the shared corpus (../shared/corpus).

Each corpus case is laid out as tools/corpus_cases.py lays it out for test_corpus.py, its filesystems become disks
for grub-emu (see grub_emu.py), and GRUB's menu is compared with bootmenu's, as for the golden fixtures. Answers are
recorded in tests/data/grub_conformance.json by content hash; reasons for differences in
tests/data/grub_conformance.toml under `[corpus]`, and differences found and not fixed yet under `[corpus-open]`
(reported as `different`, not failed on, so the totals stay honest). Skipped when the corpus is absent (it is not
part of the project).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from discovery.entry import SourceFormat
from discovery.fs import Filesystem
from initramfs.disks import DiskError
from initramfs.run import RunError
from tests.conformance import grub_emu
from tests.conformance.test_grub_conformance import (
    ANSWERS,
    VERDICTS,
    bootmenu_rows,
    explanations,
    grub_rows,
)
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


def _identity_files(filesystems: list[Filesystem]) -> None:
    for fs in filesystems:
        fields = {"name": fs.name, "uuid": fs.uuid, "label": fs.label, "fstype": fs.fstype or "ext4"}
        (fs.root / ".bootmenu-fs").write_text("".join(f"{k}={v}\n" for k, v in fields.items() if v))


def _unrepresentable(roots: list[Path], scratch: Path) -> str | None:
    """Why no disk images can be made of these trees (a UUID mkfs refuses), or None when they can."""
    scratch.mkdir()
    try:
        grub_emu.Session(roots, scratch)
    except (DiskError, RunError) as exc:
        return f"no disk image can represent it: {str(exc).splitlines()[0][:160]}"
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
    reason = explanations().get("corpus", {}).get(case.key)
    # Differences found by this comparison and not yet fixed: reported as different, not failed on.
    still_open = explanations().get("corpus-open", {}).get(case.key)
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
            reason = reason or f"no disk image can represent it: {str(exc).splitlines()[0][:160]}"
        cache = {k: v for k, v in grub_emu.load_answers(ANSWERS).items() if not k.startswith(f"corpus:{case.key}@")}
        cache[key] = answers
        grub_emu.save_answers(ANSWERS, cache)
    answers = cache[key]
    _, results = corpus_cases.run_case(case, tmp_path / "again")
    by_fs = {
        fs.name: [e for e in r.entries if e.format is SourceFormat.GRUB]
        for fs, r in zip(corpus_cases.scanned(case, filesystems), results, strict=True)
    }
    problems = []
    if not answers and reason is None:
        reason = _unrepresentable(roots, tmp_path / "disks")
    if not answers:
        VERDICTS.append((case.key, "-", "explained" if reason else "different"))
        assert reason, f"{case.key}: GRUB could not be asked and no reason is recorded"
        return
    for answer in answers:
        theirs, mine = grub_rows(answer), bootmenu_rows(by_fs.get(answer.device, []))
        default = next(((*e.submenu, e.title) for e in by_fs.get(answer.device, []) if e.default), ())
        where = f"{answer.device}:{answer.config}"
        if theirs == mine and (default == answer.default or not theirs):
            verdict = "identical"
        elif reason:
            verdict = f"explained: {reason}"
        elif still_open:
            verdict = f"different (open): {still_open}"
        else:
            verdict = "different"
            diff = [f"  GRUB:     {r}" for r in theirs if r not in mine]
            diff += [f"  bootmenu: {r}" for r in mine if r not in theirs]
            if default != answer.default:
                diff.append(f"  default: GRUB {answer.default}, bootmenu {default}")
            if not diff:
                diff.append("  same entries, different order")
            problems.append(f"{case.key} {where}:\n" + "\n".join(diff))
        VERDICTS.append((case.key, where, verdict.split(":")[0].split(" ")[0]))
        print(f"grub-conformance corpus {case.key} {where}: {verdict}")
    assert not problems, "\n".join(problems)
