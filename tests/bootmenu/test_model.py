"""The menu model, driven only by protocol messages: rows by device and submenu, default marking, updates."""

from __future__ import annotations

from bootmenu.model import Change, EntryRow, HeaderRow, MenuModel, MenuPath, NoteRow, SubmenuRow
from discovery import protocol as p
from tests.bootmenu.menu_data import ADVANCED, device, entry, hello


def texts(model: MenuModel, path: MenuPath | None = None) -> list[str]:
    out = []
    for row in model.rows(path or MenuPath()):
        mark = "*" if isinstance(row, EntryRow | SubmenuRow) and row.is_default else " "
        kind = {HeaderRow: "H", EntryRow: "E", SubmenuRow: "S", NoteRow: "N"}[type(row)]
        out.append(f"{kind}{mark}{row.text()}")
    return out


def test_hello_gives_devices_with_entries_and_one_row_per_submenu() -> None:
    model = MenuModel()
    assert model.apply(hello()) == Change.MENU | Change.STATUS | Change.COUNTDOWN
    assert texts(model) == [
        'H [Disk: vda2 ext4 "root"]',
        "E Ubuntu",
        f"S*{ADVANCED}",  # the default lives in the submenu: the submenu row is marked
        'H [Disk: vdb1 xfs "boot"]',
        "E Fedora Linux (6.11.4-301.fc41.x86_64)",
        "E Fedora Linux (0-rescue)",
    ]
    assert model.dry_run


def test_submenu_level_lists_its_entries_under_a_path_header() -> None:
    model = MenuModel()
    model.apply(hello())
    rows = texts(model, MenuPath("vda2", (ADVANCED,)))
    assert rows == [
        f'H [Disk: vda2 ext4 "root"] {ADVANCED}',
        "E*Ubuntu, with Linux 6.8.0-31-generic",
        "E Ubuntu, with Linux 6.8.0-31-generic (recovery mode)",
    ]
    assert model.menu_exists(MenuPath("vda2", (ADVANCED,)))
    assert not model.menu_exists(MenuPath("vdb1", (ADVANCED,)))


def test_entries_and_devices_come_and_go() -> None:
    model = MenuModel()
    model.apply(hello())
    assert model.apply(p.EntryAdded(entry("f3", "Fedora Linux (6.10)", "vdb1"), after="f1")) == Change.MENU
    assert [r.text() for r in model.rows(MenuPath()) if isinstance(r, EntryRow)][1:] == [
        "Fedora Linux (6.11.4-301.fc41.x86_64)",
        "Fedora Linux (6.10)",
        "Fedora Linux (0-rescue)",
    ]
    model.apply(p.EntryRemoved("f1"))
    model.apply(p.DeviceUpdated(device("sda1", "vfat", "USB", p.DeviceState.PROBING)))
    model.apply(p.DeviceRemoved("vda2"))
    model.apply(p.DeviceUpdated(device("sdb2", "swap", state=p.DeviceState.IGNORED)))
    model.apply(p.DeviceUpdated(device("sdc1", "ext4", "data")))  # mounted, no boot configs
    model.apply(p.DeviceUpdated(device("sdd1", "crypto_LUKS", state=p.DeviceState.LOCKED)))
    rows = texts(model)
    assert not any("sdb2" in r or "sdc1" in r for r in rows)
    locked = rows.index("H [Disk: sdd1 crypto_LUKS] (locked)")
    assert rows[locked + 1] == "N encrypted: not opened"
    assert 'H [Disk: sda1 vfat "USB"] (probing)' in rows
    assert "N reading boot configs..." in rows
    assert not any("Ubuntu" in r for r in rows if r.startswith("H"))
    assert "E Fedora Linux (6.11.4-301.fc41.x86_64)" not in rows


def test_an_entry_sent_again_replaces_the_old_one() -> None:
    model = MenuModel()
    model.apply(hello())
    model.apply(p.EntryAdded(entry("u1", "Ubuntu (edited config)", "vda2"), after=None))
    titles = [e.entry.title for e in model.entries]
    assert titles.count("Ubuntu (edited config)") == 1
    assert "Ubuntu" not in titles


def test_countdown_counts_down_locally_between_daemon_updates() -> None:
    now = [100.0]
    model = MenuModel(clock=lambda: now[0])
    model.apply(hello(p.Countdown("u2", 10.0)))
    assert model.countdown_text() == "Booting 'Ubuntu, with Linux 6.8.0-31-generic' in 10s - any key stops"
    now[0] += 3.5
    assert model.remaining() == 7
    model.apply(p.CountdownUpdate(p.Countdown("u2", 5.0)))
    assert model.remaining() == 5
    assert model.cancel_countdown()
    assert model.countdown_text() == ""
    assert not model.cancel_countdown()  # nothing left to tell the daemon


def test_why_autoboot_is_held_or_falls_back_stays_on_screen_and_failed_entries_are_marked() -> None:
    model = MenuModel()
    model.apply(hello(p.Countdown("u2", 10.0, "The previous boot of 'Ubuntu' did not come up (watchdog reset)")))
    assert model.countdown_text().splitlines() == [
        "The previous boot of 'Ubuntu' did not come up (watchdog reset)",
        "Booting 'Ubuntu, with Linux 6.8.0-31-generic' in 10s - any key stops",
    ]
    assert model.cancel_countdown()
    assert model.countdown_text() == "The previous boot of 'Ubuntu' did not come up (watchdog reset)"
    model.apply(p.CountdownUpdate(p.Countdown(reason="autoboot is held")))
    assert model.countdown_text() == "autoboot is held"
    failed = entry("u1", "Ubuntu", "vda2")
    row = EntryRow(p.EntryInfo(failed.id, failed.entry, note="did not come up last time"), is_default=False)
    assert row.text() == "Ubuntu [did not come up last time]"


def test_status_history_boot_transcript_and_log() -> None:
    model = MenuModel()
    model.apply(hello())
    model.mark_boot()
    assert model.boot_status() == []
    assert model.apply(p.Status(p.StatusLine(p.Level.INFO, "cmdline: 'ro quiet single'"))) == Change.STATUS
    assert [s.message for s in model.boot_status()] == ["cmdline: 'ro quiet single'"]
    assert model.apply(p.LogLines(("a", "b"))) == Change.LOG
    assert model.log == ("a", "b")


def test_unknown_messages_change_nothing() -> None:
    model = MenuModel()
    assert model.apply(p.Rescan()) == Change.NONE
