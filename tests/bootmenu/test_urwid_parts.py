"""bootmenu.urwid_parts: the menu's tests pass with only the urwid modules it imports, and any other name still
works (it loads all of urwid)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The tests that draw and drive every widget and the controller's loop, at 80x24.
MENU_TESTS = (
    "tests/bootmenu/test_widgets.py",
    "tests/bootmenu/test_controller.py",
    "tests/bootmenu/test_firstframe.py",
)


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_menu_tests_pass_with_the_parts_only() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.bootmenu.urwid_parts_plugin",
            *MENU_TESTS,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "urwid_parts: parts only" in done.stdout


def test_the_menu_imports_neither_asyncio_nor_the_unused_widgets() -> None:
    out = _python(
        "import sys\n"
        "from bootmenu import urwid_parts\n"
        "assert urwid_parts.install()\n"
        "import bootmenu.controller\n"
        "print(urwid_parts.is_full(), 'asyncio' in sys.modules, 'urwid.widget.big_text' in sys.modules)\n"
    )
    assert out.split() == ["False", "False", "False"]


def test_a_name_outside_the_parts_loads_all_of_urwid() -> None:
    out = _python(
        "from bootmenu import urwid_parts\n"
        "assert urwid_parts.install()\n"
        "import urwid\n"
        "print(urwid.Text.__name__, urwid.FLOW, urwid_parts.is_full())\n"
        "print(urwid.BigText.__name__, urwid.widget.BigText is urwid.BigText, urwid_parts.is_full())\n"
    )
    assert out.split() == ["Text", "flow", "False", "BigText", "True", "True"]


def test_nothing_is_done_once_urwid_is_imported() -> None:
    out = _python(
        "import urwid\nfrom bootmenu import urwid_parts\nprint(urwid_parts.install(), urwid_parts.is_full())\n"
    )
    assert out.split() == ["False", "True"]
