"""prepare / load / execute / unload through the fake syscall backend, and the safety guard with its real checks."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from kexec_core import boot, guard, syscalls
from kexec_core.arch import Arch
from kexec_core.errors import ExecRefused, KexecCoreError, KexecError, PreflightError
from tests.kexec_core.conftest import FakeBackend
from tests.kexec_core.kexec_craft import arm64_image, bzimage, elf64, gz, newc, pe, write


@pytest.fixture
def kernel(tmp_path: Path) -> Path:
    return write(tmp_path / "vmlinuz", bzimage())


@pytest.fixture
def meminfo(tmp_path: Path) -> Path:
    return write(tmp_path / "meminfo", b"MemTotal:  8000000 kB\nMemAvailable:  4000000 kB\n")


def plan_for(kernel: Path, initrds: list[Path], cmdline: str, meminfo: Path) -> boot.BootPlan:
    return boot.prepare(kernel, initrds, cmdline, machine=Arch.X86_64, meminfo=meminfo)


# --- preflight ---------------------------------------------------------------------------------------------------


def test_prepare_real_kernel_describes_plan(kernel_image: Path, tmp_path: Path) -> None:
    rd = write(tmp_path / "initrd.img", gz(newc("init", b"#!/bin/sh\n")))
    plan = boot.prepare(kernel_image, [rd], "console=ttyS0 quiet", machine=Arch.X86_64)
    lines = plan.describe()
    assert any(str(kernel_image) in line and "bzImage" in line and "x86_64" in line for line in lines)
    assert any(str(rd) in line and f"{rd.stat().st_size} bytes" in line for line in lines)
    assert any("console=ttyS0 quiet" in line for line in lines)
    assert any("kexec_file_load" in line for line in lines)


@pytest.mark.parametrize(
    ("data", "machine", "message"),
    [
        (arm64_image(), Arch.X86_64, "a kernel for aarch64, but this machine is x86_64"),
        (bzimage(), Arch.ARM64, "a kernel for x86_64, but this machine is aarch64"),
        (gz(arm64_image()), Arch.X86_64, "a kernel for aarch64, but this machine is x86_64"),
        (pe([(".linux", arm64_image())], machine=0xAA64), Arch.X86_64, "a kernel for aarch64"),
        (pe([(".linux", bzimage(size=4096, relocatable=0))]), Arch.X86_64, "not relocatable"),
        (pe([(".linux", b"garbage" * 100)]), Arch.X86_64, "UKI .linux section: not a kernel image"),
        (pe([(".text", b"x" * 64)]), Arch.X86_64, "EFI application"),
        (pe([(".text", b"x" * 64)], machine=0xAA64, zboot="gzip"), Arch.ARM64, "EFI zboot"),
        (bzimage(relocatable=0), Arch.X86_64, "not relocatable"),
        (bzimage(xloadflags=0x01), Arch.X86_64, "XLF_CAN_BE_LOADED_ABOVE_4G"),
        (bzimage(protocol=0x020A, xloadflags=0x0), Arch.X86, "not supported on i386"),
        (bzimage(loadflags=0), Arch.X86_64, "zImage"),
        (arm64_image(flags=0b0011), Arch.ARM64, "big-endian"),
    ],
)
def test_preflight_refuses(tmp_path: Path, meminfo: Path, data: bytes, machine: Arch, message: str) -> None:
    path = write(tmp_path / "kernel", data)
    with pytest.raises(PreflightError) as err:
        boot.prepare(path, [], "", machine=machine, meminfo=meminfo)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


@pytest.mark.parametrize(("data", "message"), [(elf64(), "needs kexec_load"), (gz(elf64()), "decompresses to ELF")])
def test_elf_kernels_are_refused_by_kexec_file_load(tmp_path: Path, meminfo: Path, data: bytes, message: str) -> None:
    path = write(tmp_path / "vmlinux", data)
    with pytest.raises(PreflightError, match=message):
        boot.prepare(path, [], "", machine=Arch.X86_64, meminfo=meminfo, method=boot.LoadMethod.KEXEC_FILE_LOAD)


def test_preflight_accepts_arm64_image(tmp_path: Path, meminfo: Path) -> None:
    plan = boot.prepare(write(tmp_path / "Image", arm64_image()), [], "", machine=Arch.ARM64, meminfo=meminfo)
    assert plan.kernel.arch is Arch.ARM64


def test_cmdline_limit(tmp_path: Path, meminfo: Path) -> None:
    kernel = write(tmp_path / "vmlinuz", bzimage(cmdline_size=16))
    plan_for(kernel, [], "x" * 15, meminfo)  # 15 bytes + NUL fits in 16
    with pytest.raises(PreflightError, match="command line is 16 bytes, this kernel takes at most 15"):
        plan_for(kernel, [], "x" * 16, meminfo)
    with pytest.raises(PreflightError, match="NUL"):
        plan_for(kernel, [], "a\0b", meminfo)


def test_memory_check(tmp_path: Path, kernel: Path) -> None:
    small = write(tmp_path / "meminfo-small", b"MemAvailable:  20000 kB\n")  # 19 MiB; init_size is 32 MiB
    with pytest.raises(PreflightError, match=r"only 19 MiB is available \(MemFree and page cache"):
        plan_for(kernel, [], "", small)
    unknown = write(tmp_path / "meminfo-old", b"MemFree: 10 kB\n")  # no MemAvailable: no check
    plan_for(kernel, [], "", unknown)


def test_devicetree_is_refused_on_x86(kernel: Path, meminfo: Path, tmp_path: Path) -> None:
    dtb = write(tmp_path / "board.dtb", b"\xd0\x0d\xfe\xed")
    with pytest.raises(PreflightError, match="passed to arm64 kernels only"):
        boot.prepare(kernel, [], "", devicetree=dtb, machine=Arch.X86_64, meminfo=meminfo)


def test_bad_initrd_fails_prepare(kernel: Path, meminfo: Path, tmp_path: Path) -> None:
    with pytest.raises(PreflightError, match=r"missing\.img: no such initrd"):
        plan_for(kernel, [tmp_path / "missing.img"], "", meminfo)


def test_unknown_initrd_is_a_warning(kernel: Path, meminfo: Path, tmp_path: Path) -> None:
    plan = plan_for(kernel, [write(tmp_path / "odd.img", b"not cpio" * 8)], "", meminfo)
    assert any("odd.img" in line and "warning" in line for line in plan.describe())


# --- load ----------------------------------------------------------------------------------------------------------


def test_load_one_initrd(fake_backend: FakeBackend, kernel: Path, meminfo: Path, tmp_path: Path) -> None:
    rd = write(tmp_path / "initrd.img", newc("init", b"hello"))
    boot.load(plan_for(kernel, [rd], "root=/dev/vda1 quiet", meminfo), force=True)
    assert fake_backend.names() == ["kexec_file_load"]
    call = fake_backend.calls[0].args
    assert call["kernel_path"] == str(kernel)
    assert call["kernel_data"] == kernel.read_bytes()
    assert call["initrd_path"] == str(rd)
    assert call["cmdline"] == b"root=/dev/vda1 quiet\0"
    assert call["flags"] == 0


def test_load_without_initrd(fake_backend: FakeBackend, kernel: Path, meminfo: Path) -> None:
    boot.load(plan_for(kernel, [], "", meminfo), force=True)
    call = fake_backend.calls[0].args
    assert call["initrd_fd"] == -1
    assert call["flags"] == syscalls.flags().KEXEC_FILE_NO_INITRAMFS
    assert call["cmdline"] == b""


def test_load_concatenates_initrds_in_order(
    fake_backend: FakeBackend, kernel: Path, meminfo: Path, tmp_path: Path
) -> None:
    microcode = write(tmp_path / "intel-ucode.img", newc("kernel/x86/microcode/GenuineIntel.bin", b"ucode"))
    main = write(tmp_path / "initrd.img", gz(newc("init", b"#!/bin/sh\n")))
    odd = write(tmp_path / "extra.img", newc("x", b"1") + b"\0\0\0")  # length not a multiple of 4
    boot.load(plan_for(kernel, [microcode, odd, main], "quiet", meminfo), force=True, tmpdir=tmp_path)
    data = fake_backend.calls[0].args["initrd_data"]
    first, second = microcode.read_bytes(), odd.read_bytes()
    pad = -len(second) % 4
    assert pad  # the case under test
    assert data == first + second + b"\0" * pad + main.read_bytes() + b"\0" * (-len(main.read_bytes()) % 4)
    # The combined file was unlinked: nothing left in the directory.
    assert not list(tmp_path.glob("bootmenu-initrd-*"))
    assert "(deleted)" in fake_backend.calls[0].args["initrd_path"]


def test_load_uki_sections(fake_backend: FakeBackend, meminfo: Path, tmp_path: Path) -> None:
    linux = bzimage(size=8192)
    embedded_initrd = newc("init", b"from the UKI")
    uki = write(
        tmp_path / "linux.efi",
        pe([(".cmdline", b"root=PARTUUID=1234 ro\0"), (".linux", linux), (".initrd", embedded_initrd)]),
    )
    extra = write(tmp_path / "extra.img", newc("extra", b"1"))
    plan = plan_for(uki, [extra], "", meminfo)
    assert plan.cmdline == "root=PARTUUID=1234 ro"  # the UKI's own command line when none is given
    assert any(".initrd section" in line for line in plan.describe())
    boot.load(plan, force=True, tmpdir=tmp_path)
    call = fake_backend.calls[0].args
    assert call["kernel_data"] == linux  # exactly the .linux section, through a memfd
    assert call["kernel_path"].startswith("/memfd:bootmenu-.linux")
    assert call["initrd_data"] == embedded_initrd + extra.read_bytes()
    assert call["cmdline"] == b"root=PARTUUID=1234 ro\0"
    # A command line given by the user wins, as systemd-stub does without Secure Boot.
    assert plan_for(uki, [], "quiet", meminfo).cmdline == "quiet"


def test_load_dry_run_calls_nothing(fake_backend: FakeBackend, kernel: Path, meminfo: Path) -> None:
    boot.load(plan_for(kernel, [], "", meminfo), dry_run=True)
    assert fake_backend.calls == []


def test_load_failure_quotes_call_errno_and_hint(fake_backend: FakeBackend, kernel: Path, meminfo: Path) -> None:
    fake_backend.fail["kexec_file_load"] = errno.EPERM
    with pytest.raises(KexecError) as err:
        boot.load(plan_for(kernel, [], "quiet", meminfo), force=True)
    message = str(err.value)
    assert message.startswith("kexec_file_load(kernel_fd=")
    assert str(kernel) in message  # the fd is shown with its file, as strace -y does
    assert "cmdline='quiet'" in message
    assert "KEXEC_FILE_NO_INITRAMFS" in message
    assert "EPERM" in message
    assert "lockdown" in message
    assert "kexec_load_disabled" in message
    assert err.value.errno == errno.EPERM


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (errno.ENOSYS, "CONFIG_KEXEC_FILE"),
        (errno.ENOEXEC, "cannot load this image format"),
        (errno.EKEYREJECTED, "signature was rejected"),
        (errno.EBADMSG, "signature"),
        (errno.EBUSY, "in progress"),
        (errno.ENOMEM, "not enough memory"),
        (errno.EINVAL, "command line longer"),
    ],
)
def test_errno_hints(fake_backend: FakeBackend, kernel: Path, meminfo: Path, code: int, hint: str) -> None:
    fake_backend.fail["kexec_file_load"] = code
    fake_backend.fail["kexec_load"] = code  # the fallback after ENOSYS fails the same way
    with pytest.raises(KexecError, match=hint) as err:
        boot.load(plan_for(kernel, [], "", meminfo), force=True)
    assert errno.errorcode[code] in str(err.value)


# --- the guard -----------------------------------------------------------------------------------------------------


def test_guard_refuses_on_this_host_before_any_syscall(fake_backend: FakeBackend, kernel: Path, meminfo: Path) -> None:
    # The real guard: this development machine has no payload marker on an initramfs root.
    assert not guard.environment().is_boot_environment
    with pytest.raises(ExecRefused, match="refusing to execute"):
        boot.execute(mounts=["/mnt/boot"])
    with pytest.raises(ExecRefused, match="refusing to load"):
        boot.load(plan_for(kernel, [], "", meminfo))
    with pytest.raises(ExecRefused, match="refusing to unload"):
        boot.unload()
    assert fake_backend.calls == []


def test_execute_dry_run_calls_nothing(fake_backend: FakeBackend) -> None:
    boot.execute(mounts=["/mnt/a"], dry_run=True)
    assert fake_backend.calls == []
    assert boot.execute_steps(["/mnt/a", "/mnt/a/b"]) == [
        "sync()",
        "umount2('/mnt/a/b') (lazily if busy)",
        "umount2('/mnt/a') (lazily if busy)",
        "reboot(LINUX_REBOOT_CMD_KEXEC)",
    ]


def test_guard_accepts_marker_on_tmpfs_root(tmp_path: Path) -> None:
    marker = write(tmp_path / "bootmenu-payload", b"")
    on_tmpfs = guard.environment(marker=marker, root="/dev/shm")
    assert on_tmpfs.root_fstype == "tmpfs"
    assert on_tmpfs.is_boot_environment
    guard.require_boot_environment("boot", marker=marker, root="/dev/shm")
    # The marker on a disk root is not enough, and a tmpfs root without marker is not either.
    with pytest.raises(ExecRefused, match=r"marker .* present, root filesystem other"):
        guard.require_boot_environment("boot", marker=marker, root=str(Path(__file__).parent))
    with pytest.raises(ExecRefused, match="absent"):
        guard.require_boot_environment("boot", marker=tmp_path / "none", root="/dev/shm")


@pytest.fixture
def sysfs_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for /sys/kernel/kexec_loaded saying an image is loaded."""
    path = write(tmp_path / "kexec_loaded", b"1\n")
    monkeypatch.setattr(boot, "KEXEC_LOADED", path)
    return path


def test_execute_refuses_when_nothing_loaded(fake_backend: FakeBackend, sysfs_loaded: Path) -> None:
    sysfs_loaded.write_text("0\n")
    with pytest.raises(ExecRefused, match="no kernel is loaded"):
        boot.execute(mounts=["/mnt/a"], force=True)
    assert fake_backend.calls == []  # nothing unmounted for nothing


def test_execute_forced_order_and_failure(fake_backend: FakeBackend, sysfs_loaded: Path) -> None:
    fake_backend.fail["reboot_kexec"] = errno.EINVAL
    with pytest.raises(KexecError, match=r"reboot\(LINUX_REBOOT_CMD_KEXEC\) failed: EINVAL .*no kexec image is loaded"):
        boot.execute(mounts=["/mnt/a", "/mnt/a/b"], force=True)
    assert fake_backend.names() == ["sync", "umount2", "umount2", "reboot_kexec"]
    assert [c.args["target"] for c in fake_backend.calls[1:3]] == [b"/mnt/a/b", b"/mnt/a"]


def test_execute_busy_mount_is_detached(fake_backend: FakeBackend, sysfs_loaded: Path) -> None:
    fake_backend.fail["umount2"] = errno.EBUSY
    fake_backend.fail["reboot_kexec"] = errno.EPERM
    with pytest.raises(KexecError, match="CAP_SYS_BOOT"):
        boot.execute(mounts=["/mnt/busy"], force=True)
    umounts = [c.args["flags"] for c in fake_backend.calls if c.name == "umount2"]
    assert umounts == [0, syscalls.flags().MNT_DETACH]
    assert fake_backend.names()[-1] == "reboot_kexec"  # a busy mount does not stop the boot


def test_unload_forced(fake_backend: FakeBackend) -> None:
    boot.unload(force=True)
    call = fake_backend.calls[0]
    assert call.name == "kexec_file_load"
    assert call.args["flags"] == syscalls.flags().KEXEC_FILE_UNLOAD
    assert call.args["kernel_fd"] == -1


def test_loaded_reads_sysfs(tmp_path: Path) -> None:
    assert boot.loaded(write(tmp_path / "kexec_loaded", b"1\n"))
    assert not boot.loaded(write(tmp_path / "kexec_loaded0", b"0\n"))
    assert not boot.loaded(tmp_path / "absent")


def test_every_error_is_a_core_error() -> None:
    for cls in (PreflightError, KexecError, ExecRefused):
        assert issubclass(cls, KexecCoreError)
