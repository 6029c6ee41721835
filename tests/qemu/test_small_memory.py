"""Issue 15's memory goal, end to end, at the smallest VM where it works today: with 320 MiB of RAM the payload boots
to its menu, and Enter kexecs the Debian kernel with a 20 MiB initrd, whose /init reports the command line it got.

The goal is 256 MiB, not met: there the payload leaves 93 MiB available (its 47 MiB tree lives in RAM, the daemon and
the menu take 50 MiB), and kexec_core's preflight refuses the boot with a clear status line, since the load needs
about 111 MiB (the kernel's 64 MiB init_size, 8 MiB of image, the 20 MiB initrd twice while kexec_file_load copies
it).

The initrd is the second-stage one followed by a cpio member of 20 MiB of pseudo-random (incompressible) bytes:
the kernel unpacks both parts of a concatenated initramfs, so the second kernel really holds the 20 MiB in RAM
after the payload read it, loaded it and jumped.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from initramfs import disks, guests
from initramfs.cpio import CpioEntry, write_cpio
from initramfs.qemu import Disk, VmConfig
from tests.qemu.e2e_support import BASE_APPEND, COMMON, VM_TIMEOUT
from tests.qemu.qemu_console import SerialVm, read_second_stage_cmdline

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(420)]

MEMORY_MB = 320  # the goal is 256: see the module docstring
PADDING = 20 << 20
TITLE = "E2E small memory, big initrd"


def big_initrd(base: Path) -> Path:
    second = guests.second_stage_initrd(base / "second.img")
    pad = io.BytesIO()
    write_cpio([CpioEntry.file("padding", random.Random(15).randbytes(PADDING))], pad)
    out = base / "big.img"
    out.write_bytes(second.read_bytes() + pad.getvalue())
    return out


def test_menu_then_kexec_with_a_20_mib_initrd_in_320_mib(kernel: Path, payload: Path, tmp_path: Path) -> None:
    initrd = big_initrd(tmp_path)
    assert initrd.stat().st_size > PADDING
    tree = tmp_path / "small"
    (tree / "boot" / "grub").mkdir(parents=True)
    (tree / "boot" / "grub" / "grub.cfg").write_text(
        f"set timeout=30\nmenuentry '{TITLE}' {{\n    linux /boot/vmlinuz {COMMON} e2e=small-memory\n"
        "    initrd /boot/big.img\n}\n"
    )
    (tree / ".bootmenu-fs").write_text("label=e2e-small\nfstype=ext4\n")
    image = disks.disk_from_directory(tree, tmp_path / "small.img", {"boot/vmlinuz": kernel, "boot/big.img": initrd})
    config = VmConfig(
        kernel=kernel,
        initrd=payload,
        append=f"{BASE_APPEND} bootmenu.timeout=off",
        disks=(Disk(image),),
        memory_mb=MEMORY_MB,
    )
    with SerialVm(config, timeout=VM_TIMEOUT, transcript=tmp_path / "console.log") as vm:
        vm.wait_screen(TITLE, timeout=180)
        vm.settle()
        vm.send("enter")
        cmdline = read_second_stage_cmdline(vm.child, timeout=180)
    assert "e2e=small-memory" in cmdline.split()
