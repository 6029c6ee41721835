"""What the end-to-end suite and `make bench` share: the payload (built once, cached by input hash) and the test disks.

The disks boot the real Debian kernel with an initrd that prints its command line and powers off, so a test knows
exactly which entry - and which command line - the menu kexec'd.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from initramfs import disks, guests, uki
from initramfs.cpio import Compression
from tests.shared import file_lock

REPO = Path(__file__).resolve().parents[2]
KERNEL_CACHE = REPO / ".cache" / "kernel" / "root"
CACHE = REPO / ".cache" / "e2e"
PAYLOAD_SOURCES = ("bootmenu", "discovery", "kexec_core", "initramfs")
BASE_APPEND = "console=ttyS0,115200 panic=-1 quiet"
# Every VM run ends within this, whatever happens (the watchdog in initramfs.qemu.Vm kills QEMU).
VM_TIMEOUT = 240.0
COMMON = "console=ttyS0,115200 panic=-1 quiet"

GRUB_CFG = f"""\
set default=0
set timeout=30
menuentry 'E2E GRUB default' --id e2e-default {{
    linux /boot/vmlinuz {COMMON} e2e=grub-default
    initrd /boot/second.img
}}
submenu 'Advanced options for E2E GRUB' {{
    menuentry 'E2E GRUB recovery' --id e2e-recovery {{
        linux /boot/vmlinuz {COMMON} e2e=grub-recovery
        initrd /boot/second.img
    }}
}}
"""
BLS_ENTRIES = {
    "e2e-bls.conf": f"title E2E BLS Linux\nversion 6.1\nlinux /vmlinuz\ninitrd /second.img\noptions {COMMON} e2e=bls\n",
    "e2e-garbage.conf": f"title E2E garbage kernel\nversion 0.1\nlinux /garbage\noptions {COMMON} e2e=garbage\n",
}
# A Type #2 entry on the ESP: a unified kernel image with the kernel, the second-stage initrd and its command line.
UKI_OSREL = 'NAME="E2E UKI"\nPRETTY_NAME="E2E UKI"\n'
UKI_CMDLINE = f"{COMMON} e2e=uki"
HOTPLUG_CFG = f"""\
set default=0
set timeout=30
menuentry 'E2E hot-added disk' {{
    linux /boot/vmlinuz {COMMON} e2e=hotplug
    initrd /boot/second.img
}}
"""


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(str(path.relative_to(REPO)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def payload_inputs() -> list[Path]:
    files: list[Path] = []
    for package in PAYLOAD_SOURCES:
        for path in (REPO / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".so", ".o", ".pyc"}:
                files.append(path)
    return files


def build_payload(modules: Path, compression: Compression = Compression.GZIP) -> Path:
    """The payload initramfs, rebuilt only when a source file, the kernel or the compression changes.

    The tests use gzip: quick to build and to unpack under TCG. Older builds are removed. Safe to call from several
    processes at once (pytest-xdist workers): one builds under a lock, the others wait for it and reuse the file.
    """
    from initramfs.builder import BuildOptions, build

    key = _digest(payload_inputs())
    stem = f"payload-{modules.name}-{compression}"
    output = CACHE / f"{stem}-{key}.img"
    with file_lock(CACHE / f"{stem}.lock"):
        if not output.exists():
            for old in CACHE.glob(f"{stem}-*.img"):
                old.unlink()
            started = time.monotonic()
            report = build(BuildOptions(output=output, kernel_modules=modules, compression=compression))
            print(f"\npayload built in {time.monotonic() - started:.1f} s: {report.compressed / (1 << 20):.2f} MiB")
    return output


@dataclass(frozen=True)
class E2eDisks:
    grub: Path
    bls: Path
    hotplug: Path


def make_test_disks(base: Path, kernel: Path, second_initrd: Path) -> E2eDisks:
    """Three disks: GRUB with a submenu (ext4), BLS with a garbage-kernel entry and a UKI (vfat ESP), one for hotplug
    (ext4)."""
    grub = base / "grub"
    (grub / "boot" / "grub").mkdir(parents=True)
    (grub / "boot" / "grub" / "grub.cfg").write_text(GRUB_CFG)
    (grub / ".bootmenu-fs").write_text("label=e2e-grub\nfstype=ext4\n")
    bls = base / "bls"
    (bls / "loader" / "entries").mkdir(parents=True)
    for name, text in BLS_ENTRIES.items():
        (bls / "loader" / "entries" / name).write_text(text)
    (bls / "garbage").write_bytes(b"this is not a kernel\n" * 4096)
    (bls / ".bootmenu-fs").write_text("label=E2EBLS\nfstype=vfat\n")
    hot = base / "hot"
    (hot / "boot" / "grub").mkdir(parents=True)
    (hot / "boot" / "grub" / "grub.cfg").write_text(HOTPLUG_CFG)
    (hot / ".bootmenu-fs").write_text("label=e2e-hot\nfstype=ext4\n")
    kernel_files = {"boot/vmlinuz": kernel, "boot/second.img": second_initrd}
    image = uki.build_uki(
        base / "e2e-uki.efi",
        linux=kernel,
        initrd=second_initrd,
        osrel=UKI_OSREL,
        cmdline=UKI_CMDLINE,
        stub_file=uki.stub(REPO / uki.STUB_CACHE),
    )
    esp_files = {"vmlinuz": kernel, "second.img": second_initrd, "EFI/Linux/e2e-uki.efi": image}
    return E2eDisks(
        grub=disks.disk_from_directory(grub, base / "grub.img", kernel_files),
        bls=disks.disk_from_directory(bls, base / "bls.img", esp_files),
        hotplug=disks.disk_from_directory(hot, base / "hot.img", kernel_files),
    )


def second_initrd(base: Path) -> Path:
    return guests.second_stage_initrd(base / "second.img")
