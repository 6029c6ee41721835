"""arm64 end-to-end (issue 13): on `qemu-system-aarch64 -M virt -cpu cortex-a57` (TCG) the Debian arm64 kernel boots an
initramfs of Debian arm64 packages (busybox-static, python3.11-minimal and its libraries, unpacked by
tools/fetch-debs-arm64) plus bootmenu's discovery and kexec_core. There tests/qemu/arm64_guest.py reads an extlinux.conf
whose entry names the same kernel, an initrd and `FDT /boot/virt.dtb` (the devicetree QEMU gives this machine, dumped
with `-M virt,dumpdtb=`), builds the kexec_load segments, loads them and jumps. The second kernel's /init prints the
command line it got: that it runs at all proves the trampoline's x0 = dtb hand-off, the segments and the initrd's
/chosen properties; its words (the entry's APPEND) prove /chosen/bootargs, since kexec_load passes no command line.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pexpect
import pytest

from initramfs import guests
from initramfs.cpio import Compression, CpioEntry, write_cpio
from tests.qemu.qemu_console import read_framed, read_second_stage_cmdline

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
USERLAND = REPO / ".cache" / "arm64-userland" / "root"
ARM64_KERNEL = REPO / ".cache" / "kernel-arm64" / "root"
QEMU = "qemu-system-aarch64"
MACHINE = ["-M", "virt", "-cpu", "cortex-a57", "-accel", "tcg", "-m", "1024", "-smp", "1"]
# What the package trees hold that the guest does not need (documentation, locales, charset tables, Python's tests).
SKIP = ("usr/share", "usr/lib/aarch64-linux-gnu/gconv", "usr/lib/python3.11/test", "usr/lib/python3.11/idlelib")
APPEND = "console=ttyAMA0 panic=-1 quiet e2e=arm64-extlinux-fdt"
EXTLINUX = f"""\
DEFAULT arm64
TIMEOUT 10
LABEL arm64
  MENU LABEL E2E arm64 with FDT
  KERNEL /boot/Image
  INITRD /boot/second.img
  FDT /boot/virt.dtb
  APPEND {APPEND}
"""
VM_TIMEOUT = 480.0

GUEST_INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
echo ARM64-GUEST-INIT
exec /usr/bin/python3.11 -S -E /lib/bootmenu/arm64_guest.py
"""


def _tree(root: Path, skip: tuple[str, ...]) -> list[CpioEntry]:
    entries = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(skip) or rel == ".complete" or "__pycache__" in rel:
            continue
        if path.is_symlink():
            entries.append(CpioEntry.symlink(rel, str(path.readlink())))
        elif path.is_dir():
            entries.append(CpioEntry.directory(rel))
        elif path.is_file():
            entries.append(CpioEntry.file(rel, source=path, perm=path.stat().st_mode & 0o777))
    return entries


def _bootmenu() -> list[CpioEntry]:
    """discovery's and kexec_core's Python files (no compiled module: the guest has its own syscall backend),
    pyelftools (which kexec_core reads ELF kernels with) and the guest script."""
    entries = [
        CpioEntry.file(f"lib/bootmenu/{p.relative_to(REPO).as_posix()}", source=p)
        for package in ("discovery", "kexec_core")
        for p in sorted((REPO / package).rglob("*.py"))
    ]
    entries.append(CpioEntry.file("lib/bootmenu/arm64_guest.py", source=Path(__file__).with_name("arm64_guest.py")))
    elftools = Path(__import__("elftools").__file__ or "").parent
    for p in sorted(elftools.rglob("*.py")):
        entries.append(CpioEntry.file(f"lib/bootmenu/elftools/{p.relative_to(elftools).as_posix()}", source=p))
    return entries


@pytest.fixture(scope="module")
def arm64_inputs() -> tuple[Path, Path]:
    if shutil.which(QEMU) is None:
        pytest.fail(f"{QEMU} missing: `make setup` installs qemu-system-arm")
    for root in (USERLAND, ARM64_KERNEL):
        if not (root / ".complete").exists():
            pytest.fail(f"{root} missing: run `make kernel`")
    (image,) = (ARM64_KERNEL / "boot").glob("vmlinuz-*")
    return image, USERLAND / "bin" / "busybox"


def test_kexec_load_with_the_entry_devicetree_boots_the_second_kernel(
    arm64_inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    image, busybox = arm64_inputs
    dtb = tmp_path / "virt.dtb"
    subprocess.run(
        [QEMU, *MACHINE[:1], f"virt,dumpdtb={dtb}", *MACHINE[2:], "-nographic", "-nodefaults"],
        check=True,
        capture_output=True,
    )
    second = guests.second_stage_initrd(tmp_path / "second.img", busybox=busybox)
    entries = [
        *_tree(USERLAND, SKIP),
        *_bootmenu(),
        CpioEntry.file("init", GUEST_INIT.encode(), perm=0o755),
        CpioEntry.file("etc/bootmenu-payload", b""),
        CpioEntry.file("e2e/boot/extlinux/extlinux.conf", EXTLINUX.encode()),
        CpioEntry.file("e2e/boot/Image", source=image),
        CpioEntry.file("e2e/boot/second.img", source=second),
        CpioEntry.file("e2e/boot/virt.dtb", source=dtb),
        CpioEntry.char_device("dev/console", 5, 1),
        CpioEntry.directory("proc"),
        CpioEntry.directory("sys"),
        CpioEntry.directory("tmp"),
        CpioEntry.directory("run"),
    ]
    raw = tmp_path / "guest.cpio"
    with raw.open("wb") as f:
        write_cpio(entries, f)
    initrd = tmp_path / "guest.img"
    initrd.write_bytes(Compression.GZIP.compress(raw.read_bytes()))
    raw.unlink()
    print(f"\narm64 guest initramfs: {initrd.stat().st_size / (1 << 20):.1f} MiB gzip")
    append = "console=ttyAMA0 panic=-1 quiet"
    argv = [*MACHINE, "-nographic", "-no-reboot", "-nodefaults", "-serial", "mon:stdio"]
    argv += ["-kernel", str(image), "-initrd", str(initrd), "-append", append]
    transcript = tmp_path / "console.log"
    started = time.monotonic()
    child = pexpect.spawn(QEMU, argv, timeout=VM_TIMEOUT, logfile=transcript.open("wb"))
    try:
        child.expect(b"ARM64-GUEST-INIT", timeout=VM_TIMEOUT)
        to_init = time.monotonic() - started
        entry_cmdline = read_framed(child, "ARM64-GUEST-CMDLINE=", "ARM64-GUEST-CMDLINE-END", timeout=VM_TIMEOUT)
        assert APPEND in entry_cmdline
        index = child.expect([rb"ARM64-GUEST-LOADED", rb"ARM64-GUEST-ERROR ([^\r\n]*)"], timeout=VM_TIMEOUT)
        plan = child.before.decode("utf-8", "replace")
        print(plan)
        if index == 1:
            pytest.fail(f"the guest could not load: {child.match.group(1).decode('utf-8', 'replace')}")
        loaded = time.monotonic() - started
        assert "load:    kexec_load(entry=" in plan
        assert "from /e2e/boot/virt.dtb (/chosen rewritten)" in plan
        cmdline = read_second_stage_cmdline(child, timeout=VM_TIMEOUT)
        done = time.monotonic() - started
        print(
            f"first /init {to_init:.1f} s, loaded {loaded:.1f} s, second kernel's /init {done:.1f} s after QEMU started"
        )
        # The entry's command line exactly (discovery's, BOOT_IMAGE and all), not the first kernel's.
        assert cmdline.split() == entry_cmdline.split()
        assert "e2e=arm64-extlinux-fdt" in cmdline.split()
    finally:
        child.close(force=True)
        assert not child.isalive()
