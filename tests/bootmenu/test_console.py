"""Serial-console handling: size fallback and override, ASCII drawing, and the kernel console log level."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bootmenu import console


def test_size_override_from_the_kernel_command_line() -> None:
    assert console.size_override("quiet bootmenu.console=132x43 ro") == (132, 43)
    assert console.size_override("bootmenu.console=100x30 bootmenu.console=120x40") == (120, 40)
    assert console.size_override("bootmenu.console=3x2") is None  # nonsense: ignored, not obeyed
    assert console.size_override("console=ttyS0,115200") is None


def test_a_terminal_without_a_size_gets_80x24_and_vt100_gets_ascii_and_mono() -> None:
    read_end, write_end = os.pipe()  # not a terminal: reports no size, like a serial line
    try:
        settings = console.detect(read_end, {"TERM": "vt100"}, "")
    finally:
        os.close(read_end)
        os.close(write_end)
    assert settings.size == (80, 24)
    assert settings.ascii
    assert settings.mono
    assert settings.glyphs is console.ASCII_GLYPHS


def test_an_override_wins_over_the_fallback_and_flags_win_over_detection() -> None:
    read_end, write_end = os.pipe()
    try:
        settings = console.detect(read_end, {"TERM": "linux"}, "bootmenu.console=100x30", ascii=False, mono=False)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert settings == console.ConsoleSettings(size=(100, 30), ascii=False, mono=False)


def test_line_drawing_only_on_utf8_terminals_known_to_show_it() -> None:
    assert not console.needs_ascii("linux", "UTF-8")
    assert not console.needs_ascii("xterm-256color", "utf8")
    assert console.needs_ascii("vt100", "UTF-8")
    assert console.needs_ascii("linux", "ANSI_X3.4-1968")
    assert console.needs_ascii("", "UTF-8")


def test_console_log_level_is_lowered_and_restored(tmp_path: Path) -> None:
    printk = tmp_path / "printk"
    printk.write_text("7\t4\t1\t7\n")
    level = console.ConsoleLogLevel(printk)
    with level:
        assert printk.read_text() == "1\n"  # one number: only console_loglevel changes
        level.restore()  # before booting
        assert printk.read_text() == "7\n"
        level.lower()  # back in the menu after a failed boot
        assert printk.read_text() == "1\n"
    assert printk.read_text() == "7\n"


def test_console_log_level_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(console.ConsoleError, match="cannot read console log level") as info:
        console.ConsoleLogLevel(tmp_path / "missing").lower()
    assert info.value.filename == str(tmp_path / "missing")
