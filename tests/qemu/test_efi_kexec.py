"""End-to-end (issue 13): x86_64 kexec_load from a payload booted through EFI keeps EFI for the second kernel.

QEMU's -kernel under OVMF boots the payload kernel through its EFI stub; from the payload's shell
`bootmenu kexec load -c` builds the segments in user space with the EFI hand-off (efi_info, SETUP_EFI setup_data, the
runtime map: kexec_core/efi.py) and `bootmenu kexec exec` boots the Debian kernel with a small initrd that reports
/sys/firmware/efi, the runtime map and the EFI variables it can list through efivarfs (GetNextVariableName: a
runtime service call, which works only if the hand-off did). One VM, which also shows the payload's own zstd and lz4
programs at work: the kernel it loads is the Debian bzImage compressed whole with zstd, and a dry run plans the same
kernel compressed with `lz4 -l` (the legacy frame).

With BOOTMENU_EFI_RECORD=1 the run also re-records tests/data/efi_sysfs_ovmf (the unit tests' fake sysfs) from the
payload's /sys before the kexec.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from initramfs import disks, guests
from initramfs.cpio import Compression, CpioEntry, write_cpio
from initramfs.qemu import Disk, VmConfig, modules_in
from tests.qemu.e2e_support import BASE_APPEND, COMMON, KERNEL_CACHE, REPO, VM_TIMEOUT
from tests.qemu.qemu_console import SerialVm
from tests.qemu.test_e2e import MENU_TIMEOUT

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(420)]

OVMF = REPO / ".cache" / "ovmf" / "root" / "usr" / "share" / "qemu" / "OVMF.fd"
CAPTURE = REPO / "tests" / "data" / "efi_sysfs_ovmf"
RECORD = "BOOTMENU_EFI_RECORD"
PROBE, PROBE_END = "BOOTMENU-EFI-PROBE", "BOOTMENU-EFI-PROBE-END"
PROBE_INIT = f"""#!/bin/sh
# The second kernel's /init: what EFI it has, framed for the host, then power off.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox dmesg -n 1
e=/sys/firmware/efi
/bin/busybox insmod /efivarfs.ko
/bin/busybox mount -t efivarfs efivarfs $e/efivars
v="efi=$([ -d $e ] && echo yes || echo no)"
v="$v runtime_map=$(/bin/busybox ls $e/runtime-map 2>/dev/null | /bin/busybox wc -l)"
v="$v efivars=$(/bin/busybox ls $e/efivars 2>/dev/null | /bin/busybox wc -l) fw_vendor=$(/bin/busybox cat $e/fw_vendor)"
v="$v cmdline=$(/bin/busybox cat /proc/cmdline | /bin/busybox tr ' ' ,)"
echo "{PROBE}"
echo "$v"
echo "{PROBE_END} length=${{#v}}"
/bin/busybox poweroff -f
"""
# The files the unit tests read, as the payload shell prints them: one `@@F path hex @@E` line each.
CAPTURED = (
    "fw_vendor runtime config_table systab fw_platform_size runtime-map/*/* "
    "/sys/kernel/boot_params/data /sys/kernel/boot_params/version"
)


def probe_initrd(path: Path) -> Path:
    efivarfs = modules_in(KERNEL_CACHE) / "kernel" / "fs" / "efivarfs" / "efivarfs.ko"
    busybox = guests.find_busybox()
    entries = [
        CpioEntry.directory("dev"),
        CpioEntry.char_device("dev/console", 5, 1),
        CpioEntry.directory("proc"),
        CpioEntry.directory("sys"),
        CpioEntry.file("bin/busybox", source=busybox, perm=0o755),
        CpioEntry.symlink("bin/sh", "busybox"),
        CpioEntry.file("efivarfs.ko", source=efivarfs),
        CpioEntry.file("init", PROBE_INIT.encode(), perm=0o755),
    ]
    raw = path.with_suffix(".cpio")
    with raw.open("wb") as f:
        write_cpio(entries, f)
    path.write_bytes(Compression.GZIP.compress(raw.read_bytes()))
    return path


def record(vm: SerialVm) -> None:
    vm.child.sendline(
        f"cd /sys/firmware/efi && for f in {CAPTURED}; do echo \"@@F $f $(od -An -tx1 -v $f | tr -d ' \\n') @@E\"; "
        "done; cd /; echo CAPTURE''-DONE"
    )
    vm.expect(b"CAPTURE-DONE", timeout=60)
    text = vm.child.before.decode("utf-8", "replace")
    found = re.findall(r"@@F (\S+) ([0-9a-f]*) @@E", text)
    assert found, "nothing captured"
    shutil.rmtree(CAPTURE, ignore_errors=True)
    for name, hexdata in found:
        rel = name.removeprefix("/sys/") if name.startswith("/sys/") else f"firmware/efi/{name}"
        (CAPTURE / rel).parent.mkdir(parents=True, exist_ok=True)
        (CAPTURE / rel).write_bytes(bytes.fromhex(hexdata))
    print(f"\nrecorded {len(found)} files into {CAPTURE}")


def test_kexec_load_under_ovmf_keeps_efi(kernel: Path, payload: Path, tmp_path: Path) -> None:
    if not OVMF.is_file():
        pytest.fail(f"no {OVMF}: run `make kernel` (it unpacks Debian's ovmf)")
    root = tmp_path / "k"
    (root / "boot").mkdir(parents=True)
    (root / ".bootmenu-fs").write_text("label=e2e-efi\nfstype=ext4\n")
    packed = {}
    for name, argv in (("vmlinuz.zst", ["zstd", "-q", "-1", "-c"]), ("vmlinuz.lz4", ["lz4", "-q", "-l", "-c"])):
        with (tmp_path / name).open("wb") as out:
            subprocess.run([*argv, str(kernel)], stdout=out, check=True)
        packed[f"boot/{name}"] = tmp_path / name
    files = {**packed, "boot/probe.img": probe_initrd(tmp_path / "probe.img")}
    disk = disks.disk_from_directory(root, tmp_path / "k.img", files)
    config = VmConfig(
        kernel=kernel,
        initrd=payload,
        append=f"{BASE_APPEND} bootmenu.shell=1",
        disks=(Disk(disk),),
        extra=("-bios", str(OVMF)),
    )
    vm = SerialVm(config, timeout=VM_TIMEOUT, transcript=tmp_path / "console.log")
    try:
        vm.expect(b"rescue shell", timeout=MENU_TIMEOUT)
        if os.environ.get(RECORD):
            record(vm)
        efi_dir = "/sys/firmware/efi"
        vm.child.sendline(f"cat {efi_dir}/fw_vendor; ls {efi_dir}/runtime-map | wc -l; echo FIRST''-DONE")
        vm.expect(b"FIRST-DONE", timeout=30)
        first = re.search(r"(0x[0-9a-f]+)\s+(\d+)\s*$", vm.child.before.decode("utf-8", "replace"))
        assert first is not None, "the payload shows no /sys/firmware/efi: not booted through EFI"
        fw_vendor, regions = first.group(1), int(first.group(2))
        vm.child.sendline(
            "mkdir -p /mnt/k && mount -o ro /dev/vda1 /mnt/k && "
            "bootmenu kexec load --dry-run /mnt/k/boot/vmlinuz.lz4 --append x; echo LZ4-''DONE"
        )
        vm.expect(b"LZ4-DONE", timeout=120)
        dry = vm.child.before.decode("utf-8", "replace")
        assert "decompressed (lz4) in user space" in dry, dry
        assert "by /usr/bin/lz4" in dry, dry
        vm.child.sendline(
            "bootmenu kexec load -c /mnt/k/boot/vmlinuz.zst --initrd /mnt/k/boot/probe.img "
            f"--append '{COMMON} e2e=efi-kexec-load' && echo LOAD-''DONE && bootmenu kexec exec"
        )
        vm.expect(b"LOAD-DONE", timeout=120)
        plan = vm.child.before.decode("utf-8", "replace")
        print(f"\nthe plan the payload printed:\n{plan}")
        assert "by /usr/bin/zstd" in plan
        assert "setup_data (SETUP_EFI + EFI runtime map)" in plan
        assert "EFI hand-off: efi_info (EL64" in plan
        value = vm.framed(PROBE, PROBE_END, timeout=120)
        print(f"the second kernel, {vm.elapsed():.1f} s after QEMU started: {value}")
        got = dict(word.split("=", 1) for word in value.split())
        assert "e2e=efi-kexec-load" in got["cmdline"].split(",")
        assert got["efi"] == "yes"
        assert got["fw_vendor"] == fw_vendor, "the second kernel's fw_vendor differs from the first's"
        assert int(got["runtime_map"]) == regions > 0
        assert int(got["efivars"]) > 0, "efivarfs lists no variables: EFI runtime services do not work"
    finally:
        vm.close()
