"""arm64 end-to-end (issue 13): the real arm64 payload (`bootmenu initramfs build --arch arm64`: Debian arm64 runtime,
cross-compiled kexec_core._kexec) boots on `qemu-system-aarch64 -M virt -cpu cortex-a57` (TCG) with the Debian arm64
kernel, finds a vfat disk whose extlinux.conf entry names the same kernel, an initrd and `FDT /boot/virt.dtb` (the
devicetree QEMU gives this machine, dumped with `-machine dumpdtb=`), shows it in the menu on ttyAMA0, and Enter
boots it through kexec_load. The second kernel's /init prints the command line it got: that it runs at all proves
the trampoline's x0 = dtb hand-off, the segments and the initrd's /chosen properties; its words (the entry's APPEND)
prove /chosen/bootargs, since kexec_load passes no command line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import time
from pathlib import Path

import pytest

from initramfs import arm64
from initramfs.builder import BuildOptions, build
from initramfs.cpio import Compression
from initramfs.qemu import ARM64_APPEND, ARM64_QEMU_BINARY, Disk, VmConfig, kernel_in
from tests.qemu.e2e_support import REPO, payload_inputs
from tests.qemu.qemu_console import SerialVm, read_second_stage_cmdline
from tests.shared import file_lock

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(900)]

SYSROOT = REPO / arm64.DEFAULT_SYSROOT
CACHE = REPO / ".cache" / "arm64-e2e"
TITLE = "E2E arm64 with FDT"
APPEND = "console=ttyAMA0 panic=-1 quiet e2e=arm64-extlinux-fdt"
VM_TIMEOUT = 600.0


def _payload() -> Path:
    """The arm64 payload, rebuilt only when a source file or the sysroot's package set changes."""
    h = hashlib.sha256()
    for path in sorted(payload_inputs()):
        h.update(str(path.relative_to(REPO)).encode() + path.read_bytes())
    h.update("\n".join(sorted(p.name for p in (SYSROOT / "usr/lib/aarch64-linux-gnu").iterdir())).encode())
    output = CACHE / f"payload-arm64-{h.hexdigest()[:16]}.img"
    with file_lock(CACHE / "payload-arm64.lock"):
        if not output.exists():
            for old in CACHE.glob("payload-arm64-*.img"):
                old.unlink()
            report = build(
                BuildOptions(
                    output=output, kernel_modules=SYSROOT, compression=Compression.GZIP, arch="arm64", sysroot=SYSROOT
                )
            )
            print(f"\narm64 payload built in {report.seconds:.1f} s:\n{report.format()}")
    return output


@pytest.fixture(scope="module")
def arm64_kernel() -> Path:
    if shutil.which(ARM64_QEMU_BINARY) is None:
        pytest.fail(f"{ARM64_QEMU_BINARY} missing: `make setup` installs qemu-system-arm")
    if not (SYSROOT / ".complete").exists():
        pytest.fail(f"{SYSROOT} missing: run `make arm64-payload`")
    CACHE.mkdir(parents=True, exist_ok=True)
    return kernel_in(SYSROOT)


def test_menu_boots_the_extlinux_fdt_entry_through_kexec_load(arm64_kernel: Path, tmp_path: Path) -> None:
    payload = _payload()
    print(f"\narm64 payload: {payload.stat().st_size / (1 << 20):.2f} MiB gzip")
    config = VmConfig(
        kernel=arm64_kernel,
        initrd=payload,
        append=f"{ARM64_APPEND} quiet bootmenu.timeout=off",
        arch="arm64",
        hotplug_ports=0,
    )
    image = arm64.extlinux_disk(tmp_path, config, append=APPEND, title=TITLE, sysroot=SYSROOT)
    config = dataclasses.replace(config, disks=(Disk(image),))
    with SerialVm(config, timeout=VM_TIMEOUT, transcript=tmp_path / "console.log") as vm:
        vm.wait_screen(TITLE, timeout=VM_TIMEOUT)
        to_menu = vm.elapsed()
        vm.settle(quiet=1.0)
        vm.send("enter")
        entered = time.monotonic()
        cmdline = read_second_stage_cmdline(vm.child, timeout=VM_TIMEOUT)
        to_second = time.monotonic() - entered
        print(f"arm64 TCG: QEMU start to menu {to_menu:.1f} s, Enter to the second kernel's /init {to_second:.1f} s")
    words = cmdline.split()
    assert "e2e=arm64-extlinux-fdt" in words
    assert set(APPEND.split()) <= set(words)
