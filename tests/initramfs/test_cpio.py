"""The newc writer, read back by GNU cpio: what the kernel unpacks is what we meant to put in."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import stat
import subprocess
from pathlib import Path

import pytest

from initramfs.cpio import Compression, CpioEntry, CpioError, write_cpio


def sample_entries(tmp_path: Path) -> list[CpioEntry]:
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 4099)  # not a multiple of 4: exercises padding
    return [
        CpioEntry.file("usr/bin/tool", b"#!/bin/sh\necho hi\n", perm=0o755),
        CpioEntry.file("/etc/marker", b""),
        CpioEntry.file("data/big.bin", source=big),
        CpioEntry.symlink("bin/sh", "busybox"),
        CpioEntry.file("bin/busybox", b"x" * 5, perm=0o755),
        CpioEntry.char_device("dev/console", 5, 1),
        CpioEntry.block_device("dev/vda", 254, 0, perm=0o660),
        CpioEntry.directory("run", perm=0o700),
    ]


def archive(entries: list[CpioEntry]) -> bytes:
    buf = io.BytesIO()
    n = write_cpio(entries, buf)
    assert n == len(buf.getvalue())
    return buf.getvalue()


def test_cpio_lists_members_sorted_with_implied_parents(tmp_path: Path) -> None:
    data = archive(sample_entries(tmp_path))
    listing = subprocess.run(["cpio", "-t", "--quiet"], input=data, capture_output=True, check=True).stdout.decode()
    assert listing.splitlines() == [
        "bin",
        "bin/busybox",
        "bin/sh",
        "data",
        "data/big.bin",
        "dev",
        "dev/console",
        "dev/vda",
        "etc",
        "etc/marker",
        "run",
        "usr",
        "usr/bin",
        "usr/bin/tool",
    ]


def test_cpio_extracts_contents_modes_and_links(tmp_path: Path) -> None:
    data = archive(sample_entries(tmp_path))
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-i", "-d", "--quiet", "--no-absolute-filenames"], input=data, cwd=out, check=True)
    assert (out / "usr/bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE((out / "usr/bin/tool").stat().st_mode) == 0o755
    assert (out / "etc/marker").read_bytes() == b""
    assert (out / "data/big.bin").read_bytes() == (tmp_path / "big.bin").read_bytes()
    assert os.readlink(out / "bin/sh") == "busybox"
    assert stat.S_IMODE((out / "run").stat().st_mode) == 0o700
    assert stat.S_ISDIR((out / "usr/bin").stat().st_mode)
    console = (out / "dev/console").stat()
    assert stat.S_ISCHR(console.st_mode)
    assert (os.major(console.st_rdev), os.minor(console.st_rdev)) == (5, 1)
    vda = (out / "dev/vda").stat()
    assert stat.S_ISBLK(vda.st_mode)
    assert (os.major(vda.st_rdev), os.minor(vda.st_rdev)) == (254, 0)


def test_cpio_verbose_listing_shows_root_owner_and_fixed_mtime(tmp_path: Path) -> None:
    data = archive(sample_entries(tmp_path))
    listing = subprocess.run(
        ["cpio", "-t", "-v", "--quiet", "--numeric-uid-gid"],
        input=data,
        capture_output=True,
        check=True,
        env={**os.environ, "TZ": "UTC", "LC_ALL": "C"},
    ).stdout.decode()
    for line in listing.splitlines():
        fields = line.split()
        assert fields[2:4] == ["0", "0"], line
        assert "1970" in line, line


def test_cpio_is_deterministic_whatever_the_input_order(tmp_path: Path) -> None:
    entries = sample_entries(tmp_path)
    first = archive(entries)
    again = archive(list(reversed(entries)))
    assert first == again
    for method in Compression:
        if method is Compression.ZSTD and not _has("zstd"):
            continue
        assert method.compress(first) == method.compress(again)


def test_compressed_archives_decompress_to_the_archive(tmp_path: Path) -> None:
    data = archive(sample_entries(tmp_path))
    xz = Compression.XZ.compress(data)
    assert lzma.decompress(xz) == data
    # The kernel's xz decoder only knows CRC32: `xz --robot --list` reports the check.
    path = tmp_path / "a.cpio.xz"
    path.write_bytes(xz)
    info = subprocess.run(["xz", "--robot", "--list", str(path)], capture_output=True, check=True).stdout.decode()
    assert "CRC32" in info
    gz = Compression.GZIP.compress(data)
    assert gzip.decompress(gz) == data
    assert gz[4:8] == b"\0\0\0\0"  # gzip header mtime
    assert Compression.NONE.compress(data) == data
    zst = Compression.ZSTD.compress(data)
    assert subprocess.run(["zstd", "-dc"], input=zst, capture_output=True, check=True).stdout == data


def test_duplicate_paths_with_different_contents_are_rejected() -> None:
    with pytest.raises(CpioError, match="etc/a"):
        write_cpio([CpioEntry.file("etc/a", b"1"), CpioEntry.file("/etc/a", b"2")], io.BytesIO())


def test_a_file_cannot_be_a_parent() -> None:
    with pytest.raises(CpioError, match="not a directory"):
        write_cpio([CpioEntry.file("etc", b"1"), CpioEntry.file("etc/a", b"2")], io.BytesIO())


@pytest.mark.parametrize("bad", ["", "/", "../etc/passwd", "a/../../b"])
def test_paths_escaping_the_root_are_rejected(bad: str) -> None:
    with pytest.raises(CpioError):
        CpioEntry.file(bad, b"")


def _has(tool: str) -> bool:
    import shutil

    return shutil.which(tool) is not None
