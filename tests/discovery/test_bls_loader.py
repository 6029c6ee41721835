"""The standalone BLS loader: the menu systemd-boot would show for a partition's loader/entries."""

from __future__ import annotations

from pathlib import Path

from discovery.bls import load
from discovery.entry import BootCount, LoadResult
from discovery.fs import Filesystem, Platform
from discovery.loaders import LoadContext

X86 = LoadContext(platform=Platform(firmware="efi", cpu="x86_64"))


def write(root: Path, path: str, text: str = "") -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def scan(root: Path, ctx: LoadContext = X86) -> LoadResult:
    return load(Filesystem(root=root, name="nvme0n1p1"), ctx)


def messages(result: LoadResult) -> list[str]:
    return [str(d) for d in result.diagnostics]


def test_esp_entries_ordered_with_glob_default_and_timeout(tmp_path: Path) -> None:
    write(tmp_path, "loader/loader.conf", "# comment\ntimeout 7\ndefault arch-lts*\neditor no\n")
    for name in ("vmlinuz-linux", "vmlinuz-linux-lts", "initramfs-linux.img", "initramfs-linux-lts.img", "ucode.img"):
        write(tmp_path, name, "x")
    write(
        tmp_path,
        "loader/entries/arch.conf",
        "title Arch Linux\nlinux /vmlinuz-linux\ninitrd /ucode.img\ninitrd /initramfs-linux.img\n"
        "options root=/dev/sda2\noptions rw quiet\n",
    )
    write(
        tmp_path,
        "loader/entries/arch-lts.conf",
        "title Arch Linux\nversion 6.6.1-lts\nlinux /vmlinuz-linux-lts\ninitrd /initramfs-linux-lts.img\n",
    )
    result = scan(tmp_path)
    assert result.timeout == 7.0
    assert [(e.title, e.default) for e in result.entries] == [
        # By id, newest first: at "arch" + "." vs "-", the "-" (a release separator) is older. Duplicate titles get
        # the version where there is one.
        ("Arch Linux", False),
        ("Arch Linux (6.6.1-lts)", True),
    ]
    arch = result.entries[0]
    assert arch.kernel == "/vmlinuz-linux"
    assert arch.initrds == ("/ucode.img", "/initramfs-linux.img")
    assert arch.cmdline == "root=/dev/sda2 rw quiet"
    assert arch.id == "arch"
    assert arch.config == "/loader/entries/arch.conf"
    assert arch.line == 2
    assert arch.device == "nvme0n1p1"
    assert arch.format == "bls"
    assert result.configs[0] == "/loader/loader.conf"
    assert result.diagnostics == ()


def test_default_matches_the_id_with_its_conf_suffix_case_insensitively(tmp_path: Path) -> None:
    # systemd-boot 252 matches the glob against the id, `.conf` included: `default c-gamma` matched no c-gamma.conf
    # there (tests/conformance, the sdboot-sort tree), and booted the first entry.
    write(tmp_path, "vmlinuz")
    for name in ("a", "b", "c"):
        write(tmp_path, f"loader/entries/{name}.conf", f"title {name}\nlinux /vmlinuz\n")
    write(tmp_path, "loader/loader.conf", "default b.conf\n")
    assert [e.title for e in scan(tmp_path).entries if e.default] == ["b"]
    write(tmp_path, "loader/loader.conf", "default B.CONF\n")
    assert [e.title for e in scan(tmp_path).entries if e.default] == ["b"]
    write(tmp_path, "loader/loader.conf", "default b*\n")
    assert [e.title for e in scan(tmp_path).entries if e.default] == ["b"]
    write(tmp_path, "loader/loader.conf", "default b\n")
    assert [e.title for e in scan(tmp_path).entries if e.default] == ["c"]


def test_no_default_or_unmatched_default_picks_the_first_entry(tmp_path: Path) -> None:
    write(tmp_path, "vmlinuz")
    for name in ("linux-5.10", "linux-6.1"):
        write(tmp_path, f"loader/entries/{name}.conf", f"title {name}\nlinux /vmlinuz\n")
    result = scan(tmp_path)
    assert [(e.title, e.default) for e in result.entries] == [("linux-6.1", True), ("linux-5.10", False)]
    assert result.timeout is None
    write(tmp_path, "loader/loader.conf", "default windows*\n")
    result = scan(tmp_path)
    assert [e.title for e in result.entries if e.default] == ["linux-6.1"]
    assert messages(result) == ["/loader/loader.conf:1: default 'windows*' matches no entry; using the first"]


def test_saved_default_is_reported_as_unsupported(tmp_path: Path) -> None:
    write(tmp_path, "vmlinuz")
    write(tmp_path, "loader/entries/a.conf", "title A\nlinux /vmlinuz\n")
    write(tmp_path, "loader/loader.conf", "timeout 3\ndefault @saved\n")
    result = scan(tmp_path)
    assert result.entries[0].default
    assert messages(result) == ["/loader/loader.conf:2: default '@saved' is not supported; using the first entry"]


def test_timeout_keywords(tmp_path: Path) -> None:
    write(tmp_path, "vmlinuz")
    write(tmp_path, "loader/entries/a.conf", "title A\nlinux /vmlinuz\n")
    expected: dict[str, float | None] = {"menu-force": None, "menu-hidden": 0.0, "menu-disabled": 0.0, "0": 0.0}
    for value, timeout in expected.items():
        write(tmp_path, "loader/loader.conf", f"timeout {value}\n")
        assert scan(tmp_path).timeout == timeout, value
    write(tmp_path, "loader/loader.conf", "timeout soon\n")
    result = scan(tmp_path)
    assert result.timeout is None
    assert messages(result) == ["/loader/loader.conf:1: timeout 'soon' is not a number of seconds; ignored"]


def test_fedora_single_partition_paths_resolve_under_boot(tmp_path: Path) -> None:
    # /boot is a directory of the root filesystem; one entry was written as if /boot were its own partition.
    write(tmp_path, "boot/vmlinuz-6.5.6", "k")
    write(tmp_path, "boot/initramfs-6.5.6.img", "i")
    write(tmp_path, "boot/vmlinuz-0-rescue", "k")
    write(tmp_path, "boot/initramfs-0-rescue.img", "i")
    write(
        tmp_path,
        "boot/loader/entries/m-6.5.6.conf",
        "title Fedora\nversion 6.5.6\nlinux /vmlinuz-6.5.6\ninitrd /initramfs-6.5.6.img\noptions ro\n",
    )
    write(
        tmp_path,
        "boot/loader/entries/m-0-rescue.conf",
        "title Rescue\nversion 0-rescue\nlinux /boot/vmlinuz-0-rescue\ninitrd /boot/initramfs-0-rescue.img\n",
    )
    result = scan(tmp_path)
    by_title = {e.title: e for e in result.entries}
    assert by_title["Fedora"].kernel == "/boot/vmlinuz-6.5.6"
    assert by_title["Fedora"].initrds == ("/boot/initramfs-6.5.6.img",)
    assert by_title["Rescue"].kernel == "/boot/vmlinuz-0-rescue"
    assert by_title["Rescue"].initrds == ("/boot/initramfs-0-rescue.img",)
    assert result.diagnostics == ()


def test_missing_kernel_and_initrd_are_warned_on_the_entry(tmp_path: Path) -> None:
    write(tmp_path, "vmlinuz")
    write(tmp_path, "loader/entries/gone.conf", "title Gone\nlinux /vmlinuz-gone\ninitrd /i.img\n")
    write(tmp_path, "loader/entries/half.conf", "title Half\nlinux /vmlinuz\ninitrd /missing.img\ndevicetree /x.dtb\n")
    result = scan(tmp_path)
    by_title = {e.title: e for e in result.entries}
    assert [str(w) for w in by_title["Gone"].warnings] == [
        "/loader/entries/gone.conf:2: kernel /vmlinuz-gone not found"
    ]
    assert [str(w) for w in by_title["Half"].warnings] == [
        "/loader/entries/half.conf:3: initrd /missing.img not found",
        "/loader/entries/half.conf:4: devicetree /x.dtb not found",
    ]
    assert by_title["Half"].devicetree == "/x.dtb"
    assert len(result.diagnostics) == 3


def test_efi_and_foreign_architecture_entries_are_not_listed(tmp_path: Path) -> None:
    write(tmp_path, "vmlinuz")
    write(tmp_path, "loader/entries/01-linux.conf", "title Linux\nsort-key 01\nlinux /vmlinuz\narchitecture X64\n")
    write(tmp_path, "loader/entries/02-memtest.conf", "title Memtest\nsort-key 02\nefi /memtest.efi\n")
    write(tmp_path, "loader/entries/03-arm.conf", "title Arm\nsort-key 03\nlinux /vmlinuz\narchitecture aa64\n")
    write(tmp_path, "loader/entries/04-empty.conf", "# nothing here\n")
    result = scan(tmp_path)
    assert [e.title for e in result.entries] == ["Linux"]
    assert result.entries[0].architecture == "X64"
    assert messages(result) == [
        "/loader/entries/02-memtest.conf: entry boots the EFI binary /memtest.efi; not a Linux boot entry, not listed",
        "/loader/entries/03-arm.conf:4: entry is for architecture 'aa64', this machine is 'x64'; not listed",
        "/loader/entries/04-empty.conf: entry has no 'linux' key; not a Linux boot entry, not listed",
    ]
    arm = scan(tmp_path, LoadContext(platform=Platform(firmware="efi", cpu="arm64")))
    assert [e.title for e in arm.entries] == ["Arm"]


def test_bad_boot_counted_entry_sorts_last_and_keeps_its_counter(tmp_path: Path) -> None:
    write(tmp_path, "vmlinuz")
    write(tmp_path, "loader/entries/linux-6.2+0-3.conf", "title New\nlinux /vmlinuz\n")
    write(tmp_path, "loader/entries/linux-6.1+2-1.conf", "title Old\nlinux /vmlinuz\n")
    result = scan(tmp_path)
    assert [(e.title, e.id, e.default, e.boot_count) for e in result.entries] == [
        ("Old", "linux-6.1", True, BootCount(2, 1)),
        ("New", "linux-6.2", False, BootCount(0, 3)),
    ]


def test_malformed_files_never_raise(tmp_path: Path) -> None:
    write(tmp_path, "vmlinuz")
    (tmp_path / "loader/entries").mkdir(parents=True)
    (tmp_path / "loader/entries/bin.conf").write_bytes(b"title \xff\xfe\x00\nlinux /vmlinuz\noptions\n\x00\x01\n")
    (tmp_path / "loader/entries/loop.conf").symlink_to("loop.conf")
    (tmp_path / "loader/loader.conf").mkdir()  # a directory where a file should be
    result = scan(tmp_path)
    assert [e.kernel for e in result.entries] == ["/vmlinuz"]
    assert "/loader/entries/bin.conf:3: key 'options' has no value" in messages(result)


def test_no_entries_directory_means_nothing(tmp_path: Path) -> None:
    write(tmp_path, "loader/loader.conf", "default x\n")
    assert scan(tmp_path) == LoadResult()


def test_grub_variables_in_options_are_flagged(tmp_path: Path) -> None:
    write(tmp_path, "vmlinuz")
    write(tmp_path, "loader/entries/rhel.conf", "title RHEL\nlinux /vmlinuz\noptions $kernelopts $tuned_params\n")
    entry = scan(tmp_path).entries[0]
    assert entry.cmdline == "$kernelopts $tuned_params"
    assert [str(w) for w in entry.warnings] == [
        "/loader/entries/rhel.conf:3: options use GRUB variables, passed unexpanded"
    ]


def test_entries_expanded_by_grub_blscfg_are_not_listed_twice(tmp_path: Path) -> None:
    from discovery.loaders import load_filesystem

    write(tmp_path, "boot/vmlinuz-6.5", "k")
    write(tmp_path, "boot/grub2/grub.cfg", "set kernelopts='root=/dev/sda2 ro'\nblscfg\n")
    write(
        tmp_path,
        "boot/loader/entries/m-6.5.conf",
        "title Fedora\nversion 6.5\nlinux /vmlinuz-6.5\noptions $kernelopts\n",
    )
    result = load_filesystem(Filesystem(root=tmp_path, name="sda2"), X86)
    assert [(e.format, e.title) for e in result.entries] == [("grub", "Fedora")]
    assert result.entries[0].cmdline == "root=/dev/sda2 ro"
    # the standalone loader's warning about $kernelopts concerns an entry GRUB expanded: not reported
    assert not [d for d in result.diagnostics if "GRUB variables" in d.message]
