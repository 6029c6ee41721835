"""bootmenu's syslinux loader against real syslinux 6.04 in QEMU on the syslinux configs of the shared corpus.

Each corpus case is laid out as tools/corpus_cases.py lays it out, its tree booted as test_syslinux_conformance.py
boots a fixture's, and the answers recorded in tests/data/syslinux_conformance.json under `corpus:<key>@<hash>`.
Reasons for differences are in tests/data/syslinux_conformance.toml under `[corpus]`. An extlinux.conf that bootmenu
reads in U-Boot's dialect (discovery/syslinux.py `is_uboot_config`) is left to real U-Boot (test_uboot_corpus.py).
Skipped when the corpus is absent (it is not part of the project), and, on a machine whose corpus copy differs, until
`make conformance` records it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from discovery import syslinux
from discovery.entry import SourceFormat
from discovery.fs import Filesystem
from tests.conformance import syslinux_qemu
from tests.conformance.compare import record
from tests.conformance.test_syslinux_conformance import (
    ANSWERS,
    LOADER,
    RECORD,
    explanations,
    machine_of,
    verdict_of,
)
from tools import corpus_cases

MAX_ITEMS = 8


def syslinux_cases() -> list[tuple[corpus_cases.Case, int]]:
    """(case, bootmenu's syslinux entry count) of every case with a config syslinux reads; a config bootmenu reads
    in U-Boot's dialect is judged by real U-Boot instead (test_uboot_corpus.py)."""
    cases = []
    for case in corpus_cases.all_cases():
        with tempfile.TemporaryDirectory() as tmp:
            filesystems, results = corpus_cases.run_case(case, Path(tmp))
            if not any(native_configs(fs) for fs in filesystems):
                continue
        count = sum(1 for r in results for e in r.entries if e.format is SourceFormat.SYSLINUX)
        if count:
            cases.append((case, count))
    return cases


def native_configs(fs: Filesystem) -> list[str]:
    """The syslinux-family configs of `fs` that syslinux itself reads (not U-Boot's extlinux.conf)."""
    return [c for c in syslinux.find_configs(fs) if not syslinux.is_uboot_config(fs, c)]


CASES = syslinux_cases()


@pytest.mark.skipif(not CASES, reason="the shared corpus (../shared/corpus) is not here")
# Recording boots every item once (from a saved VM state: see syslinux_qemu.Walker); an interrupted one resumes.
@pytest.mark.timeout(5400)
@pytest.mark.parametrize(("case", "count"), CASES, ids=[c.key for c, _ in CASES])
def test_corpus_menu_matches_real_syslinux(case: corpus_cases.Case, count: int, tmp_path: Path) -> None:
    filesystems = corpus_cases.scanned(case, case.build(tmp_path / "tree"))
    reason = explanations().get("corpus", {}).get(case.key)
    for fs in filesystems:
        for config in native_configs(fs):
            where = f"{fs.name}:{config}"
            key = f"corpus:{case.key}:{where}@{syslinux_qemu.tree_digest(fs.root, config)}"
            cache = syslinux_qemu.load_answers(ANSWERS)
            if key not in cache:
                if not os.environ.get(RECORD) or not syslinux_qemu.available():
                    pytest.skip(f"no recorded syslinux answer for {key}: `make conformance` records it")
                if count > MAX_ITEMS and not os.environ.get("SYSLINUX_CORPUS_ALL"):
                    pytest.skip(f"{count} items (one boot each): recorded with SYSLINUX_CORPUS_ALL=1")
                progress = syslinux_qemu.progress_file(key)
                with syslinux_qemu.scratch_dir() as tmp:
                    answer = syslinux_qemu.answer_config(
                        fs.root, config, fs.fstype or "", fs.name, Path(tmp), progress=progress, uuid=fs.uuid
                    )
                cache = syslinux_qemu.load_answers(ANSWERS)
                cache = {k: v for k, v in cache.items() if not k.startswith(f"corpus:{case.key}:{where}@")}
                cache[key] = [answer]
                syslinux_qemu.save_answers(ANSWERS, cache)
                progress.unlink(missing_ok=True)
            answer = cache[key][0]
            entries = syslinux.load_config(fs, config, sysappend=machine_of(answer)).entries
            verdict = record(LOADER, f"corpus:{case.key}", where, verdict_of(answer, entries, reason))
            # Corpus differences are reported, not failed on: the corpus is not the project's.
            print(f"syslinux-conformance corpus {case.key} {where}: {verdict.describe()}")
