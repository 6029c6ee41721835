"""Totals of the conformance comparisons, printed after the run (`make conformance`)."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conformance.test_grub_conformance import VERDICTS
from tests.conformance.test_sdboot_conformance import VERDICTS as SDBOOT_VERDICTS


def _totals(verdicts: list[tuple[str, str, str]]) -> str:
    totals = Counter(verdict for _, _, verdict in verdicts)
    line = ", ".join(f"{totals[v]} {v}" for v in ("identical", "explained", "different"))
    return f"{len(verdicts)} configs: {line}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if VERDICTS:
        terminalreporter.write_line(f"GRUB 2.06 (grub-emu): {_totals(VERDICTS)}")
    if SDBOOT_VERDICTS:
        terminalreporter.write_line(f"systemd-boot 252 (OVMF, QEMU TCG): {_totals(SDBOOT_VERDICTS)}")
