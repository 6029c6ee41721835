"""The shared real-world corpus (../shared/corpus): every config parses, and agrees with its recorded expectation.

Petitboot's and u-root's expectations encode their own gaps (flattened submenus, first initrd only, no variable
expansion...). Each case where we answer differently on purpose is recorded with its reason in
tests/data/corpus_differences.toml; each case where our loaders are known to be wrong is recorded there as a bug
(an xfail that must start failing once fixed, so the record is removed). Skipped when the corpus is absent.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from tools.corpus_cases import CORPUS, Case, all_cases, compare, ours, run_case

if not CORPUS.is_dir():
    pytest.skip(f"shared corpus not present at {CORPUS}", allow_module_level=True)

DATA = Path(__file__).resolve().parent.parent / "data" / "corpus_differences.toml"
RECORDS: dict[str, Any] = tomllib.loads(DATA.read_text())
DIFFERENCES: dict[str, dict[str, Any]] = RECORDS.get("difference", {})
BUGS: dict[str, dict[str, Any]] = RECORDS.get("bug", {})
CASES = all_cases()
COMPARED = [c for c in CASES if c.expected is not None]


def test_corpus_is_enumerated() -> None:
    # Guards against a layout change silently turning the comparison into zero cases.
    assert len({c.source for c in CASES}) == 3
    assert len(COMPARED) >= 60


def test_every_record_names_a_compared_case_and_gives_a_reason() -> None:
    keys = {c.key for c in COMPARED}
    for table in (DIFFERENCES, BUGS):
        for key, record in table.items():
            assert key in keys, f"{key}: recorded but no such compared corpus case"
            assert str(record.get("reason", "")).strip(), f"{key}: a record needs its reason"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.key)
def test_parses_without_a_loader_failure(case: Case, tmp_path: Path) -> None:
    _, results = run_case(case, tmp_path)
    failures = [str(d) for r in results for d in r.diagnostics if "loader failed" in d.message]
    assert not failures


def _params() -> list[Any]:
    params = []
    for case in COMPARED:
        marks = []
        if case.key in BUGS:
            marks.append(pytest.mark.xfail(reason=f"loader bug: {BUGS[case.key]['reason']}", strict=True))
        params.append(pytest.param(case, id=case.key, marks=marks))
    return params


@pytest.mark.parametrize("case", _params())
def test_matches_recorded_expectation(case: Case, tmp_path: Path) -> None:
    assert case.expected is not None
    filesystems, results = run_case(case, tmp_path)
    got = ours(case, filesystems, results)
    record = DIFFERENCES.get(case.key)
    if record is None:
        assert compare(case.expected, got, count=case.count) == []
        return
    # A deliberate difference: the fields it names may differ; everything else must still agree, and the
    # recorded difference must still exist (a stale record hides the next regression).
    ignore = frozenset(record.get("ignore", ()))
    if ignore:
        assert compare(case.expected, got, ignore, case.count) == [], record["reason"]
    if "titles" in record:
        assert [g["title"] for g in got] == record["titles"], record["reason"]
    assert compare(case.expected, got, count=case.count) != [], (
        f"{case.key}: recorded difference no longer differs; remove the record"
    )
