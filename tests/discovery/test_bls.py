"""BLS Type #1 parsing and ordering: what GRUB's blscfg and systemd-boot would show, from real files on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.bls import (
    BlsEntry,
    blscfg_order,
    parse_entry,
    read_entries,
    rpmvercmp,
    split_filename,
    systemd_boot_order,
    uapi_vercmp,
    unique_titles,
)
from discovery.entry import BootCount
from discovery.fs import Filesystem


def write(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def make_fs(tmp_path: Path) -> Filesystem:
    return Filesystem(root=tmp_path, name="sda1")


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.0", "1.0", 0),
        ("1.0", "2.0", -1),
        ("2.0.1", "2.0", 1),
        ("5.5p1", "5.5p2", -1),
        ("5.5p10", "5.5p1", 1),
        ("10xyz", "10.1xyz", -1),
        ("xyz10", "xyz10.1", -1),
        ("10", "9", 1),
        ("010", "10", 0),
        ("1_0", "1.0", 0),
        ("a", "1", -1),
        ("1.0a", "1.0.1", -1),
        ("2a", "2.0", -1),
        ("1.0~rc1", "1.0", -1),
        ("1.0~rc1", "1.0~rc2", -1),
        ("1.0^", "1.0", 1),
        ("1.0^git1", "1.0.1", -1),
        ("1.0^git1", "1.0~rc1", 1),
        ("6.5.6-300.fc39.x86_64", "6.5.10-200.fc39.x86_64", -1),
        ("4.18.0-240.el8.x86_64", "4.18.0-80.el8.x86_64", 1),
    ],
)
def test_rpmvercmp_matches_rpm(a: str, b: str, expected: int) -> None:
    assert rpmvercmp(a, b) == expected
    assert rpmvercmp(b, a) == -expected


def test_uapi_vercmp_orders_the_spec_examples() -> None:
    ordered = ["122", "122.9", "123~rc1", "123", "123-a", "123-3", "123-3.1", "123^patch1", "123.1-1", "124"]
    for n, older in enumerate(ordered):
        for newer in ordered[n + 1 :]:
            assert uapi_vercmp(older, newer) == -1, (older, newer)
            assert uapi_vercmp(newer, older) == 1, (newer, older)
    assert uapi_vercmp("0123", "123") == 0
    assert uapi_vercmp(None, "1") == -1


@pytest.mark.parametrize(
    ("name", "stem", "count"),
    [
        ("fedora-6.5.conf", "fedora-6.5", None),
        ("fedora-6.5+3.conf", "fedora-6.5", BootCount(3)),
        ("fedora-6.5+0-4.conf", "fedora-6.5", BootCount(0, 4)),
        ("odd+name+2-1.conf", "odd+name", BootCount(2, 1)),
        ("not+counted-x.conf", "not+counted-x", None),
    ],
)
def test_boot_counting_suffix_is_parsed_and_removed_from_the_id(name: str, stem: str, count: BootCount | None) -> None:
    assert split_filename(name) == (stem, count)


def test_parse_keeps_every_initrd_and_joins_options() -> None:
    text = (
        "# Fedora\n"
        "title   Fedora Linux 39\n"
        "version 6.5.6-300.fc39.x86_64\n"
        "machine-id 0123456789abcdef0123456789abcdef\n"
        "sort-key fedora\n"
        "linux /vmlinuz-6.5.6\n"
        "initrd /intel-ucode.img\n"
        "initrd\t/initramfs-6.5.6.img\n"
        "options root=UUID=abc ro\n"
        "options  quiet   rhgb \n"
        "devicetree /dtb/board.dtb\n"
        "architecture x64\n"
        "grub_users $grub_users\n"
    )
    entry, diags = parse_entry(text, "/loader/entries/f39+2-1.conf")
    assert diags == []
    assert entry.stem == entry.id == "f39"
    assert entry.boot_count == BootCount(2, 1)
    assert entry.title == "Fedora Linux 39"
    assert entry.version == "6.5.6-300.fc39.x86_64"
    assert entry.machine_id == "0123456789abcdef0123456789abcdef"
    assert entry.sort_key == "fedora"
    assert entry.linux == "/vmlinuz-6.5.6"
    assert entry.initrds == ("/intel-ucode.img", "/initramfs-6.5.6.img")
    assert entry.cmdline == "root=UUID=abc ro quiet   rhgb"
    assert entry.devicetree == "/dtb/board.dtb"
    assert entry.architecture == "x64"
    assert entry.raw["grub_users"][0].value == "$grub_users"
    assert entry.raw["initrd"][1].line == 8
    assert entry.line_of("linux") == 6


def test_parse_reports_empty_and_repeated_keys_with_their_lines() -> None:
    entry, diags = parse_entry("title A\nlinux\ntitle B\nlinux /k\n", "/e/x.conf")
    assert entry.title == "B"  # systemd-boot: the last value of a single-valued key counts
    assert entry.linux == "/k"
    assert [(d.file, d.line) for d in diags] == [("/e/x.conf", 2), ("/e/x.conf", 3)]
    assert "no value" in diags[0].message


def test_to_boot_entry_resolves_paths_and_takes_the_cmdline_override() -> None:
    entry, _ = parse_entry("title T\nlinux /vmlinuz\ninitrd /a\ninitrd /b\noptions $kernelopts x\n", "/l/e.conf")
    boot = entry.to_boot_entry(device="sda2", cmdline="root=/dev/sda2 x", resolve=lambda p: "/boot" + p)
    assert boot.kernel == "/boot/vmlinuz"
    assert boot.initrds == ("/boot/a", "/boot/b")
    assert boot.cmdline == "root=/dev/sda2 x"
    assert boot.id == "e"
    assert boot.config == "/l/e.conf"
    assert boot.line == 2
    assert boot.device == "sda2"
    no_kernel, _ = parse_entry("title UKI\nefi /EFI/Linux/x.efi\n", "/l/u.conf")
    with pytest.raises(ValueError, match=r"u\.conf"):
        no_kernel.to_boot_entry()


def test_read_entries_reads_only_conf_files(tmp_path: Path) -> None:
    write(tmp_path, "loader/entries/a.conf", "title A\nlinux /a\n")
    write(tmp_path, "loader/entries/b+1.conf", "title B\nlinux /b\n")
    write(tmp_path, "loader/entries/notes.txt", "title N\nlinux /n\n")
    (tmp_path / "loader/entries/dir.conf").mkdir()
    entries, diags = read_entries(make_fs(tmp_path), "/loader/entries")
    assert [(e.path, e.stem) for e in entries] == [("/loader/entries/a.conf", "a"), ("/loader/entries/b+1.conf", "b")]
    assert diags == []
    assert read_entries(make_fs(tmp_path), "/nowhere") == ([], [])


def entry(stem: str, *, version: str | None = None, sort_key: str | None = None, machine_id: str | None = None,
          count: BootCount | None = None) -> BlsEntry:  # fmt: skip
    return BlsEntry(path=f"/loader/entries/{stem}.conf", stem=stem, version=version, sort_key=sort_key,
                    machine_id=machine_id, boot_count=count, linux="/k")  # fmt: skip


def test_blscfg_order_is_newest_version_first_then_stem() -> None:
    entries = [
        entry("rescue"),
        entry("a-4.18.0-80", version="4.18.0-80.el8.x86_64"),
        entry("a-4.18.0-240", version="4.18.0-240.el8.x86_64"),
        entry("a-5.14.0-1", version="5.14.0-1.el9.x86_64"),
        entry("zz"),
    ]
    assert [e.stem for e in blscfg_order(entries)] == ["a-5.14.0-1", "a-4.18.0-240", "a-4.18.0-80", "zz", "rescue"]


def test_systemd_boot_order_follows_the_spec() -> None:
    entries = [
        entry("old-style-1"),
        entry("old-style-2"),
        entry("arch-6.1", version="6.1.0", sort_key="arch"),
        entry("arch-6.10", version="6.10.0", sort_key="arch"),
        entry("arch-other-machine", version="9.0", sort_key="arch", machine_id="ffff"),
        entry("arch-mid-machine", version="9.0", sort_key="arch", machine_id="0000"),
        entry("debian", version="99", sort_key="debian"),
        entry("arch-bad", version="7.0", sort_key="arch", count=BootCount(0, 3)),
    ]
    assert [e.stem for e in systemd_boot_order(entries)] == [
        "arch-6.10",  # no machine-id sorts before any machine-id
        "arch-6.1",
        "arch-mid-machine",
        "arch-other-machine",
        "debian",
        "old-style-2",  # without sort-key: by file name, newest version first
        "old-style-1",
        "arch-bad",  # no tries left: last
    ]


def test_systemd_boot_order_prefers_more_tries_left_among_otherwise_equal() -> None:
    a = BlsEntry(path="/l/x+1.conf", stem="x", boot_count=BootCount(1, 2))
    b = BlsEntry(path="/l/x+3.conf", stem="x", boot_count=BootCount(3))
    assert [e.path for e in systemd_boot_order([a, b])] == ["/l/x+3.conf", "/l/x+1.conf"]


def test_duplicate_titles_are_disambiguated_like_systemd_boot() -> None:
    entries = [
        BlsEntry(path="/a.conf", stem="a", title="Arch", version="6.1"),
        BlsEntry(path="/b.conf", stem="b", title="Arch", version="6.2"),
        BlsEntry(path="/c.conf", stem="c", title="Arch", version="6.2"),
        BlsEntry(path="/d.conf", stem="d", title="Other"),
        BlsEntry(path="/e.conf", stem="e"),
    ]
    # The id suffix is systemd-boot 252's id, the file name with `.conf` (tests/conformance, the sdboot-sort tree).
    assert unique_titles(entries) == ["Arch (6.1)", "Arch (6.2) (b.conf)", "Arch (6.2) (c.conf)", "Other", "e"]


def test_blscfg_order_compares_version_then_release_and_breaks_ties_by_file_name() -> None:
    entries = [
        entry("b486-0-rescue", version="0-rescue"),
        entry("d8af-0-rescue", version="0-rescue"),
        entry("d8af-4.18.0-240.1.1.el8_3.x86_64", version="4.18.0-240.1.1.el8_3.x86_64"),
        entry("b486-4.18.0-240.15.1.el8_3.x86_64", version="4.18.0-240.15.1.el8_3.x86_64"),
        # version-release split at the last "-": 4.18.0.1 is a newer version than 4.18.0 whatever the release says
        entry("x-4.18.0.1-1", version="4.18.0.1-1"),
    ]
    assert [e.stem for e in blscfg_order(entries)] == [
        "x-4.18.0.1-1",
        "b486-4.18.0-240.15.1.el8_3.x86_64",
        "d8af-4.18.0-240.1.1.el8_3.x86_64",
        "d8af-0-rescue",  # same version: the machine-id part of the file name decides, newest first
        "b486-0-rescue",
    ]
