"""tools/bench.py prints each issue-15 goal beside the figure measured, and says which ones are met."""

from __future__ import annotations

from tools.bench import goal_line


def test_goal_met_and_not_met() -> None:
    assert goal_line("menu with every entry / bare /init", 1.42, 1.5, "x").split()[-1] == "met"
    line = goal_line("first menu frame / bare /init", 3.4, 1.25, "x")
    assert "3.40x" in line
    assert "<= 1.25x" in line
    assert line.endswith("NOT met")


def test_goal_not_measured() -> None:
    line = goal_line("whole path in a -m 256M VM (MiB of RAM)", None, 256, " MiB")
    assert line.endswith("not measured here")
    assert "<= 256 MiB" in line


def test_goal_checked_by_a_test_names_it() -> None:
    line = goal_line("whole path in a -m 256M VM", None, 256, " MiB", "tests/qemu/test_small_memory.py")
    assert line.endswith("tests/qemu/test_small_memory.py")
