"""`make bench`'s kexec-tools baseline on a machine that lacks kexec-tools' libraries (issue 9 item 2: libxenctrl from
libxenmisc4.17 was missing on a fresh machine): everything kexec needs is fetched from the archive into a cache and
put into the baseline initrd at a path the guest's loader searches."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import pytest

from initramfs import guests
from initramfs.elf import DependencyWalker, system_lib_dirs
from tools.bench import _missing_library, kexec_tools

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fetched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fresh cache: the archive's kexec-tools and whatever libraries it needs that this machine does not have."""
    return kexec_tools(tmp_path_factory.mktemp("kexec-cache"))


def test_every_library_kexec_needs_is_found(fetched: tuple[Path, Path]) -> None:
    binary, root = fetched
    assert binary.is_file()
    assert _missing_library(binary, root) is None
    # Without the unpacked packages, the host alone: whatever it lacks is what had to be fetched.
    alone = _missing_library(binary, root / "nothing")
    if alone is not None:
        name = alone.split("needs ", 1)[1].split(",", 1)[0]
        assert any(root.rglob(name)), f"{name} was neither on the host nor fetched"


def test_the_baseline_initrd_carries_them(fetched: tuple[Path, Path], kernel_root: Path, tmp_path: Path) -> None:
    binary, root = fetched
    (modules,) = sorted((kernel_root / "lib" / "modules").iterdir())
    second = guests.second_stage_initrd(tmp_path / "second.img")
    image = guests.baseline_initrd(
        tmp_path / "baseline.img",
        modules_dir=modules,
        kexec_binary=binary,
        second_kernel=second,  # any file: the image is listed, not booted
        second_initrd=second,
        library_roots=[root],
    )
    listing = subprocess.run(
        ["cpio", "-t", "--quiet"], input=gzip.decompress(image.read_bytes()), capture_output=True, check=True
    ).stdout.decode()
    members = set(listing.split())
    assert "sbin/kexec" in members
    dirs = [str(root.resolve() / d) for d in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib")]
    for lib in DependencyWalker([*dirs, *system_lib_dirs()]).walk([binary]).values():
        # Unpacked ones at their place in the package (/usr/lib/x86_64-linux-gnu/...), the host's where they are.
        inside = lib.path.is_relative_to(root.resolve())
        guest = str(lib.path.relative_to(root.resolve()) if inside else lib.path).lstrip("/")
        assert guest in members, f"{lib.name} ({lib.path}) is not in the baseline initrd"
