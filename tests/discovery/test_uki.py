"""Type #2 entries: the unified kernel images of /EFI/Linux, listed and ordered as systemd-boot does."""

from __future__ import annotations

from pathlib import Path

from discovery.entry import BootCount, LoadResult
from discovery.fs import Filesystem, Platform
from discovery.loaders import LoadContext, load_filesystem
from initramfs.uki import STUB_CACHE, build_uki, stub
from tests.kexec_core.kexec_craft import bzimage, pe

X86 = LoadContext(platform=Platform(firmware="efi", cpu="x86_64"))


def uki(osrel: str, cmdline: str | None = None, *, machine: int = 0x8664, linux: bool = True) -> bytes:
    sections = [(".osrel", osrel.encode())]
    if cmdline is not None:
        sections.append((".cmdline", cmdline.encode() + b"\0"))
    if linux:
        sections.append((".linux", bzimage(size=4096)))
    return pe(sections, machine=machine)


def put(root: Path, path: str, data: bytes | str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        target.write_text(data)
    else:
        target.write_bytes(data)


def scan(root: Path, ctx: LoadContext = X86) -> LoadResult:
    return load_filesystem(Filesystem(root=root, name="nvme0n1p1", fstype="vfat"), ctx)


def messages(result: LoadResult) -> list[str]:
    return [str(d) for d in result.diagnostics]


def test_uki_title_version_cmdline_from_its_sections(tmp_path: Path) -> None:
    put(
        tmp_path,
        "EFI/Linux/arch-linux.efi",
        uki('NAME="Arch Linux"\nPRETTY_NAME="Arch Linux"\nID=arch\nBUILD_ID=rolling\n', " root=/dev/sda2  rw\nquiet\n"),
    )
    [entry] = scan(tmp_path).entries
    assert entry.title == "Arch Linux"
    assert entry.kernel == "/EFI/Linux/arch-linux.efi"
    assert entry.initrds == ()
    # As systemd's stub passes it: the ends trimmed, the inside as written (real systemd-boot 252, sdboot-uki tree).
    assert entry.cmdline == "root=/dev/sda2  rw\nquiet"
    assert entry.version == "rolling"
    assert entry.sort_key == "arch"
    assert entry.id == "arch-linux"
    assert entry.default
    assert entry.format == "bls"


def test_title_falls_back_from_pretty_name_to_image_id_name_id(tmp_path: Path) -> None:
    put(tmp_path, "EFI/Linux/a.efi", uki("IMAGE_ID=appliance\nNAME=Foo\nID=foo\nIMAGE_VERSION=7\nVERSION_ID=1\n"))
    put(tmp_path, "EFI/Linux/b.efi", uki("ID=bar\nVERSION_ID=2\n"))
    titles = {e.kernel: (e.title, e.version, e.sort_key) for e in scan(tmp_path).entries}
    assert titles == {
        "/EFI/Linux/a.efi": ("appliance", "7", "appliance"),
        "/EFI/Linux/b.efi": ("bar", "2", "bar"),
    }


def test_sorted_with_type1_entries_newest_version_first(tmp_path: Path) -> None:
    # systemd-boot sorts both kinds together: sort-key ascending, then version descending.
    put(tmp_path, "EFI/Linux/fedora-6.5.efi", uki('PRETTY_NAME="Fedora 6.5"\nID=fedora\nVERSION_ID=6.5\n'))
    put(tmp_path, "EFI/Linux/fedora-6.9.efi", uki('PRETTY_NAME="Fedora 6.9"\nID=fedora\nVERSION_ID=6.9\n'))
    put(tmp_path, "vmlinuz", "x")
    put(tmp_path, "loader/entries/fedora-6.7.conf", "title Fedora 6.7\nsort-key fedora\nversion 6.7\nlinux /vmlinuz\n")
    assert [e.title for e in scan(tmp_path).entries] == ["Fedora 6.9", "Fedora 6.7", "Fedora 6.5"]


def test_loader_conf_default_names_a_uki_by_file_name(tmp_path: Path) -> None:
    put(tmp_path, "loader/loader.conf", "default arch-lts*\n")
    put(tmp_path, "EFI/Linux/arch-linux.efi", uki('PRETTY_NAME="Arch"\nID=arch\nVERSION_ID=6.9\n'))
    put(tmp_path, "EFI/Linux/arch-lts.efi", uki('PRETTY_NAME="Arch LTS"\nID=arch\nVERSION_ID=6.6\n'))
    result = scan(tmp_path)
    assert [(e.title, e.default) for e in result.entries] == [("Arch", False), ("Arch LTS", True)]
    assert messages(result) == []


def test_boot_counting_suffix_gives_the_id_and_the_tries(tmp_path: Path) -> None:
    put(tmp_path, "EFI/Linux/os-1+0-3.efi", uki('PRETTY_NAME="OS 1"\nID=os\nVERSION_ID=1\n'))
    put(tmp_path, "EFI/Linux/os-2+2-1.efi", uki('PRETTY_NAME="OS 2"\nID=os\nVERSION_ID=2\n'))
    entries = scan(tmp_path).entries
    assert [(e.id, e.boot_count) for e in entries] == [("os-2", BootCount(2, 1)), ("os-1", BootCount(0, 3))]


def test_what_systemd_boot_does_not_list(tmp_path: Path) -> None:
    put(tmp_path, "EFI/Linux/good.efi", uki('PRETTY_NAME="Good"\n'))
    put(tmp_path, "EFI/Linux/auto-generated.efi", uki('PRETTY_NAME="Auto"\n'))
    put(tmp_path, "EFI/Linux/.hidden.efi", uki('PRETTY_NAME="Hidden"\n'))
    put(tmp_path, "EFI/Linux/notes.txt", "not an image")
    put(tmp_path, "EFI/Linux/no-osrel.efi", pe([(".linux", bzimage(size=4096))]))
    put(tmp_path, "EFI/Linux/nameless.efi", uki("VERSION_ID=3\n"))
    put(tmp_path, "EFI/Linux/shell.efi", uki('PRETTY_NAME="Shell"\n', linux=False))
    put(tmp_path, "EFI/Linux/garbage.efi", b"MZ" + bytes(10))
    put(tmp_path, "EFI/Linux/arm.efi", uki('PRETTY_NAME="Arm"\n', machine=0xAA64))
    result = scan(tmp_path)
    assert [e.title for e in result.entries] == ["Good"]
    found = "\n".join(messages(result))
    assert "/EFI/Linux/no-osrel.efi: unified kernel image without an .osrel section" in found
    assert "/EFI/Linux/nameless.efi: the .osrel section names no PRETTY_NAME" in found
    assert "/EFI/Linux/shell.efi: EFI binary without a .linux section" in found
    assert "/EFI/Linux/garbage.efi: not a unified kernel image: truncated PE file" in found
    assert "/EFI/Linux/arm.efi: entry is for architecture 'aa64', this machine is 'x64'" in found
    assert "auto-generated" not in found
    assert "hidden" not in found


def test_lowercase_directory_on_vfat(tmp_path: Path) -> None:
    put(tmp_path, "efi/linux/Debian.EFI", uki('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'))
    [entry] = scan(tmp_path).entries
    assert entry.title == "Debian GNU/Linux 12 (bookworm)"
    assert entry.kernel == "/efi/linux/Debian.EFI"


def test_a_bad_image_costs_no_other_entry(tmp_path: Path) -> None:
    put(tmp_path, "EFI/Linux/a.efi", b"MZ" + bytes(0x3A) + b"\xff\xff\xff\x7f")
    put(tmp_path, "EFI/Linux/b.efi", uki('PRETTY_NAME="B"\n'))
    put(tmp_path, "vmlinuz", "x")
    put(tmp_path, "loader/entries/c.conf", "title C\nlinux /vmlinuz\n")
    result = scan(tmp_path)
    assert sorted(e.title for e in result.entries) == ["B", "C"]
    assert any("a.efi" in m for m in messages(result))


def test_uki_built_from_systemds_stub_is_read(tmp_path: Path) -> None:
    # The stub carries sections of its own (.text, .sdmagic, .sbat, ...) before the ones objcopy adds.
    repo = Path(__file__).resolve().parents[2]
    linux = tmp_path / "vmlinuz"
    linux.write_bytes(bzimage(size=8192))
    build_uki(
        tmp_path / "esp/EFI/Linux/debian-6.1.efi",
        linux=linux,
        osrel='PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
        cmdline="root=UUID=0a1b quiet",
        uname="6.1.0-57-amd64",
        stub_file=stub(repo / STUB_CACHE),
    )
    [entry] = scan(tmp_path / "esp").entries
    assert (entry.title, entry.version, entry.cmdline) == (
        "Debian GNU/Linux 12 (bookworm)",
        "12",
        "root=UUID=0a1b quiet",
    )
