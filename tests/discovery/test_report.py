"""`bootmenu report`: every section present, bounded, from a run directory like the payload's."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bootmenu.cli import main
from discovery import report
from discovery.report import Sources


def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "pstore").mkdir(parents=True)
    (run / "last-plan.txt").write_text("2026-01-01 00:00:00 UTC Fedora\ncmdline: 'root=/dev/vda2 ro'\n")
    (run / "pstore" / "dmesg-ramoops-0").write_text("Kernel panic - not syncing: Attempted to kill init!\n")
    (run / "daemon.log").write_text("x" * (report.MAX_FILE_BYTES + 100) + "\nlast daemon line\n")
    return run


def test_report_sections(tmp_path: Path) -> None:
    text = report.report(Sources(run=run_dir(tmp_path), kmsg=None), now=0)
    assert text.startswith("bootmenu report, 1970-01-01 00:00:00 UTC")
    titles = re.findall(r"^===== (.*) =====$", text, re.MULTILINE)
    assert titles == ["system", "last boot plan", "pstore dmesg-ramoops-0", "daemon.log"]
    assert "cmdline: 'root=/dev/vda2 ro'" in text
    assert "Kernel panic - not syncing" in text
    assert "last daemon line" in text
    assert f"(last {report.MAX_FILE_BYTES} of" in text
    assert len(text) < 2 * report.MAX_FILE_BYTES


def test_report_without_anything(tmp_path: Path) -> None:
    text = report.report(Sources(run=tmp_path / "none", kmsg=tmp_path / "no-kmsg"))
    assert "(none: nothing was booted since this start)" in text
    assert "(no records from the previous kernel)" in text
    assert "no-kmsg: No such file or directory" in text


@pytest.mark.skipif(not os.access("/dev/kmsg", os.R_OK), reason="needs a readable /dev/kmsg")
def test_kmsg_records_are_read_until_the_end() -> None:
    lines = list(report.read_kmsg(Path("/dev/kmsg"), limit=50))
    assert 0 < len(lines) <= 50
    assert all(re.match(r"^\[ *\d+\.\d{6}\] ", line) for line in lines), lines[:3]


def test_bootmenu_report_writes_one_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.txt"
    assert main(["report", "--run-dir", str(run_dir(tmp_path)), "--no-kmsg", "-o", str(out)]) == 0
    assert "===== pstore dmesg-ramoops-0 =====" in out.read_text()
    assert str(out) in capsys.readouterr().err
    assert main(["report", "--run-dir", str(tmp_path), "--no-kmsg", "-o", str(tmp_path / "no" / "r.txt")]) == 1
