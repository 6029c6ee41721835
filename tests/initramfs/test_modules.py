"""Module selection on the real Debian module tree: every dependency comes along, and depmod agrees."""

from __future__ import annotations

import lzma
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from initramfs.builder import DEFAULT_BUSYBOX
from initramfs.modules import (
    DEFAULT_MODULES,
    METADATA_FILES,
    ModuleError,
    ModuleTree,
    module_name,
    parse_softdep,
    read_modinfo,
    stage_modules,
)


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
    ext4 = next(line for line in staged_dep.splitlines() if line.startswith("kernel/fs/ext4/ext4.ko.xz"))
    assert "kernel/fs/jbd2/jbd2.ko.xz" in ext4.split(":")[1].split()
    # Compressed for busybox's xz decoder: what it reads back is the kernel's module, byte for byte.
    plain = tree.root / "kernel/fs/ext4/ext4.ko"
    xzcat = [str(DEFAULT_BUSYBOX), "xzcat", str(dest / "kernel/fs/ext4/ext4.ko.xz")]
    unpacked = subprocess.run(xzcat, capture_output=True, check=True, timeout=60).stdout
    assert unpacked == plain.read_bytes()
    order = (dest / "modules.order").read_text().split()
    assert set(order) <= set(selection.files)
    assert "kernel/fs/ext4/ext4.ko.xz" in order


def test_uncompressed_staging_keeps_plain_modules(tree: ModuleTree, tmp_path: Path) -> None:
    selection = stage_modules(tree, ["virtio_blk"], tmp_path, compress=False)
    assert "kernel/drivers/block/virtio_blk.ko" in selection.files
    dest = tmp_path / "lib/modules" / tree.version
    assert (dest / "kernel/drivers/block/virtio_blk.ko").read_bytes() == (
        tree.root / "kernel/drivers/block/virtio_blk.ko"
    ).read_bytes()


def test_missing_modules_dep_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModuleError, match=r"modules\.dep"):
        ModuleTree.load(tmp_path)


# --- an unpacked kernel package: no depmod output (issue 9 item 3) ---------------------------------------------------


def scratch_copy(tree: ModuleTree, dest: Path) -> Path:
    """lib/modules/<version> as `dpkg -x` leaves it: the modules and the package's own index files, none of depmod's
    output. Hard links (the cache and tmp are on one filesystem here), else copies."""
    target = dest / "lib" / "modules" / tree.version
    for path in tree.root.rglob("*"):
        rel = path.relative_to(tree.root)
        if path.is_dir() or (len(rel.parts) == 1 and rel.name not in METADATA_FILES):
            continue
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target / rel)
        except OSError:
            shutil.copyfile(path, target / rel)
    return target


@pytest.fixture(scope="module")
def unpacked(tree: ModuleTree, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scratch_copy(tree, tmp_path_factory.mktemp("unpacked"))


@pytest.fixture(scope="module")
def depmod_tree(tree: ModuleTree, tmp_path_factory: pytest.TempPathFactory) -> ModuleTree:
    """depmod's own answer: depmod run on another scratch copy of the same package."""
    base = tmp_path_factory.mktemp("depmod")
    root = scratch_copy(tree, base)
    subprocess.run(["depmod", "-b", str(base), tree.version], check=True, capture_output=True)
    return ModuleTree.load(root)


def test_unpacked_package_has_no_depmod_output(unpacked: Path) -> None:
    assert not (unpacked / "modules.dep").exists()
    assert (unpacked / "modules.order").exists()


def test_dependencies_from_modinfo_equal_depmods(unpacked: Path, depmod_tree: ModuleTree) -> None:
    ours = ModuleTree.load(unpacked)
    assert ours.source == ".modinfo"
    assert depmod_tree.source == "modules.dep"
    assert set(ours.deps) == set(depmod_tree.deps)
    assert len(ours.deps) > 1000
    differ = {f for f in depmod_tree.deps if ours.dependencies(f) != set(depmod_tree.deps[f])}
    assert not differ, f"{len(differ)} modules differ from depmod, e.g. {sorted(differ)[:5]}"
    assert ours.softdeps == depmod_tree.softdeps
    assert set(ours.aliases) == set(depmod_tree.aliases)
    assert ours.closure(DEFAULT_MODULES) == depmod_tree.closure(DEFAULT_MODULES)


def test_soft_dependencies_come_along_through_aliases(unpacked: Path, tmp_path: Path) -> None:
    ours = ModuleTree.load(unpacked)
    # ext4's .modinfo says softdep=pre: crypto-crc32c, an alias that crc32c_generic (and crc32c_intel) provide.
    assert "crypto-crc32c" in ours.softdeps["ext4"]
    assert "crc32c_generic" in ours.resolve("crypto-crc32c")
    selection = stage_modules(ours, ["ext4"], tmp_path)
    names = {module_name(f) for f in selection.files}
    assert {"ext4", "jbd2", "mbcache", "crc16", "crc32c_generic"} <= names
    assert selection.missing == ()
    staged_dep = (tmp_path / "lib/modules" / ours.version / "modules.dep").read_text()
    assert {line.split(":")[0] for line in staged_dep.splitlines()} == set(selection.files)


def test_the_package_root_is_accepted_too(unpacked: Path) -> None:
    package_root = unpacked.parents[2]
    assert ModuleTree.load(package_root).root == unpacked


def test_parse_softdep_keeps_pre_and_post_only() -> None:
    assert parse_softdep("pre: crc32c crypto-md5 post: ipmi_devintf") == ("crc32c", "crypto-md5", "ipmi_devintf")
    assert parse_softdep("gcm") == ()  # no pre:/post: - modprobe ignores these words


def test_a_damaged_module_names_its_file(tmp_path: Path) -> None:
    bad = tmp_path / "kernel" / "drivers" / "bad.ko"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 57 + b"\xff" * 64)
    with pytest.raises(ModuleError, match=r"bad\.ko: section headers outside the file"):
        ModuleTree.load(tmp_path)
    bad.write_bytes(b"not an ELF file")
    with pytest.raises(ModuleError, match=r"bad\.ko: not an ELF kernel module"):
        read_modinfo(bad)


def test_compressed_modules_are_read(tree: ModuleTree, tmp_path: Path) -> None:
    ext4 = tree.root / tree.by_name["ext4"]
    packed = tmp_path / "ext4.ko.xz"
    packed.write_bytes(lzma.compress(ext4.read_bytes(), preset=0))
    assert read_modinfo(packed) == read_modinfo(ext4)
    assert ("name", "ext4") in read_modinfo(packed)
