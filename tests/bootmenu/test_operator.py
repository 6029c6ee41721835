"""The operator's actions in the menu: reboot and power off (asked first), the action rows, the help from the key
table. Against a real Unix socket served by the in-test daemon of test_controller."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import urwid

from bootmenu import keys
from bootmenu.controller import Controller, Mode
from discovery import protocol as p
from discovery import sysinfo
from tests.bootmenu.menu_data import hello
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
    text = screen(controller)
    for _ in range(len(keys.KEY_BINDINGS)):  # the help is longer than a screen: read it all, a page at a time
        controller.feed(["page down"])
        text += screen(controller)
    for command in (keys.Command.REBOOT, keys.Command.POWER_OFF):
        b = keys.binding(command)
        assert f"{b.label():<14} {b.help}" in text
    assert keys.command_for("y") is None, "a question's keys do nothing in the menu"
    assert keys.command_for("y", dialog=True) is keys.Command.YES


def test_system_information_window_scrolls_on_80x24(daemon: FakeDaemon, tmp_path: Path) -> None:
    from tests.discovery.test_sysinfo import fake_tree

    info = sysinfo.gather(*fake_tree(tmp_path), lambda name: ("ext4", "3 boot entries") if name == "vda1" else ("", ""))
    more = [sysinfo.Disk(f"nvme{n}n1", "Samsung SSD 980 PRO 1TB", 10**12) for n in range(8)]
    info = dataclasses.replace(info, disks=(*more, *info.disks))  # more than one screen
    controller = make_controller(tmp_path / "daemon.sock")
    pump(controller)
    controller.feed(["s"])
    assert isinstance(daemon.request(), p.CancelAutoboot)
    assert isinstance(daemon.request(), p.GetSysinfo)
    assert "Asking the boot daemon..." in screen(controller)
    daemon.send(p.Sysinfo(info))
    pump(controller)
    shown = screen(controller)
    assert "System information" in shown
    assert "Machine:   Supermicro  SYS-1029P-WTR  0123456789" in shown
    assert "Serial:    S123456X" in shown
    assert "Firmware:  UEFI  American Megatrends Inc.  3.4  (11/25/2020)" in shown
    assert "CPUs:      5 x Intel(R) Xeon(R) Gold 6230" in shown
    assert "Memory:    3.8 GiB" in shown
    assert "Watchdog:" not in shown, "24 rows: the rest is below"
    controller.feed(["end"])
    shown = screen(controller)
    assert "vda1  512 MiB  ext4  3 boot entries" in shown
    assert "vda2  511 MiB  not examined" in shown
    assert "eth0  52:54:00:12:34:56  up  link  1000 Mb/s" in shown
    assert "watchdog0  i6300ESB timer  timeout 30 s  inactive" in shown
    controller.feed(["q"])
    assert "Memory:" not in screen(controller)


def test_i_on_an_action_row_is_the_system_information(daemon: FakeDaemon, tmp_path: Path) -> None:
    controller = make_controller(tmp_path / "daemon.sock")
    pump(controller)
    controller.feed(["end", "down"])
    assert ">   System information" in screen(controller)
    controller.feed(["i"])
    assert isinstance(daemon.request(), p.CancelAutoboot)
    assert isinstance(daemon.request(), p.GetSysinfo)
    controller.feed(["esc", "enter"])  # Enter on the row: the same window
    assert isinstance(daemon.request(), p.GetSysinfo)


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[FakeDaemon]:
    """A daemon whose settings say a password is set (the daemon checks it; this one answers as the test says)."""
    server = FakeDaemon(tmp_path / "locked.sock", dataclasses.replace(hello(), settings={"password": True}))
    yield server
    server.close()


def _answer(controller: Controller, server: FakeDaemon, typed: str, action: str, result: p.AuthResult) -> None:
    controller.feed([*typed, "enter"])
    assert server.request() == p.Authenticate(typed, action, "ttyS0")
    server.send(result)
    pump(controller)


def test_the_shell_asks_for_the_password_and_the_daemons_answer_decides(locked: FakeDaemon, tmp_path: Path) -> None:
    controller = make_controller(tmp_path / "locked.sock", Mode.PAYLOAD)
    controller.console_name = "ttyS0"
    pump(controller)
    controller.feed(["x"])
    shown = screen(controller)
    assert "Password to open a shell" in shown
    controller.feed([*"hunter2"])
    assert "Password: *******" in screen(controller), "the answer is not echoed"
    controller.feed(["esc"])
    assert "Password to open a shell" not in screen(controller)
    controller.feed(["x"])
    _answer(controller, locked, "guess", "shell", p.AuthResult(False, "shell", "wrong password"))
    assert "wrong password" in screen(controller)
    assert controller.exit_action != "shell"
    controller.feed(["x"])
    with pytest.raises(urwid.ExitMainLoop):
        _answer(controller, locked, "hunter2", "shell", p.AuthResult(True, "shell", seconds=300))
    assert controller.exit_action == "shell"


def test_booting_a_non_default_entry_or_editing_asks_but_the_default_boots(locked: FakeDaemon, tmp_path: Path) -> None:
    controller = make_controller(tmp_path / "locked.sock")
    controller.console_name = "ttyS0"
    pump(controller)
    controller.feed(["right", "enter"])  # the submenu's default entry: no password
    assert locked.request() == p.Boot("u2", None)
    controller.feed(["esc", "q", "end", "enter"])  # Fedora rescue (top level) is not the default
    assert "Password to boot this entry" in screen(controller)
    _answer(controller, locked, "hunter2", "boot", p.AuthResult(True, "boot", seconds=300))
    assert locked.request() == p.Boot("f2", None)
    controller.feed(["esc", "e"])  # given a moment ago: the editor opens at once
    assert "Edit: Fedora Linux (0-rescue)" in screen(controller)
    controller.feed(["esc"])
    locked.send(dataclasses.replace(hello(), settings={"password": True}))  # as after a reconnection
    pump(controller)
    controller.feed(["e"])
    assert "Password to edit an entry" in screen(controller), "a new connection has not been given the password"


def test_power_asks_the_question_then_the_password(locked: FakeDaemon, tmp_path: Path) -> None:
    controller = make_controller(tmp_path / "locked.sock")
    controller.console_name = "ttyS0"
    pump(controller)
    controller.feed(["P", "y"])
    assert "Password to power the machine off" in screen(controller)
    _answer(controller, locked, "pw", "power", p.AuthResult(True, "power", seconds=300))
    assert locked.request() == p.Power("poweroff")
