"""The syscall boundary: one thin Python function per syscall, raising KexecError right after the call.

Everything goes through the module-level `backend` (the compiled cffi shim, kexec_core/_kexec_shim.c). Tests replace
`backend` with a fake that records calls; nothing else in kexec_core touches the syscalls. Each backend method returns
0 (or a non-negative value) on success and -errno on failure, errno having been read in C right after the call.

Syscalls: kexec_file_load(2), kexec_load(2), reboot(2) with LINUX_REBOOT_CMD_KEXEC, mount(2), umount2(2),
finit_module(2), sync(2). Flag values come from the compiled module (kernel UAPI headers), see `flags()`.
"""

from __future__ import annotations

import errno
import functools
import importlib
import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kexec_core.errors import BindingsMissing, KexecError


@dataclass(frozen=True)
class Flags:
    """Constants from linux/kexec.h, linux/reboot.h, linux/magic.h and sys/mount.h, as the compiler saw them."""

    KEXEC_FILE_UNLOAD: int
    KEXEC_FILE_ON_CRASH: int
    KEXEC_FILE_NO_INITRAMFS: int
    KEXEC_ON_CRASH: int
    KEXEC_PRESERVE_CONTEXT: int
    KEXEC_ARCH_DEFAULT: int
    KEXEC_SEGMENT_MAX: int
    LINUX_REBOOT_CMD_KEXEC: int
    RAMFS_MAGIC: int
    TMPFS_MAGIC: int
    MNT_DETACH: int
    MNT_FORCE: int
    MS_RDONLY: int

    def names(self, value: int, prefix: str) -> str:
        """`KEXEC_FILE_NO_INITRAMFS|...` for a flags word, for quoting calls; `0` when empty."""
        parts = [n for n, v in vars(self).items() if n.startswith(prefix) and v and value & v == v]
        rest = value
        for n in parts:
            rest &= ~getattr(self, n)
        if rest:
            parts.append(hex(rest))
        return "|".join(parts) or "0"


@dataclass(frozen=True)
class Segment:
    """One kexec_load segment (struct kexec_segment): bytes to copy to physical address `mem`, padded to `memsz`."""

    buf: bytes | mmap.mmap  # segments.SegmentBytes
    mem: int
    memsz: int


def _lib() -> Any:
    try:
        _kexec = importlib.import_module("kexec_core._kexec")
    except ImportError as err:
        raise BindingsMissing(
            f"the compiled module kexec_core._kexec is missing ({err}): build it with `make setup` "
            "or `pip install -e .` (needs gcc and the kernel headers)"
        ) from err
    return _kexec


@functools.cache
def flags() -> Flags:
    lib = _lib().lib
    return Flags(**{name: int(getattr(lib, name)) for name in Flags.__dataclass_fields__})


class Backend(Protocol):
    """What the syscall functions call; the real one is CffiBackend, tests substitute a recording fake."""

    def kexec_file_load(self, kernel_fd: int, initrd_fd: int, cmdline: bytes, flags: int) -> int: ...
    def kexec_load(self, entry: int, segments: Sequence[Segment], flags: int) -> int: ...
    def reboot_kexec(self) -> int: ...
    def mount(self, source: bytes, target: bytes, fstype: bytes, flags: int, data: bytes | None) -> int: ...
    def umount2(self, target: bytes, flags: int) -> int: ...
    def finit_module(self, fd: int, params: bytes, flags: int) -> int: ...
    def sync(self) -> None: ...


class CffiBackend:
    """The real syscalls, through the compiled shim."""

    def kexec_file_load(self, kernel_fd: int, initrd_fd: int, cmdline: bytes, flags: int) -> int:
        # cmdline includes its NUL; the kernel wants the length with it, and NULL when there is no command line.
        k = _lib()
        buf = k.ffi.from_buffer(cmdline) if cmdline else k.ffi.NULL
        return int(k.lib.bm_kexec_file_load(kernel_fd, initrd_fd, len(cmdline), buf, flags))

    def kexec_load(self, entry: int, segments: Sequence[Segment], flags: int) -> int:
        k = _lib()
        keep = [k.ffi.from_buffer(s.buf) for s in segments]
        array = k.ffi.new("struct kexec_segment[]", len(segments))
        for item, seg, buf in zip(array, segments, keep, strict=True):
            item.buf = buf
            item.bufsz = len(seg.buf)
            item.mem = k.ffi.cast("const void *", seg.mem)
            item.memsz = seg.memsz
        return int(k.lib.bm_kexec_load(entry, len(segments), array, flags))

    def reboot_kexec(self) -> int:
        return int(_lib().lib.bm_reboot_kexec())

    def mount(self, source: bytes, target: bytes, fstype: bytes, flags: int, data: bytes | None) -> int:
        k = _lib()
        return int(k.lib.bm_mount(source, target, fstype, flags, data if data is not None else k.ffi.NULL))

    def umount2(self, target: bytes, flags: int) -> int:
        return int(_lib().lib.bm_umount2(target, flags))

    def finit_module(self, fd: int, params: bytes, flags: int) -> int:
        return int(_lib().lib.bm_finit_module(fd, params, flags))

    def sync(self) -> None:
        _lib().lib.bm_sync()


# The one swappable boundary (tests assign a fake here).
backend: Backend = CffiBackend()

_EPERM_HINT = (
    "needs root with CAP_SYS_BOOT; also refused when the kernel is locked down (lockdown=integrity/confidentiality, "
    "Secure Boot; kexec_load is refused then too, so bootmenu does not try it) or "
    "/proc/sys/kernel/kexec_load_disabled is 1 (it cannot be reset without a reboot)"
)
_KEXEC_HINTS: dict[int, str] = {
    errno.ENOSYS: "the running kernel has no such syscall: kexec_file_load needs CONFIG_KEXEC_FILE=y, "
    "kexec_load needs CONFIG_KEXEC=y",
    errno.EPERM: _EPERM_HINT,
    errno.ENOEXEC: "the running kernel cannot load this image format (x86_64 takes a 64-bit relocatable bzImage, "
    "arm64 an uncompressed Image); run `bootmenu kexec inspect` on the kernel",
    errno.EKEYREJECTED: "the kernel's signature was rejected: with CONFIG_KEXEC_SIG_FORCE or Secure Boot the image "
    "must be signed by a key the running kernel trusts",
    errno.EBADMSG: "the kernel's signature is malformed or missing while signatures are enforced "
    "(CONFIG_KEXEC_SIG_FORCE or Secure Boot)",
    errno.EBUSY: "another kexec load or reboot is in progress; wait and retry, or unload first",
    errno.ENOMEM: "not enough memory for the kernel and initrds: use a smaller initrd or free memory",
    errno.EINVAL: "an argument was rejected: command line longer than the kernel allows, an empty initrd, "
    "an unsupported flag, or (for exec) no image loaded",
    errno.EBADF: "a file descriptor was not open for reading",
    errno.EFBIG: "a file is too large for the kernel to read",
}
# kexec_load cannot check a signature on what user space hands it, so lockdown refuses it whatever the image: then
# only kexec_file_load (which takes no devicetree) with a signed kernel can boot.
_KEXEC_LOAD_HINTS: dict[int, str] = {
    **_KEXEC_HINTS,
    errno.EPERM: "needs root with CAP_SYS_BOOT; kexec_load is always refused when the kernel is locked down "
    "(lockdown=integrity/confidentiality, Secure Boot): it cannot verify a signature, so a devicetree cannot be "
    "passed then (kexec_file_load reuses the running one); or /proc/sys/kernel/kexec_load_disabled is 1",
}
_REBOOT_HINTS: dict[int, str] = {
    errno.EINVAL: "no kexec image is loaded: load one first (bootmenu kexec load)",
    errno.EPERM: "needs root with CAP_SYS_BOOT (in a container, the container may not reboot the host)",
    errno.EBUSY: "a kexec load is in progress",
}
_MOUNT_HINTS: dict[int, str] = {
    errno.EBUSY: "still in use (open files or a mount below it)",
    errno.EINVAL: "not a mount point, or an invalid option",
    errno.EPERM: "needs root (CAP_SYS_ADMIN)",
    errno.ENOENT: "no such path",
    errno.ENODEV: "this filesystem type is not supported by the running kernel (a missing module?)",
}
_MODULE_HINTS: dict[int, str] = {
    errno.EEXIST: "the module is already loaded",
    errno.ENOEXEC: "not a module for this kernel (wrong architecture or format)",
    errno.EKEYREJECTED: "the module signature was rejected (module.sig_enforce)",
    errno.EPERM: "needs root (CAP_SYS_MODULE), or module loading is disabled",
    errno.ENOENT: "an unknown symbol: load the modules it depends on first",
}


def _fd(fd: int) -> str:
    """`3</boot/vmlinuz>`, as strace -y writes it, so that an error names the file behind the descriptor."""
    if fd < 0:
        return str(fd)
    try:
        return f"{fd}<{os.readlink(f'/proc/self/fd/{fd}')}>"
    except OSError:
        return str(fd)


def _check(rc: int, call: str, hints: dict[int, str]) -> int:
    if rc < 0:
        raise KexecError(call, -rc, hints.get(-rc, ""))
    return rc


def kexec_file_load(kernel_fd: int, initrd_fd: int, cmdline: str, flags_: int) -> None:
    raw = cmdline.encode() + b"\0" if cmdline else b""
    rc = backend.kexec_file_load(kernel_fd, initrd_fd, raw, flags_)
    call = (
        f"kexec_file_load(kernel_fd={_fd(kernel_fd)}, initrd_fd={_fd(initrd_fd)}, cmdline_len={len(raw)}, "
        f"cmdline={cmdline!r}, flags={flags().names(flags_, 'KEXEC_FILE_')})"
    )
    _check(rc, call, _KEXEC_HINTS)


def kexec_load(entry: int, segments: Sequence[Segment], flags_: int) -> None:
    rc = backend.kexec_load(entry, segments, flags_)
    call = f"kexec_load(entry={entry:#x}, nr_segments={len(segments)}, flags={flags_:#x})"
    _check(rc, call, _KEXEC_LOAD_HINTS)


def reboot_kexec() -> None:
    """reboot(LINUX_REBOOT_CMD_KEXEC): does not return on success."""
    rc = backend.reboot_kexec()
    _check(rc, "reboot(LINUX_REBOOT_CMD_KEXEC)", _REBOOT_HINTS)


def mount(source: str, target: str, fstype: str, flags_: int = 0, data: str | None = None) -> None:
    rc = backend.mount(
        source.encode(), target.encode(), fstype.encode(), flags_, None if data is None else data.encode()
    )
    _check(rc, f"mount({source!r}, {target!r}, {fstype!r}, flags={flags_:#x}, data={data!r})", _MOUNT_HINTS)


def umount2(target: str, flags_: int = 0) -> None:
    rc = backend.umount2(target.encode(), flags_)
    _check(rc, f"umount2({target!r}, flags={flags().names(flags_, 'MNT_')})", _MOUNT_HINTS)


def finit_module(fd: int, params: str = "", flags_: int = 0) -> None:
    rc = backend.finit_module(fd, params.encode(), flags_)
    _check(rc, f"finit_module(fd={_fd(fd)}, params={params!r}, flags={flags_:#x})", _MODULE_HINTS)


def sync() -> None:
    backend.sync()
