"""Totals of the conformance comparisons per loader, printed after the run (`make conformance`)."""

from __future__ import annotations

import pytest

from tests.conformance.compare import totals


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in totals():
        terminalreporter.write_line(line)
