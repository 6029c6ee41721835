"""The menu's first frame before urwid (bootmenu/firstframe.py): the same screen the urwid menu draws with no entry,
sized and styled as bootmenu/console.py decides, and keys typed before urwid takes over reach the menu."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect
import pytest

from bootmenu import console, firstframe, widgets
from bootmenu.console import ASCII_GLYPHS, UNICODE_GLYPHS
from bootmenu.model import MenuModel, MenuPath
from discovery.settings import cmdline_flag
from tests.bootmenu.test_cmd_ui import REPO, fake_daemon, finish


def urwid_first_frame(cols: int, rows: int, *, ascii: bool) -> list[str]:
    view = widgets.MenuView(ASCII_GLYPHS if ascii else UNICODE_GLYPHS, "bootmenu")
    model = MenuModel()
    view.show(model, model.rows(MenuPath()))
    canvas = view.render((cols, rows), focus=True)
    return [line.decode("utf-8").rstrip() for line in canvas.text]


@pytest.mark.parametrize(("cols", "rows"), [(80, 24), (100, 37), (40, 10)])
@pytest.mark.parametrize("ascii", [True, False])
def test_the_same_screen_as_the_urwid_menu_before_any_entry(cols: int, rows: int, ascii: bool) -> None:
    assert firstframe.lines(cols, rows, ascii=ascii) == urwid_first_frame(cols, rows, ascii=ascii)


def test_the_hint_is_the_menus() -> None:
    assert firstframe.HINT == widgets.MenuView.HINT


def test_the_escape_codes_draw_every_line_and_never_the_last_cell() -> None:
    out = firstframe.frame(80, 24, ascii=True, mono=False)
    assert out.startswith("\x1b[?1049h\x1b[0m\x1b[H\x1b[2J")  # urwid's alternate screen, then clear
    assert "\x1b[1;1H\x1b[0;1;37;44mbootmenu\x1b[0m" in out
    assert "\x1b[21;1H" + "-" * 80 in out
    assert "\x1b[22;1HLooking for devices..." in out
    assert f"\x1b[24;1H\x1b[0;90m{firstframe.HINT}\x1b[0m" in out
    narrow = firstframe.frame(40, 10, ascii=True, mono=True)
    assert f"\x1b[10;1H{firstframe.HINT[:39]}\x1b" in narrow


@pytest.mark.parametrize(
    "cmdline",
    [
        "",
        "bootmenu.ascii",
        "bootmenu.ascii=0 quiet",
        "bootmenu.mono=yes bootmenu.mono=off",
        "bootmenu.mono=maybe",
        "bootmenu.timeline=1",
        "bootmenu.console=100x30",
        "bootmenu.console=10x3",
        "bootmenu.console=wide",
        "bootmenu.console=120x40 bootmenu.console=90x30",
    ],
)
def test_reads_the_command_line_as_console_and_settings_do(cmdline: str) -> None:
    for name in ("ascii", "mono", "timeline"):
        assert firstframe._flag(cmdline, name) == cmdline_flag(cmdline, name)
    expected = console.size_override(cmdline) or console.FALLBACK_SIZE
    assert firstframe._size(-1, cmdline) == expected


def test_outside_the_payload_or_without_a_terminal_it_draws_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firstframe, "MARKER", "/nonexistent/bootmenu-payload")
    assert not firstframe.draw([])
    assert not firstframe.draw(["--payload", "--help"])
    assert not firstframe.draw(["--payload"])  # pytest's stdin is no terminal
    assert not firstframe.drawn()


# The menu as /usr/bin/bootmenu starts it (bootmenu/__main__.py), held between the first frame and the imports until
# the test has typed its key: it blocks opening the FIFO in argv[1] until the test writes to it.
HELD = """
import sys
from bootmenu import firstframe
args = sys.argv[2:]
print("FIRST-FRAME-DRAWN", firstframe.draw(args), flush=True)
with open(sys.argv[1]) as gate:
    gate.read()
from bootmenu.cli import main
sys.exit(main(["ui", *args]))
"""


def test_a_key_typed_before_urwid_starts_reaches_the_menu(tmp_path: Path) -> None:
    sock, gate = tmp_path / "d.sock", tmp_path / "go"
    os.mkfifo(gate)
    listener = fake_daemon(sock)
    env = {**os.environ, "TERM": "vt100"}
    args = [str(gate), "--socket", str(sock), "--payload"]
    child = pexpect.spawn(sys.executable, ["-c", HELD, *args], cwd=str(REPO), env=env, dimensions=(24, 80))
    try:
        child.expect("h=help", timeout=20)  # the first frame, drawn before urwid is imported
        child.expect("FIRST-FRAME-DRAWN True", timeout=10)
        child.send("x")  # exit to a shell: the menu must see it once it runs
        gate.write_text("go")
        assert finish(child) == 3
    finally:
        child.terminate(force=True)
        listener.close()


def test_the_first_frame_imports_nothing_heavy() -> None:
    code = (
        "import sys; from bootmenu import firstframe; "
        "print('HEAVY', [m for m in ('urwid', 'discovery', 'bootmenu.controller', 're') if m in sys.modules])"
    )
    out = pexpect.run(sys.executable, args=["-S", "-c", code], cwd=str(REPO))
    assert b"HEAVY []" in out


def test_a_menu_that_dies_before_urwid_leaves_the_terminal_as_it_was() -> None:
    code = "from bootmenu import firstframe; firstframe.draw(['--payload']); raise SystemExit(7)"
    child = pexpect.spawn(sys.executable, ["-c", code], cwd=str(REPO), env={**os.environ, "TERM": "vt100"})
    child.expect(pexpect.EOF, timeout=20)
    child.close()
    out = child.before.decode()
    assert child.exitstatus == 7
    assert "h=help" in out
    assert out.rstrip().endswith(firstframe.LEAVE_ALTERNATE)  # back on the main screen


def test_in_the_payload_the_first_frame_quiets_kernel_messages_until_the_menu_or_a_shell_takes_over(
    tmp_path: Path,
) -> None:
    # Kernel messages (under `quiet`, errors such as a module load failing during coldplug) would scribble over the
    # frame; the level the frame found goes back when the process ends before urwid (a shell gets the console).
    marker, printk = tmp_path / "bootmenu-payload", tmp_path / "printk"
    marker.write_text("")
    printk.write_text("7\t4\t1\t7\n")
    code = (
        f"from bootmenu import firstframe; firstframe.MARKER = {str(marker)!r}; firstframe.PRINTK = {str(printk)!r}; "
        f"firstframe.draw(['--payload']); print('during', open({str(printk)!r}).read().split()); raise SystemExit(3)"
    )
    host_level = Path("/proc/sys/kernel/printk").read_text()
    child = pexpect.spawn(sys.executable, ["-c", code], cwd=str(REPO), env={**os.environ, "TERM": "vt100"})
    child.expect(pexpect.EOF, timeout=20)
    child.close()
    assert child.exitstatus == 3
    assert "during ['1']" in child.before.decode()
    assert printk.read_text().split() == ["7"]
    assert Path("/proc/sys/kernel/printk").read_text() == host_level  # a host's own level is never touched


def test_the_urwid_menu_restores_the_level_the_first_frame_found(tmp_path: Path) -> None:
    printk = tmp_path / "printk"
    printk.write_text("4\t4\t1\t7\n")
    assert firstframe.quiet_kernel(str(printk)) == 4
    assert printk.read_text().split() == ["1"]
    assert firstframe.quiet_kernel(str(printk)) is None  # already quiet: nothing saved twice
    level = console.ConsoleLogLevel(printk, saved=firstframe.take_printk())
    assert firstframe.take_printk() is None  # the menu owns it now, not the exit handler
    level.lower()  # the menu's own lowering keeps the level found first
    level.restore()
    assert printk.read_text().split() == ["4"]


def test_the_device_behind_dev_console_is_decoded_as_the_kernel_encodes_it() -> None:
    # new_encode_dev(MKDEV(4, 64)) for ttyS0, and a pty with a minor above 255 (136:300).
    assert firstframe.decode_dev(64 | 4 << 8) == (4, 64)
    assert firstframe.decode_dev(44 | 136 << 8 | 256 << 12) == (136, 300)


def test_a_menu_on_another_console_imports_when_the_cpu_is_idle_then_gets_its_scheduling_back() -> None:
    # A pty is never the device behind /dev/console: this menu is a secondary one (tty1 beside ttyS0).
    code = (
        "import os; from bootmenu import firstframe; firstframe._secondary = lambda fd: True; "
        "firstframe.draw(['--payload']); during = (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)); "
        "firstframe.release(); print('SCHED', during, (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)))"
    )
    child = pexpect.spawn(sys.executable, ["-c", code], cwd=str(REPO), env={**os.environ, "TERM": "vt100"})
    child.expect(r"SCHED \((\d+), (\d+)\) \((\d+), (\d+)\)", timeout=20)
    during, after = child.match.groups()[:2], child.match.groups()[2:]
    child.expect(pexpect.EOF, timeout=20)
    assert (int(during[0]), int(during[1])) == (os.SCHED_IDLE, firstframe.SECONDARY_NICE)
    assert (int(after[0]), int(after[1])) == (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0))
