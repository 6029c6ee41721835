"""Distribution fixtures: `bootmenu scan --json` on trees modelled on real systems equals the reviewed golden.

Each golden (tests/fixtures/distros/NAME/expected.json) was checked by hand against what GRUB, syslinux or
systemd-boot shows for that tree; regenerate with `python -m tools.regen_goldens` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.regen_goldens import fixture_dirs, scan_fixture

FIXTURES = fixture_dirs()


def test_every_fixture_has_a_golden() -> None:
    assert len(FIXTURES) >= 12
    assert [f.name for f in FIXTURES if not (f / "expected.json").is_file()] == []


@pytest.mark.parametrize("fixture", [f for f in FIXTURES if (f / "expected.json").is_file()], ids=lambda f: f.name)
def test_scan_matches_golden(fixture: Path) -> None:
    expected = json.loads((fixture / "expected.json").read_text())
    assert scan_fixture(fixture) == expected
