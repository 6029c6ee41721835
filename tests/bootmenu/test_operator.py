"""The operator's actions in the menu: reboot and power off (asked first), the action rows, the help from the key
table. Against a real Unix socket served by the in-test daemon of test_controller."""

from __future__ import annotations

from pathlib import Path

from bootmenu import keys
from discovery import protocol as p
from tests.bootmenu.test_controller import FakeDaemon, daemon, make_controller, pump, screen

__all__ = ["daemon"]  # the fixture


def test_power_off_asks_first_and_no_sends_nothing(daemon: FakeDaemon, tmp_path: Path) -> None:
    controller = make_controller(tmp_path / "daemon.sock")
    pump(controller)
    controller.feed(["P"])
    assert isinstance(daemon.request(), p.CancelAutoboot)
    shown = screen(controller)
    assert "Power the machine off now?" in shown
    assert "y: yes.  n, Esc, q: no, back to the menu." in shown
    controller.feed(["enter", "x", "n"])  # keys other than y/n do nothing in the question (Enter must not boot)
    assert "Power the machine off now?" not in screen(controller)
    controller.feed(["R"])
    assert "Reboot the machine now?" in screen(controller)
    controller.feed(["y"])
    assert daemon.request() == p.Power("reboot")
    daemon.send(p.Status(p.StatusLine(p.Level.INFO, "dry run: would reboot the machine: sync(), reboot(...)")))
    pump(controller)
    assert "dry run: would reboot the machine" in screen(controller)


def test_action_rows_below_the_entries_run_their_command(daemon: FakeDaemon, tmp_path: Path) -> None:
    controller = make_controller(tmp_path / "daemon.sock")
    pump(controller)
    shown = screen(controller)
    assert "[System]" in shown
    for title in ("Reboot", "Power off", "Exit to shell"):
        assert f"    {title}" in shown
    controller.feed(["end"])  # End is the last entry, not the action rows
    assert ">   Fedora Linux (0-rescue)" in screen(controller)
    for _ in range(3):
        controller.feed(["down"])
        if ">   Reboot" in screen(controller):
            break
    assert ">   Reboot" in screen(controller)
    controller.feed(["down", "enter"])
    assert "Power the machine off now?" in screen(controller)
    controller.feed(["y"])
    assert isinstance(daemon.request(), p.CancelAutoboot)
    assert daemon.request() == p.Power("poweroff")


def test_help_is_the_key_table(daemon: FakeDaemon, tmp_path: Path) -> None:
    controller = make_controller(tmp_path / "daemon.sock")
    pump(controller)
    controller.feed(["h"])
    controller.feed(["end"])
    text = screen(controller)
    for command in (keys.Command.REBOOT, keys.Command.POWER_OFF):
        b = keys.binding(command)
        assert f"{b.label():<14} {b.help}" in text
    assert keys.command_for("y") is None, "a question's keys do nothing in the menu"
    assert keys.command_for("y", dialog=True) is keys.Command.YES
