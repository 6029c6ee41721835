"""pytest plugin (`-p tests.bootmenu.urwid_parts_plugin`): urwid_parts.install() before any test module imports urwid,
and the session fails if a test needed a name outside urwid_parts.PARTS (the real urwid/__init__ ran)."""

from __future__ import annotations

import pytest

from bootmenu import urwid_parts


def pytest_configure(config: pytest.Config) -> None:
    assert urwid_parts.install(), "urwid was imported before the plugin"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if urwid_parts.is_full():
        print(f"\nurwid_parts: the full urwid package was imported, for {urwid_parts.full_for}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        print("\nurwid_parts: parts only")
