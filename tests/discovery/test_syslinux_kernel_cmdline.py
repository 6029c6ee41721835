"""What the kernel receives from a syslinux entry: `BOOT_IMAGE=` first, `initrd=` for INITRD after the command line.

Follows syslinux 6: com32/elflink/ldlinux/kernel.c (BOOT_IMAGE=<kernel as written> before the arguments) and
readconfig.c record() (` initrd=<INITRD as written>` after APPEND, IPAPPEND/SYSAPPEND runtime words after that).
"""

from __future__ import annotations

import json
from pathlib import Path

from discovery.entry import BootEntry, LoadResult, SourceFormat
from discovery.fs import Filesystem
from discovery.loaders import LoadContext
from discovery.syslinux import load

CFG = "/syslinux/syslinux.cfg"


def write(root: Path, path: str, text: str = "x") -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def scan(root: Path, config: str) -> LoadResult:
    write(root, CFG, config)
    return load(Filesystem(root=root, name="sdb1", fstype="vfat"), LoadContext())


def by_title(result: LoadResult) -> dict[str, BootEntry]:
    return {e.title: e for e in result.entries}


def test_boot_image_first_and_initrd_after_append(tmp_path: Path) -> None:
    for f in ("/syslinux/vmlinuz", "/syslinux/a.img", "/syslinux/b.img"):
        write(tmp_path, f)
    entry = by_title(
        scan(tmp_path, "label l\n kernel vmlinuz quiet\n initrd a.img,b.img\n append root=/dev/sda2 ro\n")
    )["l"]
    # The config's words stay what the editor shows; the loader's words go around them.
    assert entry.cmdline == "quiet root=/dev/sda2 ro"
    assert entry.loader_args == ("BOOT_IMAGE=vmlinuz",)
    assert entry.loader_tail == ("initrd=a.img,b.img",)
    assert entry.kernel_cmdline() == "BOOT_IMAGE=vmlinuz quiet root=/dev/sda2 ro initrd=a.img,b.img"
    assert entry.initrds == ("/syslinux/a.img", "/syslinux/b.img")


def test_edited_cmdline_is_still_followed_by_the_initrd_word(tmp_path: Path) -> None:
    write(tmp_path, "/boot/vmlinuz")
    write(tmp_path, "/boot/initrd.img")
    entry = scan(tmp_path, "label l\n linux /boot/vmlinuz\n initrd /boot/initrd.img\n append quiet\n").entries[0]
    assert entry.replace(cmdline="single").kernel_cmdline() == "BOOT_IMAGE=/boot/vmlinuz single initrd=/boot/initrd.img"


def test_initrd_option_in_append_gets_no_second_initrd_word(tmp_path: Path) -> None:
    write(tmp_path, "/boot/vmlinuz")
    write(tmp_path, "/boot/initrd.img")
    entry = scan(tmp_path, "label l\n kernel /boot/vmlinuz\n append initrd=/boot/initrd.img ro\n").entries[0]
    assert entry.loader_tail == ()
    assert entry.kernel_cmdline() == "BOOT_IMAGE=/boot/vmlinuz initrd=/boot/initrd.img ro"


def test_no_append_and_append_dash_leave_only_the_loader_words(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(tmp_path, "/syslinux/initrd.gz")
    result = scan(
        tmp_path,
        "append console=ttyS0\n"
        "label dash\n kernel vmlinuz\n initrd initrd.gz\n append -\n"
        "label global\n kernel vmlinuz\n",
    )
    entries = by_title(result)
    assert entries["dash"].kernel_cmdline() == "BOOT_IMAGE=vmlinuz initrd=initrd.gz"
    assert entries["global"].kernel_cmdline() == "BOOT_IMAGE=vmlinuz console=ttyS0"


def test_label_without_kernel_boots_the_label_name_as_written(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/bzImage")
    entry = scan(tmp_path, "label bzImage\n append ro\n").entries[0]
    assert entry.kernel_cmdline() == "BOOT_IMAGE=bzImage ro"


def test_default_command_line_gets_boot_image_only(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(tmp_path, "/syslinux/initrd.img")
    entry = scan(tmp_path, "prompt 1\ndefault vmlinuz initrd=initrd.img root=/dev/sda2\n").entries[0]
    assert entry.loader_tail == ()
    assert entry.kernel_cmdline() == "BOOT_IMAGE=vmlinuz initrd=initrd.img root=/dev/sda2"


def test_ipappend_adds_no_words_at_scan_time(tmp_path: Path) -> None:
    # IPAPPEND/SYSAPPEND words are the firmware's and the network's runtime values (ip=, BOOTIF=), not the config's.
    write(tmp_path, "/syslinux/vmlinuz")
    entry = scan(tmp_path, "sysappend 3\nlabel l\n kernel vmlinuz\n ipappend 2\n append ro\n").entries[0]
    assert entry.kernel_cmdline() == "BOOT_IMAGE=vmlinuz ro"


def test_loader_tail_survives_json_and_other_formats_omit_it(tmp_path: Path) -> None:
    write(tmp_path, "/syslinux/vmlinuz")
    write(tmp_path, "/syslinux/initrd.gz")
    entry = scan(tmp_path, "label l\n kernel vmlinuz\n initrd initrd.gz\n").entries[0]
    data = json.loads(json.dumps(entry.to_json()))
    assert data["loader_args"] == ["BOOT_IMAGE=vmlinuz"]
    assert data["loader_tail"] == ["initrd=initrd.gz"]
    assert BootEntry.from_json(data).kernel_cmdline() == entry.kernel_cmdline()
    grub = BootEntry(title="g", kernel="/vmlinuz", format=SourceFormat.GRUB, loader_args=("BOOT_IMAGE=/vmlinuz",))
    assert "loader_tail" not in grub.to_json()
