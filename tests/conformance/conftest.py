"""Totals of the conformance comparisons per loader, printed after the run (`make conformance`)."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conformance.test_grub_conformance import VERDICTS

# The syslinux comparisons put "syslinux " before their fixture's name in VERDICTS.
LOADERS = (("GRUB 2.06 (grub-emu)", False), ("syslinux 6.04 (QEMU)", True))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for title, is_syslinux in LOADERS:
        rows = [v for name, _, v in VERDICTS if name.startswith("syslinux ") == is_syslinux]
        if not rows:
            continue
        totals = Counter(rows)
        line = ", ".join(f"{totals[v]} {v}" for v in ("identical", "explained", "different"))
        terminalreporter.write_line(f"{title}: {len(rows)} configs: {line}")
