"""The thin syscall wrappers: what they pass to the backend and how a failure reads."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from kexec_core import syscalls
from kexec_core.errors import KexecError
from tests.kexec_core.conftest import FakeBackend


def test_mount_and_failure(fake_backend: FakeBackend) -> None:
    syscalls.mount("/dev/vda1", "/mnt/boot", "ext4", syscalls.flags().MS_RDONLY)
    assert fake_backend.calls[0].args == {
        "source": b"/dev/vda1",
        "target": b"/mnt/boot",
        "fstype": b"ext4",
        "flags": syscalls.flags().MS_RDONLY,
        "data": None,
    }
    fake_backend.fail["mount"] = errno.ENODEV
    with pytest.raises(KexecError) as err:
        syscalls.mount("/dev/vda2", "/mnt/x", "btrfs", data="subvol=@")
    assert str(err.value).startswith("mount('/dev/vda2', '/mnt/x', 'btrfs', flags=0x0, data='subvol=@') failed: ENODEV")
    assert "not supported by the running kernel" in str(err.value)


def test_umount2_names_flags(fake_backend: FakeBackend) -> None:
    fake_backend.fail["umount2"] = errno.EBUSY
    fake_backend.fail["umount2_lazy"] = errno.EBUSY
    with pytest.raises(KexecError, match=r"umount2\('/mnt/boot', flags=MNT_DETACH\) failed: EBUSY .*still in use"):
        syscalls.umount2("/mnt/boot", syscalls.flags().MNT_DETACH)


def test_finit_module_quotes_the_file(fake_backend: FakeBackend, kernel_root: Path) -> None:
    ko = next(p for p in (kernel_root / "lib" / "modules").rglob("*.ko*") if p.suffix == ".ko")
    fake_backend.fail["finit_module"] = errno.EEXIST
    fd = os.open(ko, os.O_RDONLY)
    try:
        with pytest.raises(KexecError) as err:
            syscalls.finit_module(fd, "debug=1")
    finally:
        os.close(fd)
    # The message names the file the descriptor refers to (/proc/self/fd): symlinks in the cache path are resolved.
    assert f"finit_module(fd={fd}<{ko.resolve()}>, params='debug=1'" in str(err.value)
    assert "already loaded" in str(err.value)


def test_sync_goes_through_backend(fake_backend: FakeBackend) -> None:
    syscalls.sync()
    assert fake_backend.names() == ["sync"]


def test_error_without_hint_still_names_errno(fake_backend: FakeBackend) -> None:
    fake_backend.fail["kexec_file_load"] = errno.EIO
    with pytest.raises(KexecError) as err:
        syscalls.kexec_file_load(-1, -1, "", 0)
    assert str(err.value) == (
        "kexec_file_load(kernel_fd=-1, initrd_fd=-1, cmdline_len=0, cmdline='', flags=0) "
        "failed: EIO (Input/output error)"
    )


def test_kexec_load_segments_reach_backend(fake_backend: FakeBackend) -> None:
    segments = [syscalls.Segment(b"\x90" * 16, 0x1000000, 0x200000), syscalls.Segment(b"params", 0x90000, 0x1000)]
    syscalls.kexec_load(0x1000000, segments, syscalls.flags().KEXEC_ARCH_DEFAULT)
    assert fake_backend.calls[0].args["segments"] == segments
    fake_backend.fail["kexec_load"] = errno.EPERM
    with pytest.raises(KexecError, match=r"kexec_load\(entry=0x1000000, nr_segments=2, flags=0x0\) failed: EPERM"):
        syscalls.kexec_load(0x1000000, segments, 0)
