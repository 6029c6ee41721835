"""syslinux/extlinux/isolinux configs: the entries syslinux's menu (or U-Boot) would offer, from real file trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.entry import BootEntry, LoadResult
from discovery.fs import Filesystem
from discovery.loaders import LoadContext
from discovery.syslinux import CONFIG_PATHS, MAX_INCLUDE_DEPTH, load


def write(root: Path, path: str, text: str = "x") -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def scan(root: Path) -> LoadResult:
    return load(Filesystem(root=root, name="sdb1", fstype="vfat"), LoadContext())


def titles(result: LoadResult) -> list[str]:
    return [">".join((*e.submenu, e.title)) for e in result.entries]


def default(result: LoadResult) -> list[str]:
    return [e.title for e in result.entries if e.default]


def messages(result: LoadResult) -> list[str]:
    return [str(d) for d in result.diagnostics]


def only(result: LoadResult) -> BootEntry:
    assert len(result.entries) == 1, titles(result)
    return result.entries[0]


CFG = "/syslinux/syslinux.cfg"


def test_uboot_extlinux_paths_initrds_fdt_and_timeout(tmp_path: Path) -> None:
    for f in ("boot/Image", "boot/initrd-a.img", "boot/initrd-b.img", "boot/dtbs/board.dtb"):
        write(tmp_path, f)
    write(
        tmp_path,
        "/boot/extlinux/extlinux.conf",
        "menu title Boot\ntimeout 50\ndefault second\n\n"
        "label first\n  kernel ../Image\n  append root=/dev/mmcblk0p2 rw\n\n"
        "label second\n  menu label Second ^kernel\n  linux /boot/Image\n  initrd ../initrd-a.img\n"
        "  fdt ../dtbs/board.dtb\n  append console=ttyS0 initrd=/ignored.img\n",
    )
    result = scan(tmp_path)
    # U-Boot (pxe_utils): the MENU LABEL as written, one INITRD file, the kernel gets the APPEND only.
    assert titles(result) == ["first", "Second ^kernel"]
    assert default(result) == ["Second ^kernel"]
    assert result.timeout == 5.0
    first, second = result.entries
    assert first.kernel == "/boot/Image"
    assert first.cmdline == "root=/dev/mmcblk0p2 rw"
    assert first.initrds == ()
    assert first.id == "first"
    assert (first.config, first.line, first.format, first.device) == (
        "/boot/extlinux/extlinux.conf",
        5,
        "syslinux",
        "sdb1",
    )
    assert second.initrds == ("/boot/initrd-a.img",)
    assert second.devicetree == "/boot/dtbs/board.dtb"
    assert second.cmdline == "console=ttyS0 initrd=/ignored.img"
    assert second.kernel_cmdline() == "console=ttyS0 initrd=/ignored.img"
    assert messages(result) == []


UBOOT_CFG = "/extlinux/extlinux.conf"


def test_uboot_reads_initrd_and_append_as_pxe_utils_does(tmp_path: Path) -> None:
    """U-Boot 2023.01 (tests/conformance: real U-Boot agrees): the initrd is the first of INITRD or initrd= in APPEND,
    one file up to the next space; a global APPEND is ignored; the kernel gets the APPEND and nothing else."""
    for f in ("vmlinuz", "a.img", "b.img"):
        write(tmp_path, f)
    write(
        tmp_path,
        UBOOT_CFG,
        "append global=1\n"
        "label in-append\n linux /vmlinuz\n append initrd=/a.img quiet\n"
        "label initrd-first\n linux /vmlinuz\n initrd /b.img\n append initrd=/a.img quiet\n"
        "label comma\n linux /vmlinuz\n append initrd=/a.img,/b.img quiet\n"
        "label last-word\n linux /vmlinuz\n append quiet initrd=/a.img\n"
        "label bare\n linux /vmlinuz\n",
    )
    result = scan(tmp_path)
    rows = [(e.title, e.initrds, e.kernel_cmdline()) for e in result.entries]
    assert rows == [
        ("in-append", ("/a.img",), "initrd=/a.img quiet"),
        ("initrd-first", ("/b.img",), "initrd=/a.img quiet"),
        ("comma", ("/a.img,/b.img",), "initrd=/a.img,/b.img quiet"),
        ("last-word", (), "quiet initrd=/a.img"),
        ("bare", (), ""),
    ]
    assert f"{UBOOT_CFG}:1: APPEND outside a LABEL is ignored by U-Boot" in messages(result)


def test_uboot_substitutes_variables_in_append_as_when_unset(tmp_path: Path) -> None:
    """Real U-Boot 2023.01 (tests/conformance/test_uboot_corpus.py, deerpi's `console=${console}`) passes APPEND
    through its macro expansion: a variable it does not have becomes nothing; bootmenu has no U-Boot environment."""
    write(tmp_path, "vmlinuz")
    write(
        tmp_path,
        UBOOT_CFG,
        "label l\n linux /vmlinuz\n append root=/dev/x console=${console} $(cbootargs)quiet '${kept}'\n",
    )
    result = scan(tmp_path)
    entry = only(result)
    assert entry.kernel_cmdline() == "root=/dev/x console= quiet ${kept}"
    assert any("${console}, ${cbootargs}" in w.message for w in entry.warnings), entry.warnings


def test_uboot_ends_a_label_at_a_repeated_initrd_or_fdt(tmp_path: Path) -> None:
    """pxe_utils reads INITRD/FDT/FDTDIR only once per label: the repeated line ends the label, so the APPEND after
    it is lost (real U-Boot then boots with its environment's bootargs)."""
    for f in ("vmlinuz", "a.img", "b.img", "a.dtb", "b.dtb"):
        write(tmp_path, f)
    write(
        tmp_path,
        UBOOT_CFG,
        "label two-initrds\n linux /vmlinuz\n initrd /b.img\n initrd /a.img\n append lost=1\n"
        "label two-fdts\n linux /vmlinuz\n fdt /a.dtb\n devicetree /b.dtb\n append lost=2\n",
    )
    result = scan(tmp_path)
    assert [(e.initrds, e.devicetree, e.cmdline) for e in result.entries] == [
        (("/b.img",), None, ""),
        ((), "/a.dtb", ""),
    ]
    assert f"{UBOOT_CFG}:4: INITRD repeated in LABEL two-initrds: U-Boot ends the label here" in messages(result)


def test_uboot_default_is_the_last_default_or_ontimeout_else_the_first_label(tmp_path: Path) -> None:
    write(tmp_path, "vmlinuz")
    labels = "".join(f"label {n}\n linux /vmlinuz\n" for n in ("a", "b", "c"))
    write(
        tmp_path,
        UBOOT_CFG,
        "default a\nontimeout c\n" + labels.replace("label b\n", "label b\n menu default\n") + "default b\n",
    )
    assert default(scan(tmp_path)) == ["b"]
    write(tmp_path, UBOOT_CFG, labels.replace("linux /vmlinuz\n", "linux /vmlinuz\n menu default\n"))
    assert default(scan(tmp_path)) == ["a"]  # the first MENU DEFAULT: later ones count only while none is set
    write(tmp_path, UBOOT_CFG, "default nothere\nlabel gone\n linux /missing\n" + labels)
    # No such label: U-Boot boots the labels in order, and the first one's kernel is missing.
    assert default(scan(tmp_path)) == ["a"]


def test_uboot_menu_is_flat_and_shows_labels_as_written(tmp_path: Path) -> None:
    write(tmp_path, "vmlinuz")
    write(
        tmp_path,
        UBOOT_CFG,
        "menu title T\nlabel one\n menu label ^One\n menu hide\n linux /vmlinuz\nmenu begin sub\n"
        "label two words\n linux /vmlinuz\nmenu end\n",
    )
    result = scan(tmp_path)
    assert titles(result) == ["^One", "two words"]
    assert result.timeout is None  # a menu and no TIMEOUT: U-Boot waits for the user


def test_uboot_timeout_is_rounded_up_and_zero_without_a_menu(tmp_path: Path) -> None:
    write(tmp_path, "vmlinuz")
    write(tmp_path, UBOOT_CFG, "menu title T\ntimeout 15\nlabel a\n linux /vmlinuz\n")
    assert scan(tmp_path).timeout == 2.0
    write(tmp_path, UBOOT_CFG, "prompt 1\ntimeout 50\nlabel a\n linux /vmlinuz\n  menu label A\n")
    assert scan(tmp_path).timeout == 0.0  # no top-level MENU line: the default boots at once


def test_extlinux_with_ldlinux_beside_it_is_read_as_syslinux(tmp_path: Path) -> None:
    write(tmp_path, "vmlinuz")
    write(tmp_path, "/extlinux/ldlinux.sys")
    write(tmp_path, UBOOT_CFG, "label one\n menu label ^One\n linux /vmlinuz\n initrd /vmlinuz\n")
    entry = only(scan(tmp_path))
    assert entry.title == "One"
    assert entry.kernel_cmdline() == "BOOT_IMAGE=/vmlinuz initrd=/vmlinuz"


def test_directives_are_case_insensitive_and_lookup_ignores_case_on_vfat(tmp_path: Path) -> None:
    write(tmp_path, "/ISOLINUX/VMLINUZ")
    write(tmp_path, "/ISOLINUX/INITRD.GZ")
    write(
        tmp_path,
        "/ISOLINUX/ISOLINUX.CFG",
        "DeFaUlT live\nLaBeL live\n  KeRnEl vmlinuz\n  ApPeNd initrd=initrd.gz quiet\n",
    )
    entry = only(scan(tmp_path))
    assert entry.kernel == "/ISOLINUX/VMLINUZ"
    assert entry.initrds == ("/ISOLINUX/INITRD.GZ",)
    assert entry.cmdline == "initrd=initrd.gz quiet"
    assert entry.config == "/ISOLINUX/ISOLINUX.CFG"
    assert entry.default


def test_global_append_per_label_override_and_dash(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(
        tmp_path,
        CFG,
        "append root=/dev/sda1 quiet\n"
        "label inherits\n kernel vmlinuz\n"
        "label overrides\n kernel vmlinuz\n append single\n"
        "label none\n kernel vmlinuz\n append -\n"
        "label kernel-args\n kernel vmlinuz init=/bin/sh\n",
    )
    result = scan(tmp_path)
    assert [(e.title, e.cmdline) for e in result.entries] == [
        ("inherits", "root=/dev/sda1 quiet"),
        ("overrides", "single"),
        ("none", ""),
        ("kernel-args", "init=/bin/sh root=/dev/sda1 quiet"),
    ]
    assert {e.kernel for e in result.entries} == {"/syslinux/vmlinuz"}


def test_append_keeps_its_trailing_blanks_as_syslinux_passes_them(tmp_path: Path) -> None:
    """Real syslinux 6.04 (tests/conformance, Debian's installer menus: `append ... --- quiet ` and `quiet  `) passes
    APPEND as written after its leading blanks, trailing blanks included (readconfig.c: refstrdup(skipspace(p))); a
    CR of a CRLF line is not part of it. U-Boot's dialect is checked by its own tests."""
    write(tmp_path, "/syslinux/vmlinuz")
    write(
        tmp_path,
        CFG,
        "append root=/dev/sda1 \nlabel global\n kernel vmlinuz\n"
        "label one\n kernel vmlinuz\n append  --- quiet \n"
        "label two\n kernel vmlinuz\n\tappend rescue/enable=true --- quiet  \r\n",
    )
    result = scan(tmp_path)
    assert [e.kernel_cmdline() for e in result.entries] == [
        "BOOT_IMAGE=vmlinuz root=/dev/sda1 ",
        "BOOT_IMAGE=vmlinuz --- quiet ",
        "BOOT_IMAGE=vmlinuz rescue/enable=true --- quiet  ",
    ]


def test_initrd_option_in_append_is_kept_and_only_the_first_counts(tmp_path: Path) -> None:
    for f in ("/boot/a.img", "/boot/b.img", "/syslinux/vmlinuz"):
        write(tmp_path, f)
    write(tmp_path, CFG, "label l\n kernel vmlinuz\n append initrd=/boot/a.img,/boot/b.img ro initrd=/boot/c.img\n")
    entry = only(scan(tmp_path))
    assert entry.initrds == ("/boot/a.img", "/boot/b.img")
    assert entry.cmdline == "initrd=/boot/a.img,/boot/b.img ro initrd=/boot/c.img"


def test_includes_resolve_against_the_working_directory_and_share_state(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(tmp_path, CFG, "append quiet\ninclude menus/main.cfg\nlabel last\n kernel vmlinuz\n")
    # A path in an included file is relative to /syslinux (the working directory), not to /syslinux/menus.
    write(tmp_path, "/syslinux/menus/main.cfg", "include menus/more.cfg\nlabel spans\n")
    write(tmp_path, "/syslinux/menus/more.cfg", "label from-more\n kernel vmlinuz\n")
    write(tmp_path, "/syslinux/menus/tail.cfg", "")
    with (tmp_path / "syslinux/menus/main.cfg").open("a") as f:
        f.write(" kernel vmlinuz\n")
    result = scan(tmp_path)
    assert titles(result) == ["from-more", "spans", "last"]
    assert [e.config for e in result.entries] == [
        "/syslinux/menus/more.cfg",
        "/syslinux/menus/main.cfg",
        "/syslinux/syslinux.cfg",
    ]
    assert {e.cmdline for e in result.entries} == {"quiet"}
    assert result.configs == (CFG, "/syslinux/menus/main.cfg", "/syslinux/menus/more.cfg")
    assert result.diagnostics == ()


def test_include_with_a_tag_is_a_submenu(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(tmp_path, CFG, "menu include tools.cfg ^Tools\nlabel after\n kernel vmlinuz\n")
    write(tmp_path, "/syslinux/tools.cfg", "label inside\n kernel vmlinuz\n")
    assert titles(scan(tmp_path)) == ["Tools>inside", "after"]


def test_include_loops_missing_files_and_depth_are_diagnosed(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(tmp_path, CFG, "include a.cfg\ninclude missing.cfg\ninclude\nlabel ok\n kernel vmlinuz\n")
    write(tmp_path, "/syslinux/a.cfg", "include b.cfg\n")
    write(tmp_path, "/syslinux/b.cfg", "include a.cfg\n")
    result = scan(tmp_path)
    assert titles(result) == ["ok"]
    assert messages(result) == [
        "/syslinux/b.cfg:1: INCLUDE a.cfg includes itself (loop); ignored",
        "/syslinux/syslinux.cfg:2: INCLUDE missing.cfg: /syslinux/missing.cfg not found; ignored",
        "/syslinux/syslinux.cfg:3: INCLUDE without a file name; ignored",
    ]


def test_include_depth_is_limited(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(tmp_path, CFG, "include d0.cfg\n")
    for n in range(MAX_INCLUDE_DEPTH + 5):
        write(tmp_path, f"/syslinux/d{n}.cfg", f"label l{n}\n kernel vmlinuz\ninclude d{n + 1}.cfg\n")
    result = scan(tmp_path)
    assert len(result.entries) == MAX_INCLUDE_DEPTH
    assert [d.line for d in result.diagnostics] == [3]
    assert "nested more than" in messages(result)[0]


def test_submenus_nest_and_take_their_titles_as_syslinux_does(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(
        tmp_path,
        CFG,
        "label top\n kernel vmlinuz\n"
        "menu begin ^Troubleshooting\n"
        " menu title Troubleshooting options\n"  # renames the submenu: its MENU BEGIN tag was still its name
        " label basic\n  menu label Install using ^basic graphics\n  kernel vmlinuz\n"
        " menu begin deeper\n  menu label ^Deeper menu\n  menu title Not shown in the parent\n"
        "  label inner\n   kernel vmlinuz\n"
        "  label back\n   menu label Back\n   menu exit\n"
        " menu end\n"
        "menu end\n"
        "menu begin\n menu title Untagged\n label u\n  kernel vmlinuz\nmenu end\n"
        "label bottom\n kernel vmlinuz\n",
    )
    result = scan(tmp_path)
    assert titles(result) == [
        "top",
        "Troubleshooting options>Install using basic graphics",
        "Troubleshooting options>Deeper menu>inner",
        "Untagged>u",
        "bottom",
    ]
    assert result.diagnostics == ()


def test_a_submenu_is_named_by_menu_label_else_by_its_tag_until_a_menu_title_renames_it(tmp_path: Path) -> None:
    # menu.c32 (readconfig.c): MENU BEGIN gives the parent's entry the tag; MENU TITLE renames it only while it is
    # still the tag; MENU LABEL always renames it. Fedora's `menu begin ^Troubleshooting` + `menu title ...`.
    write(tmp_path, "/syslinux/vmlinuz")
    body = " label k{0}\n  kernel vmlinuz\n"
    write(
        tmp_path,
        CFG,
        "menu begin ^Tag only\n" + body.format(1) + "menu end\n"
        "menu begin tag\n menu title First title\n menu title Second title\n" + body.format(2) + "menu end\n"
        "menu begin tag\n menu title Title\n menu label ^Label after title\n" + body.format(3) + "menu end\n"
        "menu include sub.cfg ^Included\n",
    )
    write(tmp_path, "/syslinux/sub.cfg", "menu title Included title\n" + body.format(4))
    assert titles(scan(tmp_path)) == [
        "Tag only>k1",
        "First title>k2",
        "Label after title>k3",
        "Included title>k4",
    ]


def test_unbalanced_menu_begin_and_end_are_diagnosed(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(tmp_path, CFG, "menu end\nmenu begin open\nlabel a\n kernel vmlinuz\n")
    result = scan(tmp_path)
    assert titles(result) == ["open>a"]
    assert messages(result) == [
        "/syslinux/syslinux.cfg:1: MENU END without MENU BEGIN; ignored",
        "/syslinux/syslinux.cfg:2: MENU BEGIN without MENU END; closed at the end of the file",
    ]


def labels(*names: str) -> str:
    return "".join(f"label {n}\n kernel vmlinuz\n" for n in names)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (labels("a", "b", "c"), ["a"]),  # nothing said: the first item
        ("label a\n kernel vmlinuz\nlabel b\n menu default\n kernel vmlinuz\n" + labels("c"), ["b"]),
        # the last MENU DEFAULT wins; MENU DEFAULT after APPEND still belongs to the open label
        ("label a\n menu default\n kernel vmlinuz\nlabel b\n kernel vmlinuz\n append x\n menu default\n", ["b"]),
        # DEFAULT naming a label wins over MENU DEFAULT
        ("ui menu.c32\ndefault c\n" + labels("a") + "label b\n menu default\n kernel vmlinuz\n" + labels("c"), ["c"]),
        # DEFAULT vesamenu.c32 names the menu program: MENU DEFAULT decides
        ("default vesamenu.c32\n" + labels("a") + "label b\n menu default\n kernel vmlinuz\n", ["b"]),
        # with a UI, a DEFAULT naming no label is ignored
        ("ui menu.c32\ndefault nothing\n" + labels("a", "b"), ["a"]),
        # ONTIMEOUT is what the timeout boots
        ("default a\nontimeout b\n" + labels("a", "b"), ["b"]),
        # MENU DEFAULT inside a submenu, before its labels, makes the submenu the default: its first entry boots
        (labels("a") + "menu begin sub\n menu default\n" + labels("s1", "s2") + "menu end\n", ["s1"]),
        # the default label is hidden: the menu ignores it
        ("ui menu.c32\ndefault h\nlabel h\n menu hide\n kernel vmlinuz\n" + labels("a"), ["a"]),
    ],
)
def test_default_selection(tmp_path: Path, config: str, expected: list[str]) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(tmp_path, CFG, config)
    assert default(scan(tmp_path)) == expected


def test_default_with_extra_arguments_appends_them(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(tmp_path, CFG, "default linux single\nlabel linux\n kernel vmlinuz\n append ro\n")
    entry = only(scan(tmp_path))
    assert entry.default
    assert entry.cmdline == "ro single"


def test_default_as_a_kernel_command_line(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(tmp_path, "/syslinux/initrd.img")
    write(tmp_path, CFG, "prompt 1\ntimeout 30\ndefault vmlinuz initrd=initrd.img root=/dev/sda2\n")
    result = scan(tmp_path)
    entry = only(result)
    assert (entry.kernel, entry.initrds, entry.cmdline) == (
        "/syslinux/vmlinuz",
        ("/syslinux/initrd.img",),
        "initrd=initrd.img root=/dev/sda2",
    )
    assert entry.default
    assert result.timeout == 3.0
    write(tmp_path, CFG, "default nothing-here root=/dev/sda2\n")
    result = scan(tmp_path)
    assert result.entries == ()
    assert messages(result) == [
        "/syslinux/syslinux.cfg:1: DEFAULT nothing-here names no label and no kernel file; nothing to boot"
    ]


def test_labels_that_do_not_boot_linux_are_not_entries(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(tmp_path, "/syslinux/memdisk")
    write(
        tmp_path,
        CFG,
        "default local\n"
        "label hdt\n kernel hdt.c32\n"
        "label chain\n com32 chain.c32\n append hd0\n"
        "label local\n localboot 0x80\n"
        "label other\n config other.cfg\n"
        "label bootsector\n kernel boot.bin\n"
        "label pxe\n kernel pxelinux.0\n"
        "label floppy\n kernel dos.img\n"
        "label iso\n kernel memdisk\n append initrd=x.iso iso\n"
        "label back\n menu exit\n"
        "label hidden\n menu hide\n kernel vmlinuz\n"
        "label disabled\n menu disable\n kernel vmlinuz\n"
        "menu separator\n"
        "label linux\n kernel vmlinuz\n",
    )
    result = scan(tmp_path)
    assert titles(result) == ["linux"]
    assert default(result) == []  # the default, LOCALBOOT, is not a Linux entry; we must not autoboot another
    assert messages(result) == [
        "/syslinux/syslinux.cfg:10: CONFIG other.cfg: /syslinux/other.cfg not found; LABEL other shows nothing",
        "/syslinux/syslinux.cfg:18: LABEL iso boots memdisk, which needs a BIOS; skipped",
        "/syslinux/syslinux.cfg:7: the default, LABEL local, does not boot Linux; no default",
    ]


def test_label_without_kernel(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    # syslinux boots a file named like the label when no KERNEL is given
    write(tmp_path, CFG, "label vmlinuz\n append ro\nlabel empty\n menu label Nothing\nlabel blank\n kernel\n")
    result = scan(tmp_path)
    assert [(e.title, e.kernel, e.cmdline) for e in result.entries] == [("vmlinuz", "/syslinux/vmlinuz", "ro")]
    assert messages(result) == [
        "/syslinux/syslinux.cfg:3: LABEL empty has no KERNEL or LINUX; skipped",
        "/syslinux/syslinux.cfg:5: LABEL blank has no KERNEL or LINUX; skipped",
    ]


def test_missing_files_are_warned_on_the_entry(tmp_path: Path) -> None:
    write(tmp_path, CFG, "label l\n kernel /vmlinuz\n initrd /initrd.img\n devicetree /x.dtb\n")
    entry = only(scan(tmp_path))
    assert [str(w) for w in entry.warnings] == [
        "/syslinux/syslinux.cfg:2: kernel /vmlinuz not found",
        "/syslinux/syslinux.cfg:3: initrd /initrd.img not found",
        "/syslinux/syslinux.cfg:4: devicetree /x.dtb not found",
    ]
    assert entry.devicetree == "/x.dtb"


def test_fdtdir_leaves_the_devicetree_to_the_running_system(tmp_path: Path) -> None:
    write(tmp_path, "/boot/Image")
    write(tmp_path, "/extlinux/extlinux.conf", "label l\n kernel /boot/Image\n devicetreedir /boot/dtbs\n")
    entry = only(scan(tmp_path))
    assert entry.devicetree is None
    assert [str(w) for w in entry.warnings] == [
        "/extlinux/extlinux.conf:2: FDTDIR /boot/dtbs: the firmware picks the file; the running one is used"
    ]


def test_accepted_unknown_and_help_text_lines(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(
        tmp_path,
        CFG,
        "say Booting\nprompt 0\nui vesamenu.c32\nserial 0 115200\nmenu color sel 7;37;40 #e0ffffff #20ffffff all\n"
        "menu width 78\nf1 help.txt\nfrobnicate yes\nmenu sparkle\n"
        "label l\n kernel vmlinuz\n text help\n  label not-a-label\n  kernel nope\n endtext\n append ro\n",
    )
    result = scan(tmp_path)
    assert [(e.title, e.cmdline) for e in result.entries] == [("l", "ro")]
    assert messages(result) == [
        "/syslinux/syslinux.cfg:8: unknown directive 'frobnicate'; ignored",
        "/syslinux/syslinux.cfg:9: unknown directive 'MENU SPARKLE'; ignored",
    ]


@pytest.mark.parametrize(("value", "expected"), [("0", None), ("1", 0.1), ("600", 60.0)])
def test_timeout_is_in_tenths_and_zero_waits(tmp_path: Path, value: str, expected: float | None) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(tmp_path, CFG, f"timeout {value}\n" + labels("a"))
    assert scan(tmp_path).timeout == expected


def test_bad_timeout_is_diagnosed(tmp_path: Path) -> None:
    write(tmp_path, CFG, "timeout soon\n")
    result = scan(tmp_path)
    assert result.timeout is None
    assert messages(result) == [
        "/syslinux/syslinux.cfg:1: TIMEOUT 'soon' is not a number of tenths of a second; ignored"
    ]


@pytest.mark.parametrize("path", CONFIG_PATHS)
def test_every_probe_location_is_found(tmp_path: Path, path: str) -> None:
    write(tmp_path, "/vmlinuz")
    write(tmp_path, path, "label here\n kernel /vmlinuz\n")
    entry = only(scan(tmp_path))
    assert entry.config == path


def test_a_config_reached_twice_is_read_once(tmp_path: Path) -> None:
    write(tmp_path, "/vmlinuz")
    write(tmp_path, "/isolinux/isolinux.cfg", "label iso\n kernel /vmlinuz\n")
    # syslinux.cfg includes the isolinux one (hybrid ISO); extlinux.conf is a symlink to it.
    write(tmp_path, "/syslinux/syslinux.cfg", "include /isolinux/isolinux.cfg\n")
    (tmp_path / "extlinux").mkdir()
    (tmp_path / "extlinux/extlinux.conf").symlink_to("../syslinux/syslinux.cfg")
    result = scan(tmp_path)
    assert titles(result) == ["iso"]
    assert result.configs == ("/extlinux/extlinux.conf", "/isolinux/isolinux.cfg")


def test_file_order_is_kept(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(tmp_path, CFG, labels("zeta", "alpha", "mu"))
    assert titles(scan(tmp_path)) == ["zeta", "alpha", "mu"]


def test_pxelinux_absolute_tftp_paths(tmp_path: Path) -> None:
    write(tmp_path, "/boot/vmlinuz")
    write(tmp_path, CFG, "label l\n kernel ::/boot/vmlinuz\n")
    assert only(scan(tmp_path)).kernel == "/boot/vmlinuz"


def test_garbage_never_raises(tmp_path: Path) -> None:
    (tmp_path / "syslinux").mkdir()
    (tmp_path / "syslinux/syslinux.cfg").write_bytes(b"\xff\xfe\x00label\x00\nmenu\nlabel\nkernel x\n\tappend\n\x1b[2J")
    result = scan(tmp_path)
    assert result.entries == ()
    assert "/syslinux/syslinux.cfg:2: MENU without a keyword; ignored" in messages(result)
    assert "/syslinux/syslinux.cfg:4: KERNEL outside a LABEL; ignored" in messages(result)


def test_no_config_means_nothing(tmp_path: Path) -> None:
    assert scan(tmp_path) == LoadResult()


def test_menu_default_label_ignores_extra_arguments_but_ontimeout_keeps_them(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(tmp_path, CFG, "ui menu.c32\ndefault linux single\nlabel linux\n kernel vmlinuz\n append ro\n")
    assert only(scan(tmp_path)).cmdline == "ro"
    write(tmp_path, CFG, "ui menu.c32\nontimeout linux single\nlabel linux\n kernel vmlinuz\n append ro\n")
    entry = only(scan(tmp_path))
    assert (entry.default, entry.cmdline) == (True, "ro single")


def test_include_tag_may_follow_a_tab(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(tmp_path, CFG, "include\tsub.cfg\tSub menu\n")
    write(tmp_path, "/syslinux/sub.cfg", "label a\n kernel vmlinuz\n")
    assert titles(scan(tmp_path)) == ["Sub menu>a"]


def test_dos_line_endings(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    (tmp_path / "syslinux/syslinux.cfg").write_bytes(
        b"DEFAULT b\r\nLABEL a\r\n KERNEL vmlinuz\r\nLABEL b\r\n KERNEL vmlinuz\r\n"
    )
    result = scan(tmp_path)
    assert default(result) == ["b"]
    assert result.diagnostics == ()


def test_syslinux_cfg_with_initrd_and_initrd_option_loads_the_options_files(tmp_path: Path) -> None:
    # syslinux puts " initrd=<INITRD>" after APPEND and loads the first initrd= of the line: APPEND's.
    for name in ("/vmlinuz", "/a.img", "/b.img"):
        write(tmp_path, name)
    write(
        tmp_path, "/syslinux/syslinux.cfg", "LABEL both\n  LINUX /vmlinuz\n  INITRD /b.img\n  APPEND x initrd=/a.img\n"
    )
    entry = only(scan(tmp_path))
    assert entry.initrds == ("/a.img",)
    assert entry.kernel_cmdline() == "BOOT_IMAGE=/vmlinuz x initrd=/a.img initrd=/b.img"
    assert messages(scan(tmp_path)) == [
        "/syslinux/syslinux.cfg:3: both INITRD and initrd= in APPEND; syslinux loads APPEND's"
    ]


def test_ui_menu_module_given_a_file_shows_that_files_menu(tmp_path: Path) -> None:
    write(tmp_path, "/vmlinuz")
    write(tmp_path, "/syslinux/syslinux.cfg", "UI menu.c32 main.cfg\nLABEL outside\n  LINUX /vmlinuz\n")
    write(
        tmp_path,
        "/syslinux/main.cfg",
        "LABEL one\n  LINUX /vmlinuz\nLABEL more\n  MENU LABEL More\n  KERNEL vesamenu.c32\n  APPEND more.cfg\n",
    )
    write(tmp_path, "/syslinux/more.cfg", "LABEL two\n  LINUX /vmlinuz\n")
    result = scan(tmp_path)
    assert titles(result) == ["one", "More>two"]
    assert default(result) == ["one"]


@pytest.mark.parametrize(
    "default_line",
    [
        "DEFAULT detect\nLABEL detect\n  KERNEL ifcpu64.c32\n  APPEND l64 -- l32\n",
        "DEFAULT ifcpu.c32 lm -- l64 -- l32\n",
    ],
)
def test_ifcpu_dispatch_as_default_picks_the_64_bit_label(tmp_path: Path, default_line: str) -> None:
    write(tmp_path, "/vmlinuz")
    labels = "LABEL l64\n  LINUX /vmlinuz\n  APPEND arch=64\nLABEL l32\n  LINUX /vmlinuz\n  APPEND arch=32\n"
    write(tmp_path, "/syslinux/syslinux.cfg", "PROMPT 1\n" + default_line + labels)
    result = scan(tmp_path)
    assert titles(result) == ["l64", "l32"]
    assert [e.cmdline for e in result.entries if e.default] == ["arch=64"]


def test_default_with_spaces_names_the_label_of_its_first_word(tmp_path: Path) -> None:
    # Real syslinux 6.04 (QEMU, tests/conformance): `DEFAULT my label` boots LABEL my, not LABEL "my label".
    write(tmp_path, "/vmlinuz")
    labels = "LABEL my label\n  LINUX /vmlinuz\n  APPEND a\nLABEL my\n  LINUX /vmlinuz\n  APPEND b\n"
    write(tmp_path, "/syslinux/syslinux.cfg", "UI menu.c32\nDEFAULT my label\n" + labels)
    result = scan(tmp_path)
    assert titles(result) == ["my label", "my"]
    assert [e.cmdline for e in result.entries if e.default] == ["b"]
