"""The conformance report per loader (each config's verdict, then the totals), printed after the run."""

from __future__ import annotations

import pytest

from tests.conformance.compare import report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in report():
        terminalreporter.write_line(line)
