"""Totals of the conformance comparisons, printed after the run (`make conformance`)."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conformance.test_grub_conformance import VERDICTS
from tests.conformance.test_uboot_conformance import VERDICTS as UBOOT_VERDICTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if UBOOT_VERDICTS:
        totals = Counter(verdict for _, _, verdict in UBOOT_VERDICTS)
        line = ", ".join(f"{totals[v]} {v}" for v in ("identical", "explained", "different"))
        terminalreporter.write_line(f"U-Boot 2023.01 (u-boot-qemu, sysboot): {len(UBOOT_VERDICTS)} configs: {line}")
    if not VERDICTS:
        return
    totals = Counter(verdict for _, _, verdict in VERDICTS)
    line = ", ".join(f"{totals[v]} {v}" for v in ("identical", "explained", "different"))
    terminalreporter.write_line(f"GRUB 2.06 (grub-emu): {len(VERDICTS)} configs: {line}")
