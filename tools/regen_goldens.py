"""Regenerate tests/fixtures/distros/*/expected.json from `bootmenu scan --json`.

Each fixture directory holds one or more filesystem trees (its subdirectories, scanned in name order as several
PATHs), an optional `platform` file (`efi` or `pc`, default `pc`) and `expected.json`. A regenerated golden is a
claim about what GRUB or syslinux would show: review its diff by hand against their semantics before committing.

    .venv/bin/python -m tools.regen_goldens [FIXTURE...]     # all fixtures when none is named
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "distros"
CPU = "x86_64"


def fixture_dirs() -> list[Path]:
    return sorted(p for p in FIXTURES.iterdir() if p.is_dir())


def fixture_args(fixture: Path) -> list[str]:
    """The `bootmenu scan` arguments for a fixture: fixed platform and CPU, every tree as a PATH."""
    platform_file = fixture / "platform"
    platform = platform_file.read_text().strip() if platform_file.is_file() else "pc"
    trees = sorted(str(p) for p in fixture.iterdir() if p.is_dir())
    # No SYSAPPEND words from this machine's DMI tables: the goldens are the same everywhere.
    return [
        "scan",
        "--json",
        "--platform",
        platform,
        "--cpu",
        CPU,
        "--dmi-table",
        "/dev/null",
        "--cpuinfo",
        "/dev/null",
        *trees,
    ]


def scan_fixture(fixture: Path) -> list[dict[str, Any]]:
    """What `bootmenu scan --json` prints for the fixture, with the fixture's host location removed."""
    from bootmenu.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(fixture_args(fixture))
    if code != 0:
        raise RuntimeError(f"bootmenu scan exited {code} on {fixture}: {err.getvalue()}")
    text = out.getvalue().replace(str(fixture.resolve()) + "/", "")
    data: list[dict[str, Any]] = json.loads(text)
    return data


def render(entries: list[dict[str, Any]]) -> str:
    return json.dumps(entries, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("fixtures", nargs="*", help="fixture names (directories under tests/fixtures/distros)")
    args = parser.parse_args(argv)
    chosen = [FIXTURES / name for name in args.fixtures] or fixture_dirs()
    for fixture in chosen:
        if not fixture.is_dir():
            print(f"regen_goldens: {fixture}: no such fixture", file=sys.stderr)
            return 2
        expected = fixture / "expected.json"
        new = render(scan_fixture(fixture))
        old = expected.read_text() if expected.is_file() else ""
        expected.write_text(new)
        print(f"{'unchanged' if old == new else 'UPDATED  '} {expected.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
