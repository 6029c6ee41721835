"""Superblock probing on real images made by the real mkfs tools, compared with what those tools were told."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from discovery.superblock import Superblock, Usage, probe

UUID = "0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9"


def _tool(name: str) -> str:
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if Path(d, name).exists():
            return str(Path(d, name))
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is missing: `make system-deps` installs it")
    return found


def _image(tmp_path: Path, size_mb: int = 128) -> Path:
    img = tmp_path / "disk.img"
    with img.open("wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    return img


def _run(*argv: str) -> None:
    subprocess.run([_tool(argv[0]), *argv[1:]], check=True, capture_output=True)


@pytest.mark.parametrize("fstype", ["ext2", "ext3", "ext4"])
def test_ext_family(tmp_path: Path, fstype: str) -> None:
    img = _image(tmp_path, 16)
    _run(f"mkfs.{fstype}", "-q", "-F", "-U", UUID, "-L", "rootfs", str(img))
    assert probe(img) == Superblock(fstype, UUID, "rootfs")


def test_vfat(tmp_path: Path) -> None:
    img = _image(tmp_path, 64)
    _run("mkfs.vfat", "-i", "1234ABCD", "-n", "ESP", str(img))
    assert probe(img) == Superblock("vfat", "1234-ABCD", "ESP")


def test_vfat32_without_label(tmp_path: Path) -> None:
    img = _image(tmp_path, 64)
    _run("mkfs.vfat", "-F", "32", "-i", "deadbeef", str(img))
    assert probe(img) == Superblock("vfat", "DEAD-BEEF", "")


def test_xfs(tmp_path: Path) -> None:
    img = _image(tmp_path, 300)
    _run("mkfs.xfs", "-q", "-m", f"uuid={UUID}", "-L", "xroot", str(img))
    assert probe(img) == Superblock("xfs", UUID, "xroot")


def test_btrfs(tmp_path: Path) -> None:
    img = _image(tmp_path, 128)
    _run("mkfs.btrfs", "-q", "-U", UUID, "-L", "fedora", str(img))
    assert probe(img) == Superblock("btrfs", UUID, "fedora")


def test_iso9660_uuid_is_the_creation_time(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "isolinux").mkdir(parents=True)
    (src / "isolinux" / "isolinux.cfg").write_text("default linux\n")
    iso = tmp_path / "cd.iso"
    _run("genisoimage", "-quiet", "-V", "DEBIAN_12", "-o", str(iso), str(src))
    found = probe(iso)
    assert found is not None
    assert (found.fstype, found.label) == ("iso9660", "DEBIAN_12")
    # blkid's form: YYYY-MM-DD-HH-MM-SS-cc
    assert len(found.uuid) == 22
    assert found.uuid[4] == "-"
    assert found.uuid[:2] in ("19", "20")


def test_squashfs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "vmlinuz").write_bytes(b"kernel")
    img = tmp_path / "fs.squashfs"
    _run("mksquashfs", str(src), str(img), "-quiet", "-noappend")
    found = probe(img)
    assert found == Superblock("squashfs")
    assert found.usage is Usage.FILESYSTEM


def test_swap_is_recognised_and_not_mountable(tmp_path: Path) -> None:
    img = _image(tmp_path, 16)
    _run("mkswap", "-U", UUID, "-L", "swap0", str(img))
    found = probe(img)
    assert found == Superblock("swap", UUID, "swap0")
    assert found.usage is Usage.SWAP


def test_luks_header_is_locked(tmp_path: Path) -> None:
    # A LUKS1 header by hand (cryptsetup is not needed to see the layout): magic, version, UUID at 168.
    img = _image(tmp_path, 4)
    head = bytearray(4096)
    head[0:6] = b"LUKS\xba\xbe"
    head[6:8] = b"\x00\x01"
    head[168 : 168 + 36] = UUID.encode()
    with img.open("r+b") as f:
        f.write(head)
    found = probe(img)
    assert found == Superblock("crypto_LUKS", UUID, "")
    assert found.usage is Usage.CRYPTO


def test_md_raid_v12_member(tmp_path: Path) -> None:
    img = _image(tmp_path, 4)
    sb = bytearray(256)
    sb[0:4] = (0xA92B4EFC).to_bytes(4, "little")
    sb[4:8] = (1).to_bytes(4, "little")
    sb[16:32] = bytes(range(1, 17))
    with img.open("r+b") as f:
        f.seek(4096)
        f.write(sb)
    found = probe(img)
    assert found is not None
    assert found.usage is Usage.RAID


def test_blank_device_is_unknown(tmp_path: Path) -> None:
    assert probe(_image(tmp_path, 1)) is None


def test_unreadable_device_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"missing\.img"):
        probe(tmp_path / "missing.img")
