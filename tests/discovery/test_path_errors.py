"""Issue 9 item 6: an OSError while resolving one path (a component over 255 bytes, an I/O error) is a diagnostic on
that entry, naming file and line; every other entry of the filesystem survives."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from discovery.entry import LoadResult
from discovery.fs import Filesystem
from discovery.loaders import LoadContext, load_filesystem

LONG = "x" * 300  # one path component over NAME_MAX (255): lstat() fails with ENAMETOOLONG


def write(root: Path, path: str, text: str = "x") -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write(tmp_path, "vmlinuz-good")
    write(tmp_path, "initrd-good")
    return tmp_path


def scan(root: Path, fs_type: type[Filesystem] = Filesystem) -> LoadResult:
    return load_filesystem(fs_type(root=root, name="sda1"), LoadContext())


def titles(result: LoadResult) -> list[str]:
    return [f"{e.format}:{e.title}" for e in result.entries]


def warnings_of(result: LoadResult, title: str) -> list[str]:
    return [str(w) for e in result.entries if e.title == title for w in e.warnings]


def test_bls_entry_with_a_long_component_is_a_diagnostic_and_the_others_stay(tree: Path) -> None:
    write(tree, "loader/entries/a-good.conf", "title good\nlinux /vmlinuz-good\ninitrd /initrd-good\n")
    write(tree, "loader/entries/b-long.conf", f"title long\n\nlinux /{LONG}/vmlinuz\n")
    write(tree, "loader/entries/c-initrd.conf", f"title initrd\nlinux /vmlinuz-good\ninitrd /{LONG}\n")
    result = scan(tree)
    assert sorted(titles(result)) == ["bls:good", "bls:initrd", "bls:long"]
    (long_kernel,) = warnings_of(result, "long")
    assert long_kernel.startswith("/loader/entries/b-long.conf:3: kernel /xxx")
    assert "File name too long (ENAMETOOLONG)" in long_kernel
    (long_initrd,) = warnings_of(result, "initrd")
    assert long_initrd.startswith("/loader/entries/c-initrd.conf:3: initrd /xxx")
    assert "ENAMETOOLONG" in long_initrd
    assert not warnings_of(result, "good")
    assert not any("loader failed" in str(d) for d in result.diagnostics)


def test_syslinux_label_with_a_long_component_is_a_diagnostic_and_the_others_stay(tree: Path) -> None:
    write(
        tree,
        "syslinux/syslinux.cfg",
        f"DEFAULT good\nLABEL long\n  KERNEL /{LONG}/vmlinuz\nLABEL good\n  KERNEL /vmlinuz-good\n"
        f"LABEL initrd\n  KERNEL /vmlinuz-good\n  INITRD /initrd-good,/{LONG}\n"
        f"LABEL fdt\n  KERNEL /vmlinuz-good\n  FDT /{LONG}.dtb\n"
        f"INCLUDE /{LONG}.cfg\nLABEL after\n  KERNEL /vmlinuz-good\n  APPEND initrd=/{LONG}\n",
    )
    result = scan(tree)
    assert titles(result) == ["syslinux:long", "syslinux:good", "syslinux:initrd", "syslinux:fdt", "syslinux:after"]
    assert [e.title for e in result.entries if e.default] == ["good"]
    (kernel,) = warnings_of(result, "long")
    assert kernel.startswith("/syslinux/syslinux.cfg:3: kernel /xxx")
    assert "ENAMETOOLONG" in kernel
    (initrd,) = warnings_of(result, "initrd")
    assert initrd.startswith("/syslinux/syslinux.cfg:8: initrd /xxx")
    assert "ENAMETOOLONG" in initrd
    (fdt,) = warnings_of(result, "fdt")
    assert fdt.startswith("/syslinux/syslinux.cfg:11: devicetree /xxx")
    assert "ENAMETOOLONG" in fdt
    (after,) = warnings_of(result, "after")
    assert after.startswith("/syslinux/syslinux.cfg:14: initrd /xxx")
    assert "ENAMETOOLONG" in after
    include = [str(d) for d in result.diagnostics if "INCLUDE" in d.message]
    assert len(include) == 1
    assert include[0].startswith("/syslinux/syslinux.cfg:12: INCLUDE /xxx")
    assert not any("loader failed" in str(d) for d in result.diagnostics)


def test_syslinux_config_label_and_default_command_line_with_long_paths(tree: Path) -> None:
    write(
        tree,
        "extlinux.conf",
        f"LABEL sub\n  CONFIG /{LONG}.cfg\nLABEL good\n  KERNEL /vmlinuz-good\nDEFAULT /{LONG} quiet\n",
    )
    result = scan(tree)
    assert titles(result) == ["syslinux:good"]
    messages = [str(d) for d in result.diagnostics]
    assert any(m.startswith("/extlinux.conf:2: CONFIG /xxx") and "ENAMETOOLONG" in m for m in messages)
    assert any(m.startswith("/extlinux.conf:5: DEFAULT /xxx") and "ENAMETOOLONG" in m for m in messages)


def test_grub_entry_with_long_kernel_and_initrd_paths(tree: Path) -> None:
    write(
        tree,
        "boot/grub/grub.cfg",
        f"menuentry long {{\n  linux /{LONG}/k\n  initrd /{LONG} /initrd-good\n}}\n"
        "menuentry good { linux /vmlinuz-good; initrd /initrd-good; }\n",
    )
    result = scan(tree)
    assert titles(result) == ["grub:long", "grub:good"]
    long_entry = result.entries[0]
    assert long_entry.initrds == (f"/{LONG}", "/initrd-good")  # the files after the bad one are still read
    messages = [str(w) for w in long_entry.warnings]
    assert any(m.startswith("/boot/grub/grub.cfg:2: kernel /xxx") and "ENAMETOOLONG" in m for m in messages)
    assert any(m.startswith("/boot/grub/grub.cfg:3: initrd /xxx") and "ENAMETOOLONG" in m for m in messages)
    assert not warnings_of(result, "good")


def test_grub_blscfg_entry_with_a_long_path_keeps_the_other_bls_entries(tree: Path) -> None:
    write(tree, "boot/grub2/grub.cfg", "blscfg\n")
    write(tree, "loader/entries/good.conf", "title good\nversion 2\nlinux /vmlinuz-good\n")
    write(tree, "loader/entries/long.conf", f"title long\nversion 1\nlinux /{LONG}/vmlinuz\ninitrd /{LONG}\n")
    result = scan(tree)
    assert titles(result) == ["grub:good", "grub:long"]
    messages = [str(w) for w in result.entries[1].warnings]
    assert any(m.startswith("/loader/entries/long.conf:3: kernel /xxx") and "ENAMETOOLONG" in m for m in messages)


class FailingFilesystem(Filesystem):
    """The syscall boundary failing: any lookup of a path holding "bad" fails with EIO, as a dying disk does."""

    def host_path(self, path: str) -> Path | None:
        if "bad" in path:
            raise OSError(errno.EIO, "Input/output error")
        return super().host_path(path)


def test_an_io_error_on_one_path_costs_only_that_entry(tree: Path) -> None:
    write(tree, "loader/entries/good.conf", "title good\nlinux /vmlinuz-good\n")
    write(tree, "loader/entries/io.conf", "title io\nlinux /bad/vmlinuz\n")
    write(tree, "syslinux.cfg", "LABEL io\n  KERNEL /bad/vmlinuz\nLABEL good\n  KERNEL /vmlinuz-good\n")
    write(tree, "boot/grub/grub.cfg", "menuentry io { linux /bad/k; }\nmenuentry good { linux /vmlinuz-good; }\n")
    result = scan(tree, FailingFilesystem)
    assert sorted(titles(result)) == sorted(
        ["grub:io", "grub:good", "bls:io", "bls:good", "syslinux:io", "syslinux:good"]
    )
    for entry in result.entries:
        if entry.title == "io":
            assert any("Input/output error (EIO)" in w.message for w in entry.warnings), entry
    assert not any("loader failed" in str(d) for d in result.diagnostics)


def test_grub_file_tests_and_sources_with_long_paths_fail_only_that_command(tree: Path) -> None:
    write(
        tree,
        "boot/grub/grub.cfg",
        f"if [ -f /{LONG} ]; then set found=1; fi\nsource /{LONG}.cfg\nsearch --file --set=root /{LONG}\n"
        'menuentry "good $found" { linux /vmlinuz-good }\n',
    )
    result = scan(tree)
    assert titles(result) == ["grub:good "]
    messages = [str(d) for d in result.diagnostics]
    assert all("ENAMETOOLONG" in m for m in messages), messages
    assert all(": sda1:/xxx" in m and str(tree) not in m for m in messages), messages  # never the host mount point
    assert [m.split(":")[1] for m in messages] == ["1", "2", "3"]
