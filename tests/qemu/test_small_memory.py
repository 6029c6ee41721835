"""Issue 15's memory goal, end to end, in a 256 MiB VM: the payload boots to its menu, and Enter kexecs the Debian
kernel with a 20 MiB initrd, whose /init reports the command line it got.

Why it fits: the payload's tree takes 28 MiB of RAM (its kernel modules stay xz-compressed, initramfs/modules.py) and
the menu imports only the urwid modules it uses (bootmenu/urwid_parts.py), which leaves about 105 MiB of free pages
and page cache when Enter is pressed. kexec_file_load would need about 113 MiB (the kernel file, its 64 MiB
init_size and the initrd twice: the kernel reads both files into buffers before copying them into the new kernel's
pages), so the preflight chooses kexec_load by itself, which copies the mapped initrd once (about 92 MiB,
kexec_core/preflight.py memory_needed); the status lines say so. Before the preflight counted only free pages and
page cache, MemAvailable (119 MiB, with reclaimable slab the payload's in-RAM files pin) let kexec_file_load start
and the OOM killer ended the daemon mid-load.

The initrd is the second-stage one, zero-padded to 4 bytes, followed by a cpio member of 20 MiB of pseudo-random
(incompressible) bytes: the kernel unpacks both parts of a concatenated initramfs (an uncompressed member must start
4-byte aligned), so the second kernel really holds the 20 MiB in RAM after the payload read it, loaded it and jumped.
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

MEMORY_MB = 256
PADDING = 20 << 20
TITLE = "E2E small memory, big initrd"


def big_initrd(base: Path) -> Path:
    second = guests.second_stage_initrd(base / "second.img")
    pad = io.BytesIO()
    write_cpio([CpioEntry.file("padding", random.Random(15).randbytes(PADDING))], pad)
    out = base / "big.img"
    first = second.read_bytes()
    out.write_bytes(first + b"\0" * (-len(first) % 4) + pad.getvalue())
    return out


def test_menu_then_kexec_with_a_20_mib_initrd_in_256_mib(kernel: Path, payload: Path, tmp_path: Path) -> None:
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
