"""syslinux CONFIG labels and whichsys.c32: the menus a user reaches through them, from real file trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.entry import LoadResult
from discovery.fs import Filesystem
from discovery.loaders import LoadContext
from discovery.syslinux import MAX_CONFIG_DEPTH, load


def write(root: Path, path: str, text: str = "x") -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def scan(root: Path, fstype: str = "vfat") -> LoadResult:
    return load(Filesystem(root=root, name="sdb1", fstype=fstype), LoadContext())


def titles(result: LoadResult) -> list[str]:
    return [">".join((*e.submenu, e.title)) for e in result.entries]


def default(result: LoadResult) -> list[str]:
    return [">".join((*e.submenu, e.title)) for e in result.entries if e.default]


def messages(result: LoadResult) -> list[str]:
    return [str(d) for d in result.diagnostics]


def menu(title: str, *labels: str, extra: str = "") -> str:
    """A drawn menu (UI) with one Linux label per name."""
    body = "".join(f"label {name}\n menu label {title} {name}\n linux /vmlinuz\n" for name in labels)
    return f"ui menu.c32\n{extra}{body}"


CFG = "/syslinux/syslinux.cfg"

WHICHSYS = (
    "default select\n"
    "label select\n com32 whichsys.c32\n append -pxe- pxe -sys- sys -iso- iso\n"
    "label pxe\n config pxe.cfg\n"
    "label sys\n config sys.cfg\n"
    "label iso\n config iso.cfg\n"
)


@pytest.mark.parametrize(
    ("fstype", "shown", "timeout"),
    [("vfat", ["Disk a", "Disk b"], 5.0), ("iso9660", ["CD c"], None)],
)
def test_whichsys_default_without_a_menu_leads_straight_to_the_medium_s_config(
    tmp_path: Path, fstype: str, shown: list[str], timeout: float | None
) -> None:
    # Arch's layout: syslinux.cfg draws no menu; DEFAULT runs whichsys.c32, which CONFIGs the menu for this medium.
    write(tmp_path, "/vmlinuz")
    write(tmp_path, "/boot/syslinux/syslinux.cfg", WHICHSYS)
    write(tmp_path, "/boot/syslinux/sys.cfg", menu("Disk", "a", "b", extra="default b\ntimeout 50\n"))
    write(tmp_path, "/boot/syslinux/iso.cfg", menu("CD", "c"))
    write(tmp_path, "/boot/syslinux/pxe.cfg", menu("Net", "p"))
    result = scan(tmp_path, fstype)
    # Inline: the user never sees syslinux.cfg, and the pxelinux menu is not reachable from this medium.
    assert titles(result) == shown
    assert default(result) == (["Disk b"] if fstype == "vfat" else ["CD c"])
    assert result.timeout == timeout
    assert result.diagnostics == ()
    assert "/boot/syslinux/pxe.cfg" not in result.configs


def test_config_label_in_a_drawn_menu_opens_a_submenu_named_by_its_menu_label(tmp_path: Path) -> None:
    write(tmp_path, "/vmlinuz")
    write(
        tmp_path,
        CFG,
        "ui menu.c32\ndefault linux\n"
        "label linux\n linux /vmlinuz\n"
        "label more\n menu label ^More options\n config more.cfg\n"
        "label after\n linux /vmlinuz\n",
    )
    write(tmp_path, "/syslinux/more.cfg", menu("More", "x", "y", extra="default y\ntimeout 100\n"))
    result = scan(tmp_path)
    assert titles(result) == ["linux", "More options>More x", "More options>More y", "after"]
    # The loaded config's own default only applies once the user opens it; the first menu's default stands.
    assert default(result) == ["linux"]
    assert result.timeout is None
    assert [e.config for e in result.entries] == [CFG, "/syslinux/more.cfg", "/syslinux/more.cfg", CFG]


def test_a_config_label_as_the_default_of_a_drawn_menu_defaults_to_that_config_s_default(tmp_path: Path) -> None:
    write(tmp_path, "/vmlinuz")
    write(tmp_path, CFG, "ui menu.c32\ndefault more\nlabel linux\n linux /vmlinuz\nlabel more\n config more.cfg\n")
    write(tmp_path, "/syslinux/more.cfg", menu("More", "x", "y", extra="default y\n"))
    result = scan(tmp_path)
    assert titles(result) == ["linux", "more>More x", "more>More y"]
    assert default(result) == ["more>More y"]


@pytest.mark.parametrize(
    "config_lines",
    [
        " config /arch/boot/syslinux/archiso.cfg\n append /arch/\n",  # old archiso isolinux.cfg: APPEND is the dir
        " config /arch/boot/syslinux/archiso.cfg /arch/\n",  # `CONFIG file dir`
    ],
)
def test_config_with_a_directory_changes_the_working_directory(tmp_path: Path, config_lines: str) -> None:
    write(tmp_path, "/arch/boot/x86_64/vmlinuz")
    write(tmp_path, "/arch/boot/x86_64/archiso.img")
    write(tmp_path, "/isolinux/isolinux.cfg", f"default loadconfig\nlabel loadconfig\n{config_lines}")
    write(tmp_path, "/arch/boot/syslinux/archiso.cfg", "ui vesamenu.c32\ninclude boot/syslinux/archiso_sys.cfg\n")
    write(
        tmp_path,
        "/arch/boot/syslinux/archiso_sys.cfg",
        "label arch\n linux boot/x86_64/vmlinuz\n initrd boot/x86_64/archiso.img\n append archisobasedir=arch\n",
    )
    result = scan(tmp_path, "iso9660")
    assert [(e.title, e.kernel, e.initrds, e.default) for e in result.entries] == [
        ("arch", "/arch/boot/x86_64/vmlinuz", ("/arch/boot/x86_64/archiso.img",), True)
    ]
    assert result.diagnostics == ()


def test_without_a_directory_the_working_directory_stays_that_of_the_first_config(tmp_path: Path) -> None:
    write(tmp_path, "/isolinux/vmlinuz")
    write(tmp_path, "/isolinux/isolinux.cfg", "default go\nlabel go\n config /other/menu.cfg\n")
    write(tmp_path, "/other/menu.cfg", "ui menu.c32\nlabel a\n linux vmlinuz\n")
    result = scan(tmp_path)
    assert [e.kernel for e in result.entries] == ["/isolinux/vmlinuz"]
    assert result.diagnostics == ()


def test_config_loops_are_followed_once(tmp_path: Path) -> None:
    write(tmp_path, "/vmlinuz")
    write(tmp_path, CFG, menu("Main", "a", extra="default a\n") + "label other\n config other.cfg\n")
    write(
        tmp_path,
        "/syslinux/other.cfg",
        menu("Other", "b")
        + "label back\n menu label Back to the main menu\n config syslinux.cfg\n"
        + "label again\n config other.cfg\n"
        + "label empty\n config\n",
    )
    result = scan(tmp_path)
    assert titles(result) == ["Main a", "other>Other b"]
    assert default(result) == ["Main a"]
    assert messages(result) == ["/syslinux/other.cfg:11: LABEL empty: CONFIG without a file name; ignored"]


def test_config_chains_stop_at_the_depth_limit(tmp_path: Path) -> None:
    write(tmp_path, "/vmlinuz")
    levels = MAX_CONFIG_DEPTH + 3
    write(tmp_path, CFG, "ui menu.c32\nlabel k0\n linux /vmlinuz\nlabel next\n config c1.cfg\n")
    for n in range(1, levels):
        write(
            tmp_path,
            f"/syslinux/c{n}.cfg",
            f"ui menu.c32\nlabel k{n}\n linux /vmlinuz\nlabel next\n config c{n + 1}.cfg\n",
        )
    result = scan(tmp_path)
    assert [e.title for e in result.entries] == [f"k{n}" for n in range(MAX_CONFIG_DEPTH + 1)]
    assert [len(e.submenu) for e in result.entries] == list(range(MAX_CONFIG_DEPTH + 1))
    assert messages(result) == [
        f"/syslinux/c{MAX_CONFIG_DEPTH}.cfg:5: CONFIG c{MAX_CONFIG_DEPTH + 1}.cfg: "
        f"more than {MAX_CONFIG_DEPTH} configs deep; not followed"
    ]


def test_a_help_prompt_config_that_includes_the_menu_again_adds_only_its_own_labels(tmp_path: Path) -> None:
    # Debian's installer ISO: Help -> `config prompt.cfg`, a boot prompt that INCLUDEs the whole menu again.
    write(tmp_path, "/install/vmlinuz")
    write(tmp_path, "/isolinux/isolinux.cfg", "ui vesamenu.c32\ninclude menu.cfg\ndefault vesamenu.c32\n")
    write(
        tmp_path,
        "/isolinux/menu.cfg",
        "label install\n kernel /install/vmlinuz\n"
        "label help\n menu label ^Help\n config prompt.cfg\n"
        "label expert\n kernel /install/vmlinuz\n append priority=low\n",
    )
    write(
        tmp_path,
        "/isolinux/prompt.cfg",
        "prompt 1\ninclude menu.cfg\nlabel menu\n kernel vesamenu.c32\n config isolinux.cfg\n"
        "label rescue\n kernel /install/vmlinuz\n append rescue/enable=true\n",
    )
    result = scan(tmp_path, "iso9660")
    assert titles(result) == ["install", "Help>rescue", "expert"]
    assert default(result) == ["install"]
    assert result.diagnostics == ()


def test_whichsys_running_config_directly_loads_that_file(tmp_path: Path) -> None:
    # whichsys.c32's own usage example: the command is `config FILE`, not a label.
    write(tmp_path, "/vmlinuz")
    write(
        tmp_path,
        CFG,
        "default select\nlabel select\n com32 whichsys.c32\n append -iso- config iso.cfg -sys- config sys.cfg\n",
    )
    write(tmp_path, "/syslinux/sys.cfg", menu("Disk", "a"))
    write(tmp_path, "/syslinux/iso.cfg", menu("CD", "c"))
    assert titles(scan(tmp_path, "vfat")) == ["Disk a"]
    assert titles(scan(tmp_path, "iso9660")) == ["CD c"]
    assert default(scan(tmp_path, "iso9660")) == ["CD c"]
