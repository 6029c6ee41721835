"""Module selection on the real Debian module tree: every dependency comes along, and depmod agrees."""

from __future__ import annotations

from pathlib import Path

import pytest

from initramfs.modules import DEFAULT_MODULES, ModuleError, ModuleTree, module_name, stage_modules


@pytest.fixture(scope="module")
def tree(kernel_root: Path) -> ModuleTree:
    (modules,) = sorted((kernel_root / "lib/modules").iterdir())
    return ModuleTree.load(modules)


def test_names_compare_like_the_kernel() -> None:
    assert module_name("kernel/arch/x86/crypto/crc32c-intel.ko.xz") == "crc32c_intel"
    assert module_name("virtio-blk") == "virtio_blk"


def test_closure_includes_modules_dep_dependencies(tree: ModuleTree) -> None:
    files, missing = tree.closure(["virtio_blk", "ext4"])
    names = {module_name(f) for f in files}
    assert {"virtio_blk", "virtio", "virtio_ring", "ext4", "jbd2", "mbcache", "crc16"} <= names
    assert missing == []


def test_unknown_module_is_reported_missing(tree: ModuleTree) -> None:
    files, missing = tree.closure(["no_such_driver"])
    assert files == []
    assert missing == ["no_such_driver"]


def test_staged_tree_loads_by_alias_with_busybox_modprobe(tree: ModuleTree, tmp_path: Path) -> None:
    selection = stage_modules(tree, DEFAULT_MODULES, tmp_path)
    dest = tmp_path / "lib/modules" / tree.version
    names = {module_name(f) for f in selection.files}
    assert {"virtio_blk", "virtio_pci", "virtio_scsi", "ahci", "nvme", "sd_mod", "sr_mod", "usb_storage"} <= names
    assert {"ext4", "vfat", "xfs", "btrfs", "isofs", "squashfs", "nls_cp437", "crc32c_generic"} <= names
    for f in selection.files:
        assert (dest / f).is_file()
    # depmod ran on the staged tree: its modules.dep lists exactly what we copied.
    staged_dep = (dest / "modules.dep").read_text()
    assert {line.split(":")[0] for line in staged_dep.splitlines()} == set(selection.files)
    # The alias a virtio disk announces (virtio:d00000002v...) resolves to virtio_blk, through modules.alias.
    aliases = (dest / "modules.alias").read_text()
    assert "alias virtio:d00000002v* virtio_blk" in aliases
    assert "alias fs-ext4 ext4" in aliases
    # What busybox modprobe (run by /init) reads to load ext4 before it.
    ext4 = next(line for line in staged_dep.splitlines() if line.startswith("kernel/fs/ext4/ext4.ko"))
    assert "kernel/fs/jbd2/jbd2.ko" in ext4.split(":")[1].split()


def test_missing_modules_dep_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModuleError, match=r"modules\.dep"):
        ModuleTree.load(tmp_path)
