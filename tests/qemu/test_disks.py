"""Sample disks made without root: the partition table, filesystem identity and files a guest would see.

Checked with the tools a user would use on the image (sfdisk, blkid, debugfs, mtools), no QEMU needed.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from initramfs import disks

ALIGN = disks.ALIGN


def _tool(*argv: str) -> str:
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1", LC_ALL="C.UTF-8")
    return subprocess.run(argv, check=True, capture_output=True, text=True, env=env).stdout


def _tree(tmp_path: Path, fs_file: str) -> Path:
    root = tmp_path / "sample"
    (root / "boot" / "grub").mkdir(parents=True)
    (root / "boot" / "grub" / "grub.cfg").write_text("menuentry 'x' { linux /boot/vmlinuz }\n")
    (root / "boot" / "vmlinuz").write_bytes(b"placeholder")
    (root / ".bootmenu-fs").write_text(fs_file)
    return root


def test_ext4_disk_has_the_identity_of_its_bootmenu_fs(tmp_path: Path) -> None:
    root = _tree(tmp_path, "uuid=3f1c7a52-8d4e-4b8a-9c1e-2a6b5d0e7f11\nlabel=ubuntu-root\nfstype=ext4\n")
    real_kernel = tmp_path / "real-kernel"
    real_kernel.write_bytes(b"REAL KERNEL" * 100)
    image = disks.disk_from_directory(root, tmp_path / "disk.img", {"boot/vmlinuz": real_kernel})

    table = json.loads(_tool("sfdisk", "--json", str(image)))["partitiontable"]
    assert table["label"] == "gpt"
    (part,) = table["partitions"]
    assert part["type"] == disks.PartitionType.LINUX.value
    assert part["start"] * 512 == ALIGN
    probe = _tool("blkid", "-p", "-o", "export", "-O", str(ALIGN), str(image))
    assert "UUID=3f1c7a52-8d4e-4b8a-9c1e-2a6b5d0e7f11" in probe.splitlines()
    assert "LABEL=ubuntu-root" in probe.splitlines()
    # The placeholder kernel was replaced, the config copied, and .bootmenu-fs left out.
    fs_image = tmp_path / "fs.img"
    with image.open("rb") as src, fs_image.open("wb") as dst:
        src.seek(ALIGN)
        dst.write(src.read(part["size"] * 512))
    listing = _tool("debugfs", "-R", "ls -l /boot", str(fs_image))
    assert "grub" in listing
    kernel = _tool("debugfs", "-R", "cat /boot/vmlinuz", str(fs_image))
    assert kernel == "REAL KERNEL" * 100
    assert ".bootmenu-fs" not in _tool("debugfs", "-R", "ls /", str(fs_image))


def test_vfat_disk_is_an_esp_with_the_volume_id(tmp_path: Path) -> None:
    root = _tree(tmp_path, "uuid=1234-ABCD\nlabel=ESP\nfstype=vfat\n")
    image = disks.disk_from_directory(root, tmp_path / "esp.img")
    (part,) = json.loads(_tool("sfdisk", "--json", str(image)))["partitiontable"]["partitions"]
    assert part["type"] == disks.PartitionType.ESP.value
    probe = _tool("blkid", "-p", "-o", "export", "-O", str(ALIGN), str(image)).splitlines()
    assert "UUID=1234-ABCD" in probe
    assert "TYPE=vfat" in probe
    config = _tool("mtype", "-i", f"{image}@@{ALIGN}", "::/boot/grub/grub.cfg")
    assert config == "menuentry 'x' { linux /boot/vmlinuz }\n"


def test_same_inputs_give_the_same_identities(tmp_path: Path) -> None:
    root = _tree(tmp_path, "label=same\n")
    first = json.loads(_tool("sfdisk", "--json", str(disks.disk_from_directory(root, tmp_path / "a.img"))))
    second = json.loads(_tool("sfdisk", "--json", str(disks.disk_from_directory(root, tmp_path / "b.img"))))
    for table in (first, second):
        table["partitiontable"].pop("device")
        for part in table["partitiontable"]["partitions"]:
            part.pop("node")
    assert first == second
    assert first["partitiontable"]["id"] == str(disks.stable_uuid("disk:sample")).upper()


def test_unsupported_filesystem_names_the_file(tmp_path: Path) -> None:
    root = _tree(tmp_path, "fstype=ntfs\n")
    with pytest.raises(disks.DiskError, match=r"\.bootmenu-fs: cannot build a 'ntfs'"):
        disks.disk_from_directory(root, tmp_path / "x.img")
