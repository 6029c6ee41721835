"""Widgets rendered to text at 80x24 and driven by keypresses, as a serial console user would see them."""

from __future__ import annotations

import dataclasses

import pytest
import urwid

from bootmenu import keys, palette, widgets
from bootmenu.console import ASCII_GLYPHS, UNICODE_GLYPHS
from bootmenu.edit import EntryEdit
from bootmenu.model import MenuModel, MenuPath
from discovery import protocol as p
from tests.bootmenu.menu_data import ADVANCED, entry, hello

SIZE = (80, 24)


def screen_text(widget: urwid.Widget, size: tuple[int, int] = SIZE) -> list[str]:
    canvas = widget.render(size, focus=True)
    return [line.decode("utf-8").rstrip() for line in canvas.text]


def menu(model: MenuModel | None = None) -> tuple[widgets.MenuView, MenuModel]:
    if model is None:
        model = MenuModel()
        model.apply(hello())
    view = widgets.MenuView(ASCII_GLYPHS, "bootmenu")
    view.show(model, model.rows(MenuPath()))
    return view, model


def test_menu_at_80x24_shows_devices_entries_default_and_selection() -> None:
    view, _ = menu()
    lines = screen_text(view)
    assert len(lines) == 24
    assert all(len(line) <= 80 for line in lines)
    assert lines[0] == "bootmenu"
    assert lines[1] == "-" * 80
    assert lines[2:8] == [
        '[Disk: vda2 ext4 "root"]',
        ">   Ubuntu",
        f"  * {ADVANCED} >",
        '[Disk: vdb1 xfs "boot"]',
        "    Fedora Linux (6.11.4-301.fc41.x86_64)",
        "    Fedora Linux (0-rescue)",
    ]
    assert lines[-1].startswith("Enter=boot e=edit i=info")
    assert "vda2: 3 boot entries" in lines


def test_movement_keys_skip_headers() -> None:
    view, _ = menu()
    size = (80, 20)
    assert view.menu.selected_key() == "entry:u1"
    view.menu.keypress(size, "down")
    assert view.menu.selected_key() == "submenu:vda2:" + ADVANCED
    view.menu.keypress(size, "down")  # over the vdb1 header
    assert view.menu.selected_key() == "entry:f1"
    view.menu.keypress(size, "end")
    assert view.menu.selected_key() == "entry:f2"
    view.menu.keypress(size, "home")
    assert view.menu.selected_key() == "entry:u1"
    view.menu.keypress(size, "page down")
    assert view.menu.selected_key() == "entry:f2"
    assert view.menu.keypress(size, "e") == "e"  # not a movement: for the controller


def test_selection_stays_on_the_same_entry_when_entries_come_and_go() -> None:
    view, model = menu()
    size = (80, 20)
    view.menu.keypress(size, "end")
    assert view.menu.selected_key() == "entry:f2"
    model.apply(p.EntryAdded(entry("n1", "New first entry", "vda2"), after=None))
    view.show(model, model.rows(MenuPath()))
    assert view.menu.selected_key() == "entry:f2"
    model.apply(p.EntryRemoved("f2"))
    view.show(model, model.rows(MenuPath()))
    assert view.menu.selected_key() == "entry:f1"  # the nearest entry, not the top of the list


def test_unicode_glyphs_draw_boxes_ascii_glyphs_do_not() -> None:
    info = hello().entries[0]
    for glyphs, corner in ((UNICODE_GLYPHS, "┌"), (ASCII_GLYPHS, "+")):
        editor = widgets.Editor(info, glyphs, lambda _c: None, lambda: None)
        text = screen_text(editor, (76, 14))
        assert text[0].startswith(corner)
        if glyphs is ASCII_GLYPHS:
            assert all(ch.isascii() for line in text for ch in line)


def test_editor_edits_the_command_line_and_ctrl_x_boots_it() -> None:
    booted: list[EntryEdit] = []
    cancelled: list[bool] = []
    editor = widgets.Editor(hello().entries[3], ASCII_GLYPHS, booted.append, lambda: cancelled.append(True))
    size = (76, 14)
    assert any("linux root=UUID=5e8a ro rhgb quiet" in line for line in screen_text(editor, size))
    for ch in " single":
        editor.keypress(size, ch)
    assert editor.keypress(size, "q") is None  # typed, not "leave"
    editor.keypress(size, "backspace")
    editor.keypress(size, "ctrl x")
    assert [b.cmdline for b in booted] == ["root=UUID=5e8a ro rhgb quiet single"]
    editor.keypress(size, "esc")
    assert cancelled == [True]


def test_editor_edits_kernel_adds_removes_and_reorders_initrds() -> None:
    booted: list[EntryEdit] = []
    editor = widgets.Editor(hello().entries[0], ASCII_GLYPHS, booted.append, lambda: None)
    size = (76, 16)
    shown = "\n".join(screen_text(editor, size))
    assert "Kernel:     /boot/vmlinuz-6.8.0-31-generic" in shown
    assert "Initrd 1:   /boot/initrd.img-6.8.0-31-generic" in shown
    for key in ("up", "up", "ctrl n", *"/boot/microcode.img", "ctrl u"):  # command line -> devicetree -> initrd 1
        editor.keypress(size, key)
    assert editor.state().initrds == ("/boot/microcode.img", "/boot/initrd.img-6.8.0-31-generic")
    for key in ("up", "end", *"-old"):  # the kernel row, at its end
        editor.keypress(size, key)
    editor.keypress(size, "ctrl x")
    assert booted[-1].kernel == "/boot/vmlinuz-6.8.0-31-generic-old"
    assert booted[-1].initrds == ("/boot/microcode.img", "/boot/initrd.img-6.8.0-31-generic")
    for key in ("down", "ctrl d", "ctrl k"):  # initrd 1 moved below initrd 2, then removed
        editor.keypress(size, key)
    assert editor.state().initrds == ("/boot/initrd.img-6.8.0-31-generic",)


def test_editor_refuses_to_boot_an_empty_or_relative_path_and_says_why() -> None:
    booted: list[EntryEdit] = []
    editor = widgets.Editor(hello().entries[0], ASCII_GLYPHS, booted.append, lambda: None)
    size = (76, 16)
    for key in ("up", "up", "ctrl n", "ctrl x"):
        editor.keypress(size, key)
    assert booted == []
    assert any("initrd 2: empty" in line for line in screen_text(editor, size))
    for key in "boot/x.img":
        editor.keypress(size, key)
    assert any("initrd 2: boot/x.img is not an absolute path" in line for line in screen_text(editor, size))
    editor.keypress(size, "ctrl k")
    editor.keypress(size, "ctrl x")
    assert booted[-1].initrds == ("/boot/initrd.img-6.8.0-31-generic",)


def test_details_window_lists_kernel_initrds_cmdline_and_source() -> None:
    info = hello().entries[0]
    lines = widgets.info_lines(info, hello().devices[0])
    assert "Kernel:   /boot/vmlinuz-6.8.0-31-generic" in lines
    assert "Initrds:  /boot/initrd.img-6.8.0-31-generic" in lines
    assert "Cmdline:  ro quiet" in lines
    assert "Source:   /boot/grub/grub.cfg:109 (grub)" in lines
    closed: list[bool] = []
    window = widgets.TextWindow("Details", lines, ASCII_GLYPHS, lambda: closed.append(True))
    assert "Details" in screen_text(window, (70, 12))[0]
    window.keypress((70, 12), "esc")
    assert closed == [True]


def test_help_is_generated_from_the_key_table() -> None:
    text = "\n".join(widgets.help_lines())
    for binding in keys.KEY_BINDINGS:
        assert binding.label() in text
        assert binding.help in text
    assert keys.is_command_key(keys.Command.EDIT_BOOT, "ctrl x")
    assert keys.command_for("esc") is keys.Command.BACK
    assert keys.command_for("esc", editor=True) is keys.Command.EDIT_CANCEL
    assert keys.command_for("z") is None


def test_palettes_cover_every_attribute_and_mono_needs_no_colour() -> None:
    assert len(palette.check(palette.COLOUR)) == len(palette.Attr)
    mono = palette.check(palette.MONO)
    assert all(entry[1] in ("default", "standout") and entry[2] == "default" for entry in mono)
    broken = (*palette.COLOUR[:-1], palette.PaletteEntry(palette.Attr.EDIT, "no such colour", "default", "bold"))
    with pytest.raises(palette.PaletteError, match="entry edit"):
        palette.check(broken)
    with pytest.raises(palette.PaletteError, match="lacks edit"):
        palette.check(palette.COLOUR[:-1])


def test_a_text_window_can_follow_its_newest_line() -> None:
    window = widgets.TextWindow("Boot", ["first"], ASCII_GLYPHS, lambda: None)
    window.set_lines([f"line {i}" for i in range(40)], follow=True)
    inside = [line.strip("|").strip() for line in screen_text(window, (40, 10))[1:-1]]
    assert inside[-1] == "line 39"
    assert "line 0" not in inside


def test_settings_warnings_stay_on_the_status_line() -> None:
    model = MenuModel()
    warnings = [
        "kernel command line: bootmenu.colour=red: unknown parameter ignored (known: bootmenu.timeout, ...)",
        "second",
    ]
    model.apply(dataclasses.replace(hello(), settings={"warnings": warnings}))
    for i in range(10):
        model.apply(p.Status(p.StatusLine(p.Level.INFO, f"later message {i}")))
    view, _ = menu(model)
    lines = screen_text(view)
    pinned = [line for line in lines if "bootmenu.colour=red" in line]
    assert len(pinned) == 1
    assert pinned[0].startswith("! settings (+1 more: l): kernel command line: bootmenu.colour=red")
    assert len(pinned[0]) <= 80
    assert "later message 9" in "\n".join(lines), "the newest message is still shown"


def test_details_show_what_the_config_asked_of_the_countdown() -> None:
    info = dataclasses.replace(hello().entries[0], config_timeout=0.0, timeout_style="hidden")
    lines = widgets.info_lines(info, None)
    assert "Config:   timeout 0 s, menu style hidden (not used: the firmware's countdown governs)" in lines
    used = widgets.info_lines(info, None, config_timeout_used=True)
    assert "Config:   timeout 0 s, menu style hidden (used for autoboot)" in used
    assert not any(line.startswith("Config:") for line in widgets.info_lines(hello().entries[0], None))


def test_editor_shows_the_daemons_path_check_only_for_the_paths_it_asked_about() -> None:
    asked: list[tuple[str, ...]] = []
    editor = widgets.Editor(hello().entries[0], ASCII_GLYPHS, lambda _e: None, lambda: None, asked.append)
    size = (76, 16)
    assert asked == [("/boot/vmlinuz-6.8.0-31-generic", "/boot/initrd.img-6.8.0-31-generic")]
    editor.show_checked(p.PathsChecked("u1", asked[0], (), "vda2"))
    assert any("All paths found on vda2." in line for line in screen_text(editor, size))
    for key in ("up", "up", "end", *"-old"):  # initrd 1 changes: a new question, the old answer no longer shown
        editor.keypress(size, key)
    assert asked[-1] == ("/boot/vmlinuz-6.8.0-31-generic", "/boot/initrd.img-6.8.0-31-generic-old")
    editor.show_checked(p.PathsChecked("u1", asked[0], (), "vda2"))  # a late answer to the first question
    assert not any("All paths found" in line for line in screen_text(editor, size))
    editor.show_checked(p.PathsChecked("u1", asked[-1], ("/boot/initrd.img-6.8.0-31-generic-old",), "vda2"))
    assert any("not on vda2: /boot/initrd.img-6.8.0-31-generic-old" in line for line in screen_text(editor, size))
    remote = p.PathsChecked("u1", asked[-1], (), "eth0", asked[-1])  # a network entry's URLs: checked by the fetch
    editor.show_checked(remote)
    assert any("URLs are fetched when booting:" in line for line in screen_text(editor, size))
    count = len(asked)
    for key in ("down", "down", *" single"):  # typing in the command line asks nothing
        editor.keypress(size, key)
    assert editor.cmdline == "ro quiet single"
    assert len(asked) == count
