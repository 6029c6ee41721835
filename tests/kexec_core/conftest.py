"""The one fake in kexec_core's tests: a recording backend at the syscall boundary (kexec_core.syscalls.backend)."""

from __future__ import annotations

import lzma
import os
import struct
import subprocess
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kexec_core import syscalls


@dataclass
class Call:
    name: str
    args: dict[str, Any]


@dataclass
class FakeBackend:
    """Records every call; `fail[name] = errno` makes that call fail with -errno.

    For kexec_file_load it also reads what the kernel would: the file behind each fd and the whole initrd content.
    """

    calls: list[Call] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)

    def _record(self, name: str, **args: Any) -> int:
        self.calls.append(Call(name, args))
        return -self.fail[name] if name in self.fail else 0

    @staticmethod
    def _file(fd: int) -> tuple[str | None, bytes | None]:
        if fd < 0:
            return None, None
        st = os.fstat(fd)
        return os.readlink(f"/proc/self/fd/{fd}"), os.pread(fd, st.st_size, 0)

    def kexec_file_load(self, kernel_fd: int, initrd_fd: int, cmdline: bytes, flags: int) -> int:
        kernel_path, kernel_data = self._file(kernel_fd)
        initrd_path, initrd_data = self._file(initrd_fd)
        return self._record(
            "kexec_file_load",
            kernel_fd=kernel_fd,
            initrd_fd=initrd_fd,
            kernel_path=kernel_path,
            kernel_data=kernel_data,
            initrd_path=initrd_path,
            initrd_data=initrd_data,
            cmdline=cmdline,
            flags=flags,
        )

    def kexec_load(self, entry: int, segments: Sequence[syscalls.Segment], flags: int) -> int:
        return self._record("kexec_load", entry=entry, segments=list(segments), flags=flags)

    def reboot_kexec(self) -> int:
        return self._record("reboot_kexec")

    def mount(self, source: bytes, target: bytes, fstype: bytes, flags: int, data: bytes | None) -> int:
        return self._record("mount", source=source, target=target, fstype=fstype, flags=flags, data=data)

    def umount2(self, target: bytes, flags: int) -> int:
        rc = self._record("umount2", target=target, flags=flags)
        if rc and flags and "umount2_lazy" not in self.fail:
            return 0
        return rc

    def finit_module(self, fd: int, params: bytes, flags: int) -> int:
        return self._record("finit_module", fd=fd, params=params, flags=flags)

    def sync(self) -> None:
        self._record("sync")

    def names(self) -> list[str]:
        return [c.name for c in self.calls]


@pytest.fixture
def fake_backend(monkeypatch: pytest.MonkeyPatch) -> FakeBackend:
    fake = FakeBackend()
    monkeypatch.setattr(syscalls, "backend", fake)
    return fake


@pytest.fixture(scope="session")
def debian_vmlinux(kernel_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ELF vmlinux inside the Debian bzImage: its payload (payload_offset/payload_length) decompressed."""
    data = kernel_image.read_bytes()
    setup = (data[0x1F1] + 1) * 512
    offset, length = struct.unpack_from("<II", data, 0x248)
    payload = data[setup + offset : setup + offset + length]
    if payload.startswith(b"\xfd7zXZ\x00"):
        raw = lzma.LZMADecompressor().decompress(payload)
    elif payload.startswith(b"\x1f\x8b"):
        raw = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(payload)
    else:
        raw = subprocess.run(["zstd", "-dc"], input=payload, capture_output=True, check=True).stdout
    assert raw.startswith(b"\x7fELF"), f"{kernel_image}: payload is not an ELF file"
    path = tmp_path_factory.mktemp("vmlinux") / "vmlinux"
    path.write_bytes(raw)
    return path
