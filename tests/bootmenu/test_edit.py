"""The whole-entry editor's state (bootmenu/edit.py): initrd list operations, checks, the boot request."""

from __future__ import annotations

from bootmenu.edit import EntryEdit
from discovery import protocol as p
from tests.bootmenu.menu_data import hello

ENTRY = hello().entries[0].entry


def test_initrds_are_added_removed_and_reordered() -> None:
    edit = EntryEdit("/k", ("/a", "/b"))
    added, at = edit.add_initrd(0)
    assert (added.initrds, at) == (("/a", "", "/b"), 1)
    assert edit.add_initrd(None) == (EntryEdit("/k", ("/a", "/b", "")), 2)
    assert edit.move_initrd(1, -1) == (EntryEdit("/k", ("/b", "/a")), 0)
    assert edit.move_initrd(1, 1) == (edit, 1)  # already last: stays
    assert edit.remove_initrd(1) == (EntryEdit("/k", ("/a",)), 0)
    assert EntryEdit("/k", ("/a",)).remove_initrd(0) == (EntryEdit("/k"), None)
    assert edit.remove_initrd(5) == (edit, None)


def test_problems_name_the_field() -> None:
    assert EntryEdit("/k", ("/a",), "/dtb").problems() == []
    assert EntryEdit("", ("", "b"), "d").problems() == [
        "kernel: empty",
        "initrd 1: empty (remove it or name a file)",
        "initrd 2: b is not an absolute path or a URL",
        "devicetree: d is not an absolute path or a URL",
    ]
    # A network entry's files are URLs (fetched when it boots): editing its command line keeps them as they are.
    assert EntryEdit("http://10.0.2.2/vmlinuz", ("tftp://10.0.2.2/initrd.img",)).problems() == []
    assert EntryEdit("https://10.0.2.2/vmlinuz").problems() == [
        "kernel: https://10.0.2.2/vmlinuz is not an absolute path (/boot/...) or a URL"
    ]
    assert f"at most {p.MAX_INITRDS} initrds" in EntryEdit("/k", ("/i",) * (p.MAX_INITRDS + 1)).problems()


def test_the_boot_request_carries_only_the_changes() -> None:
    unchanged = EntryEdit.of(ENTRY)
    assert unchanged.boot("u1", ENTRY, "tty0") == p.Boot("u1", None, "tty0")
    assert not unchanged.boot("u1", ENTRY, None).edited()
    edited = EntryEdit("/boot/other", (), "", "ro")
    request = edited.boot("u1", ENTRY, None)
    assert request == p.Boot("u1", "ro", None, kernel="/boot/other", initrds=())
    assert request.edited()
    assert p.decode(p.encode(request)) == request  # the protocol's typed codec carries the new fields
