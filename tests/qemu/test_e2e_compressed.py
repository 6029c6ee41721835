"""End-to-end (issue 13): a GRUB entry whose kernel is the Debian bzImage gzip'd as a whole boots in QEMU.

The payload decompresses it in user space into a memfd and kexec_file_loads that; the second kernel's /init prints
the command line it got, which proves the decompressed kernel ran with the entry's command line and initrd.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from initramfs import disks
from initramfs.qemu import Disk, VmConfig
from tests.qemu.e2e_support import BASE_APPEND, COMMON, VM_TIMEOUT, second_initrd
from tests.qemu.qemu_console import SerialVm
from tests.qemu.test_e2e import MENU_TIMEOUT, second_kernel_cmdline

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(420)]

GRUB_CFG = f"""\
set default=0
set timeout=30
menuentry 'E2E gzip kernel' {{
    linux /boot/vmlinuz.gz {COMMON} e2e=gzip-kernel
    initrd /boot/second.img
}}
"""


def test_gzip_compressed_kernel_boots(kernel: Path, payload: Path, tmp_path: Path) -> None:
    root = tmp_path / "gz"
    (root / "boot" / "grub").mkdir(parents=True)
    (root / "boot" / "grub" / "grub.cfg").write_text(GRUB_CFG)
    (root / ".bootmenu-fs").write_text("label=e2e-gz\nfstype=ext4\n")
    compressed = tmp_path / "vmlinuz.gz"
    compressed.write_bytes(gzip.compress(kernel.read_bytes(), compresslevel=6, mtime=0))
    files = {"boot/vmlinuz.gz": compressed, "boot/second.img": second_initrd(tmp_path)}
    disk = disks.disk_from_directory(root, tmp_path / "gz.img", files)
    config = VmConfig(kernel=kernel, initrd=payload, append=f"{BASE_APPEND} bootmenu.timeout=2", disks=(Disk(disk),))
    vm = SerialVm(config, timeout=VM_TIMEOUT, transcript=tmp_path / "console.log")
    try:
        cmdline = second_kernel_cmdline(vm, timeout=MENU_TIMEOUT + 60)
        print(f"\nautoboot of the gzip'd kernel reached the second kernel {vm.elapsed():.1f} s after QEMU started")
        assert "e2e=gzip-kernel" in cmdline.split()
    finally:
        vm.close()


def test_forced_kexec_load_boots_the_second_kernel(kernel: Path, payload: Path, tmp_path: Path) -> None:
    """`bootmenu kexec load -c` from the payload's shell: the segments built in user space boot the Debian kernel."""
    root = tmp_path / "k"
    (root / "boot").mkdir(parents=True)
    (root / ".bootmenu-fs").write_text("label=e2e-kl\nfstype=ext4\n")
    files = {"boot/vmlinuz": kernel, "boot/second.img": second_initrd(tmp_path)}
    disk = disks.disk_from_directory(root, tmp_path / "k.img", files)
    config = VmConfig(kernel=kernel, initrd=payload, append=f"{BASE_APPEND} bootmenu.shell=1", disks=(Disk(disk),))
    vm = SerialVm(config, timeout=VM_TIMEOUT, transcript=tmp_path / "console.log")
    try:
        vm.expect(b"rescue shell", timeout=MENU_TIMEOUT)
        vm.child.sendline(
            "mkdir -p /mnt/k && mount -o ro /dev/vda1 /mnt/k && "
            "bootmenu kexec load -c /mnt/k/boot/vmlinuz --initrd /mnt/k/boot/second.img "
            f"--append '{COMMON} e2e=kexec-load' && echo LOAD-''DONE && bootmenu kexec exec"
        )
        vm.expect(b"LOAD-DONE", timeout=120)
        plan = vm.child.before.decode("utf-8", "replace")
        print(f"\nthe plan the payload printed:\n{plan}")
        assert "kexec_load(entry=" in plan
        cmdline = second_kernel_cmdline(vm, timeout=120)
        print(f"kexec_load reached the second kernel {vm.elapsed():.1f} s after QEMU started")
        assert "e2e=kexec-load" in cmdline.split()
    finally:
        vm.close()


def vmlinux_of(bzimage_path: Path, out: Path) -> Path:
    """The ELF vmlinux inside a bzImage: its payload (payload_offset/payload_length), decompressed by kexec_core."""
    from kexec_core.decompress import Source, decompress
    from kexec_core.image import inspect_kernel

    info = inspect_kernel(bzimage_path)
    hdr = info.bzimage
    assert hdr is not None
    assert hdr.payload_offset is not None
    assert hdr.payload_length is not None
    assert hdr.payload_compression is not None
    with bzimage_path.open("rb") as f:
        source = Source(bzimage_path, f, hdr.setup_size + hdr.payload_offset, hdr.payload_length)
        result = decompress(source, hdr.payload_compression)
    out.write_bytes(result.file.read())
    result.close()
    return out


def test_elf_vmlinux_entry_boots_through_kexec_load(kernel: Path, payload: Path, tmp_path: Path) -> None:
    """A GRUB entry with the ELF vmlinux: the daemon picks kexec_load by itself, each PT_LOAD at its p_paddr."""
    root = tmp_path / "elf"
    (root / "boot" / "grub").mkdir(parents=True)
    (root / "boot" / "grub" / "grub.cfg").write_text(
        "set default=0\nset timeout=30\nmenuentry 'E2E ELF vmlinux' {\n"
        f"    linux /boot/vmlinux {COMMON} e2e=elf-vmlinux\n    initrd /boot/second.img\n}}\n"
    )
    (root / ".bootmenu-fs").write_text("label=e2e-elf\nfstype=ext4\n")
    files = {"boot/vmlinux": vmlinux_of(kernel, tmp_path / "vmlinux"), "boot/second.img": second_initrd(tmp_path)}
    disk = disks.disk_from_directory(root, tmp_path / "elf.img", files)
    config = VmConfig(kernel=kernel, initrd=payload, append=f"{BASE_APPEND} bootmenu.timeout=2", disks=(Disk(disk),))
    vm = SerialVm(config, timeout=VM_TIMEOUT, transcript=tmp_path / "console.log")
    try:
        cmdline = second_kernel_cmdline(vm, timeout=MENU_TIMEOUT + 60)
        print(f"\nthe ELF vmlinux entry reached the second kernel {vm.elapsed():.1f} s after QEMU started")
        assert "e2e=elf-vmlinux" in cmdline.split()
    finally:
        vm.close()
