"""Runs INSIDE the arm64 QEMU guest (Debian's arm64 Python, PID 1 of the test initramfs): bootmenu's discovery reads
the extlinux.conf of the /e2e tree (`FDT /boot/virt.dtb`), and kexec_core plans the kexec_load segments for its kernel,
initrd, command line and devicetree from the guest's own /proc/iomem, loads them and jumps, as the daemon would.

The syscall backend here is ctypes over libc's syscall(2) (arm64 numbers from include/uapi/asm-generic/unistd.h), not
the cffi module: that one is compiled for the host, and the payload has no arm64 build of it yet. Everything above the
backend (boot.prepare, boot.load, boot.execute, the guard) is the product's code as it is.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, "/lib/bootmenu")

from discovery.fs import Platform
from discovery.scan import scan
from kexec_core import boot, syscalls

NR_KEXEC_LOAD = 104
NR_REBOOT = 142
NR_SYNC = 81
LINUX_REBOOT_MAGIC1 = 0xFEE1DEAD
LINUX_REBOOT_MAGIC2 = 672274793
LINUX_REBOOT_CMD_KEXEC = 0x45584543
MARK = "ARM64-GUEST"
ROOT = Path("/e2e")  # the boot filesystem's tree


class KexecSegment(ctypes.Structure):
    _fields_ = (
        ("buf", ctypes.c_void_p),
        ("bufsz", ctypes.c_size_t),
        ("mem", ctypes.c_void_p),
        ("memsz", ctypes.c_size_t),
    )


class CtypesBackend:
    """The three syscalls this path needs; the others are not reached here."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long

    def _call(self, *args: object) -> int:
        rc = int(self.libc.syscall(*args))
        return rc if rc >= 0 else -ctypes.get_errno()

    def kexec_file_load(self, kernel_fd: int, initrd_fd: int, cmdline: bytes, flags: int) -> int:
        raise NotImplementedError

    def kexec_load(self, entry: int, segments: Sequence[syscalls.Segment], flags: int) -> int:
        bufs = [ctypes.create_string_buffer(s.buf, len(s.buf)) for s in segments]
        array = (KexecSegment * len(segments))()
        for item, seg, buf in zip(array, segments, bufs, strict=True):
            item.buf = ctypes.cast(buf, ctypes.c_void_p)
            item.bufsz = len(seg.buf)
            item.mem = seg.mem
            item.memsz = seg.memsz
        return self._call(
            ctypes.c_long(NR_KEXEC_LOAD),
            ctypes.c_ulong(entry),
            ctypes.c_ulong(len(segments)),
            array,
            ctypes.c_ulong(flags),
        )

    def reboot_kexec(self) -> int:
        return self._call(
            ctypes.c_long(NR_REBOOT),
            ctypes.c_int(LINUX_REBOOT_MAGIC1),
            ctypes.c_int(LINUX_REBOOT_MAGIC2),
            ctypes.c_uint(LINUX_REBOOT_CMD_KEXEC),
            None,
        )

    def mount(self, source: bytes, target: bytes, fstype: bytes, flags: int, data: bytes | None) -> int:
        raise NotImplementedError

    def umount2(self, target: bytes, flags: int) -> int:
        raise NotImplementedError

    def finit_module(self, fd: int, params: bytes, flags: int) -> int:
        raise NotImplementedError

    def sync(self) -> None:
        self._call(ctypes.c_long(NR_SYNC))


def _flags() -> syscalls.Flags:
    # linux/kexec.h, linux/reboot.h, linux/magic.h, sys/mount.h
    return syscalls.Flags(
        KEXEC_FILE_UNLOAD=1,
        KEXEC_FILE_ON_CRASH=2,
        KEXEC_FILE_NO_INITRAMFS=4,
        KEXEC_ON_CRASH=1,
        KEXEC_PRESERVE_CONTEXT=2,
        KEXEC_ARCH_DEFAULT=0,
        KEXEC_SEGMENT_MAX=16,
        LINUX_REBOOT_CMD_KEXEC=LINUX_REBOOT_CMD_KEXEC,
        RAMFS_MAGIC=0x858458F6,
        TMPFS_MAGIC=0x01021994,
        MNT_DETACH=2,
        MNT_FORCE=1,
        MS_RDONLY=1,
    )


def main() -> int:
    syscalls.backend = CtypesBackend()
    syscalls.flags = _flags  # type: ignore[assignment]
    (scanned,) = scan([ROOT], Platform(firmware="pc", cpu="arm64"))
    for diag in scanned.result.diagnostics:
        print(f"{MARK}-DIAGNOSTIC {diag}", flush=True)
    entry = scanned.result.entries[0]
    assert entry.devicetree is not None, "the extlinux entry has no FDT"
    cmdline = entry.kernel_cmdline()
    print(f"{MARK}-TITLE {entry.title}", flush=True)
    print(f"{MARK}-CMDLINE={cmdline}\n{MARK}-CMDLINE-END length={len(cmdline.encode())}", flush=True)

    def on_fs(path: str) -> Path:
        return ROOT / path.lstrip("/")

    plan = boot.prepare(
        on_fs(entry.kernel), [on_fs(i) for i in entry.initrds], cmdline, devicetree=on_fs(entry.devicetree)
    )
    for line in plan.describe():
        print(f"{MARK}-PLAN {line}", flush=True)
    boot.load(plan)
    print(f"{MARK}-LOADED", flush=True)
    boot.execute()
    return 1


if __name__ == "__main__":
    os.makedirs("/proc", exist_ok=True)
    try:
        sys.exit(main())
    except Exception as err:  # PID 1 must not die silently: say why, then the kernel panics (panic=-1 ends QEMU)
        print(f"{MARK}-ERROR {type(err).__name__}: {err}", flush=True)
        sys.exit(1)
