"""Boot loader writes (issue 11 section 1): GRUB save_env recorded per entry, the grubenv block rewritten in place
through its blocks, loadenv.c's refusals, BLS boot-counting names.

No loop devices on the host: the in-place writer runs on real mkfs.ext4 images with the block map debugfs reports
(e2fsprogs' own view of the file); the real FIEMAP path runs on files in the host's tmp directory (listing only) and
on real devices in the QEMU test (tests/qemu/test_loaderwrites.py)."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from discovery import blockmap, loaderwrites
from discovery.entry import BootCount, BootEntry, EnvSave, SourceFormat
from discovery.fs import Filesystem
from discovery.grub import grubenv
from discovery.protocol import Level
from initramfs.disks import make_ext4
from tests.discovery.grub.grubtree import env_block, kernel_files, make_fs, run

REPO = Path(__file__).resolve().parents[2]
GRUB_EDITENV = REPO / ".cache" / "grub-common" / "root" / "usr" / "bin" / "grub-editenv"

# The parts of Debian's /etc/grub.d/00_header and 10_linux that read and write grubenv (GRUB 2.06).
DEBIAN_CFG = """\
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="0"
fi
function recordfail {
  set recordfail=1
  if [ -n "${have_grubenv}" ]; then if [ -z "${boot_once}" ]; then save_env recordfail; fi; fi
}
menuentry 'Debian' --id debian {
    recordfail
    linux /vmlinuz root=/dev/sda2
}
menuentry 'Debian, old kernel' --id old {
    recordfail
    linux /vmlinuz-old root=/dev/sda2
}
"""

# Fedora's 10_reset_boot_success, as grub2-mkconfig writes it.
FEDORA_CFG = """\
load_env
if [ "${boot_success}" = "1" ] ; then
  set boot_indeterminate=0
elif [ "${boot_indeterminate}" = "1" ]; then
  set boot_indeterminate=2
fi
set boot_success=0
save_env boot_success boot_indeterminate
menuentry 'Fedora' { linux /vmlinuz }
"""


def saves_of(entry: BootEntry) -> list[tuple[str, str | None]]:
    return [(s.name, s.value) for s in entry.env_saves]


# --- what the evaluation records ---


def test_debian_recordfail_is_saved_by_the_entry_it_belongs_to(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"/boot/grub/grub.cfg": DEBIAN_CFG, "/boot/grub/grubenv": env_block()}
    files.update(kernel_files("/vmlinuz", "/vmlinuz-old"))
    result = run(make_fs(tmp_path, files))
    assert [saves_of(e) for e in result.entries] == [[("recordfail", "1")], [("recordfail", "1")]]
    assert {(s.device, s.path) for e in result.entries for s in e.env_saves} == {("sda1", "/boot/grub/grubenv")}


def test_grub_reboot_next_entry_is_cleared_and_recordfail_skipped_as_boot_once(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "/boot/grub/grub.cfg": DEBIAN_CFG,
        "/boot/grub/grubenv": env_block(next_entry="old"),
    }
    files.update(kernel_files("/vmlinuz", "/vmlinuz-old"))
    result = run(make_fs(tmp_path, files))
    # The one-shot entry is the default; booting anything clears next_entry, as GRUB did at its start.
    assert [(e.id, e.default) for e in result.entries] == [("debian", False), ("old", True)]
    assert [saves_of(e) for e in result.entries] == [[("next_entry", "")], [("next_entry", "")]]


def test_fedora_boot_success_counting(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "/boot/grub2/grub.cfg": FEDORA_CFG,
        "/boot/grub2/grubenv": env_block(boot_success="1"),
    }
    files.update(kernel_files("/vmlinuz"))
    result = run(make_fs(tmp_path, files))
    assert saves_of(result.entries[0]) == [("boot_success", "0"), ("boot_indeterminate", "0")]
    assert result.entries[0].env_saves[0].path == "/boot/grub2/grubenv"


def test_save_env_of_an_unset_variable_deletes_it_and_f_names_the_file(tmp_path: Path) -> None:
    cfg = "menuentry A { save_env -f /boot/grub/other.env missing; linux /vmlinuz }\n"
    result = run(make_fs(tmp_path, {"/boot/grub/grub.cfg": cfg, **kernel_files("/vmlinuz")}))
    assert result.entries[0].env_saves == (EnvSave("sda1", "/boot/grub/other.env", "missing", None),)
    bare = run(make_fs(tmp_path / "b", {"/boot/grub/grub.cfg": "save_env\nmenuentry A { linux /vmlinuz }\n"}))
    assert any("save_env: no variable is specified" in str(d) for d in bare.diagnostics)


# --- the block edit (envblk.c semantics) ---


def test_edit_keeps_size_order_and_untouched_lines() -> None:
    block = grubenv.render({"saved_entry": "a", "next_entry": "old", "x": "1"})
    out = grubenv.edit(block, [EnvSave("d", "p", "next_entry", ""), EnvSave("d", "p", "recordfail", "1")])
    assert len(out) == grubenv.BLOCK_SIZE
    assert out.startswith(b"# GRUB Environment Block\nsaved_entry=a\nnext_entry=\nx=1\nrecordfail=1\n###")
    assert grubenv.parse(out) == {"saved_entry": "a", "next_entry": "", "x": "1", "recordfail": "1"}
    deleted = grubenv.edit(out, [EnvSave("d", "p", "x", None)])
    assert b"x=1" not in deleted
    assert len(deleted) == grubenv.BLOCK_SIZE


def test_edit_escapes_and_refuses_what_grub_refuses() -> None:
    block = grubenv.render({})
    out = grubenv.edit(block, [EnvSave("d", "p", "v", "a\\b\nc")])
    assert b"v=a\\\\b\\\nc\n" in out
    assert grubenv.parse(out)["v"] == "a\\b\nc"
    with pytest.raises(grubenv.EnvBlockError, match="too small"):
        grubenv.edit(block, [EnvSave("d", "p", "big", "x" * 1024)])
    with pytest.raises(grubenv.EnvBlockError, match="invalid environment block"):
        grubenv.edit(b"#" * 1024, [])
    with pytest.raises(grubenv.EnvBlockError, match="broken"):
        grubenv.edit(b"# GRUB Environment Block\nx=1" + b"#" * 999, [])


# --- block maps: the real FIEMAP on host files (listing only) ---


def test_fiemap_lists_a_real_file_and_refuses_holes(tmp_path: Path) -> None:
    plain = tmp_path / "grubenv"
    plain.write_bytes(grubenv.render({}))
    try:
        blocks, data = blockmap.map_file(plain)
    except OSError as exc:
        pytest.skip(f"tmp filesystem lists no blocks: {exc}")
    assert data == plain.read_bytes()
    assert blocks.size == 1024
    assert sum(e.length for e in blocks.extents) == 1024
    sparse = tmp_path / "sparse"
    with sparse.open("wb") as f:
        f.truncate(8192)
        f.seek(4096)
        f.write(b"y" * 16)
    with pytest.raises(blockmap.BlockMapError, match="sparse file not allowed"):
        blockmap.map_file(sparse)


def test_file_without_fiemap_or_fibmap_is_refused() -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no /dev/shm")
    target = shm / f"bootmenu-test-{os.getpid()}"
    target.write_bytes(grubenv.render({}))
    try:
        with pytest.raises(OSError, match="ioctl"):
            blockmap.map_file(target)
    finally:
        target.unlink()


def test_block_map_checks_like_loadenv() -> None:
    blockmap.BlockMap(1024, (blockmap.Extent(0, 4096, 512), blockmap.Extent(512, 9000, 512)), "test").check()
    with pytest.raises(blockmap.BlockMapError, match="sparse"):
        blockmap.BlockMap(1024, (blockmap.Extent(0, 4096, 512),), "test").check()
    with pytest.raises(blockmap.BlockMapError, match="malformed"):
        blockmap.BlockMap(1024, (blockmap.Extent(0, 4096, 512), blockmap.Extent(512, 4096, 512)), "test").check()


# --- the in-place writer on a real ext4 image, blocks as e2fsprogs sees them ---


def _debugfs(image: Path, request: str) -> str:
    proc = subprocess.run(["debugfs", "-R", request, str(image)], capture_output=True, text=True, check=True)
    return proc.stdout


def debugfs_map(image: Path, path: str) -> blockmap.BlockMap:
    """The file's block map computed from the image by debugfs (what FIEMAP reports on a mounted device)."""
    size = int(re.search(r"Size: (\d+)", _debugfs(image, f"stat {path}"))[1])  # type: ignore[index]
    block = int(re.search(r"Block size:\s+(\d+)", _debugfs(image, "stats"))[1])  # type: ignore[index]
    extents = []
    for n in range(-(-size // block)):
        physical = int(_debugfs(image, f"bmap {path} {n}").split()[0])
        assert physical, f"{path} block {n} is a hole"
        extents.append(blockmap.Extent(n * block, physical * block, min(block, size - n * block)))
    return blockmap.BlockMap(size, tuple(extents), "debugfs")


@pytest.fixture
def ext4_image(tmp_path: Path) -> Path:
    if shutil.which("debugfs") is None and not Path("/usr/sbin/debugfs").exists():
        pytest.skip("debugfs (e2fsprogs) missing")
    tree = tmp_path / "tree"
    (tree / "boot" / "grub").mkdir(parents=True)
    (tree / "boot" / "grub" / "grubenv").write_bytes(grubenv.render({"saved_entry": "debian", "next_entry": "old"}))
    (tree / "boot" / "grub" / "grub.cfg").write_text(DEBIAN_CFG)
    return make_ext4(tree, tmp_path / "fs.img", label="root", fs_uuid="2f1d3c8e-0c55-4f7b-9a55-3d1a0c3b4e01")


def test_rewrite_in_place_on_ext4_image(ext4_image: Path, tmp_path: Path) -> None:
    blocks = debugfs_map(ext4_image, "/boot/grub/grubenv")
    blocks.check()
    old = _debugfs_dump(ext4_image, tmp_path / "before")
    before_meta = _metadata(ext4_image)
    new = grubenv.edit(
        old, [EnvSave("sda1", "/boot/grub/grubenv", "next_entry", ""), EnvSave("", "", "recordfail", "1")]
    )
    blockmap.rewrite(str(ext4_image), blocks, old, new)
    after = _debugfs_dump(ext4_image, tmp_path / "after")
    assert after == new
    assert len(after) == 1024
    assert grubenv.parse(after) == {"saved_entry": "debian", "next_entry": "", "recordfail": "1"}
    assert _metadata(ext4_image) == before_meta  # same inode, size, blocks: only the data block changed
    fsck = subprocess.run(["e2fsck", "-fn", str(ext4_image)], capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    if GRUB_EDITENV.exists():
        listed = subprocess.run(
            [str(GRUB_EDITENV), str(tmp_path / "after"), "list"], capture_output=True, text=True, check=False
        )
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines() == ["saved_entry=debian", "next_entry=", "recordfail=1"]


def test_rewrite_refuses_blocks_that_do_not_hold_the_file(ext4_image: Path, tmp_path: Path) -> None:
    blocks = debugfs_map(ext4_image, "/boot/grub/grubenv")
    wrong = blockmap.BlockMap(blocks.size, (blockmap.Extent(0, blocks.extents[0].physical + 4096, 1024),), "test")
    old = _debugfs_dump(ext4_image, tmp_path / "before")
    image_before = ext4_image.read_bytes()
    with pytest.raises(blockmap.BlockMapError, match="invalid blocklist"):
        blockmap.rewrite(str(ext4_image), wrong, old, grubenv.edit(old, [EnvSave("", "", "recordfail", "1")]))
    with pytest.raises(blockmap.BlockMapError, match="size would change"):
        blockmap.rewrite(str(ext4_image), blocks, old, old + b"#")
    assert ext4_image.read_bytes() == image_before


def _debugfs_dump(image: Path, out: Path) -> bytes:
    _debugfs(image, f"dump /boot/grub/grubenv {out}")
    return out.read_bytes()


def _metadata(image: Path) -> str:
    text = _debugfs(image, "stat /boot/grub/grubenv")
    return "\n".join(line for line in text.splitlines() if not re.search(r"time|crtime", line))


# --- the writes as the daemon asks for them: refusals are status lines, nothing written ---


def _entry(**changes: object) -> BootEntry:
    base = BootEntry(
        title="Debian", kernel="/vmlinuz", device="sda1", config_device="sda1", config="/boot/grub/grub.cfg"
    )
    return base.replace(**changes)


def test_directory_and_missing_filesystems_are_refused_with_a_status_line(tmp_path: Path) -> None:
    fs = make_fs(tmp_path, {"/boot/grub/grubenv": grubenv.render({})})
    saves = (EnvSave("sda1", "/boot/grub/grubenv", "recordfail", "1"), EnvSave("sdb1", "/grubenv", "next_entry", ""))
    reports = loaderwrites.before_jump(_entry(env_saves=saves), {"sda1": loaderwrites.Target(None, fs)})
    assert reports == [
        (Level.WARNING, "grubenv sda1:/boot/grub/grubenv not written (recordfail=1): its filesystem is a directory, "
         "not a block device"),
        (Level.WARNING, "grubenv sdb1:/grubenv not written (next_entry=): its filesystem is not present"),
    ]  # fmt: skip


def test_blocks_not_on_the_named_device_are_refused_and_nothing_written(tmp_path: Path) -> None:
    # The file's FIEMAP extents are on the host disk, the "device" is a zeroed image: loadenv.c's re-read check.
    fs = make_fs(tmp_path / "root", {"/boot/grub/grubenv": grubenv.render({"next_entry": "x"})})
    device = tmp_path / "device.img"
    with device.open("wb") as f:
        f.truncate(1 << 20)
    reports = loaderwrites.write_grubenv(
        (EnvSave("sda1", "/boot/grub/grubenv", "next_entry", ""),), {"sda1": loaderwrites.Target(str(device), fs)}
    )
    assert len(reports) == 1
    assert reports[0][0] is Level.WARNING
    assert re.search(r"not written \(next_entry=\): (invalid blocklist|.*ioctl)", reports[0][1]), reports
    assert device.read_bytes() == bytes(1 << 20)
    assert grubenv.parse((tmp_path / "root/boot/grub/grubenv").read_bytes()) == {"next_entry": "x"}


def test_full_block_is_refused_before_any_write(tmp_path: Path) -> None:
    fs = make_fs(tmp_path / "root", {"/grubenv": grubenv.render({"a": "x" * 990})})
    image = tmp_path / "device.img"
    image.write_bytes(bytes(4096))
    reports = loaderwrites.write_grubenv(
        (EnvSave("sda1", "/grubenv", "recordfail", "1"),), {"sda1": loaderwrites.Target(str(image), fs)}
    )
    assert reports[0][1].endswith("not written (recordfail=1): environment block too small"), reports


def test_diskfilter_and_crypt_devices_are_refused(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    (sysfs / "devices/virtual/block/dm-0/dm").mkdir(parents=True)
    (sysfs / "devices/virtual/block/md0/md").mkdir(parents=True)
    (sysfs / "devices/virtual/block/md0/md0p1").mkdir()
    (sysfs / "devices/virtual/block/md0/md0p1/partition").write_text("1\n")
    (sysfs / "devices/pci/block/sda/sda1").mkdir(parents=True)
    (sysfs / "devices/pci/block/sda/sda1/partition").write_text("1\n")
    (sysfs / "devices/pci/block/sda/slaves").mkdir()
    links = sysfs / "class/block"
    links.mkdir(parents=True)
    for name, where in [
        ("dm-0", "virtual/block/dm-0"),
        ("md0p1", "virtual/block/md0/md0p1"),
        ("sda1", "pci/block/sda/sda1"),
    ]:
        (links / name).symlink_to(sysfs / "devices" / where)
    assert "device-mapper" in (blockmap.device_refusal("/dev/dm-0", links) or "")
    assert "md RAID" in (blockmap.device_refusal("/dev/md0p1", links) or "")
    assert blockmap.device_refusal("/dev/sda1", links) is None
    assert blockmap.device_refusal(str(tmp_path / "image.img"), links) is None


# --- BLS boot counting ---


@pytest.mark.parametrize(
    ("name", "renamed"),
    [
        ("fedora-6.5+3.conf", "fedora-6.5+2-1.conf"),
        ("fedora-6.5+3-0.conf", "fedora-6.5+2-1.conf"),
        ("fedora-6.5+1-2.conf", "fedora-6.5+0-3.conf"),
        # systemd-boot 252 counts one more failure on an entry with no tries left (seen under OVMF).
        ("fedora-6.5+0-3.conf", "fedora-6.5+0-4.conf"),
        ("fedora-6.5+0.conf", "fedora-6.5+0-1.conf"),
        ("fedora-6.5.conf", None),
        ("a+b+2-1.conf", "a+b+1-2.conf"),
        ("arch-linux+3-1.efi", "arch-linux+2-2.efi"),
        ("ARCH+1.EFI", "ARCH+0-1.EFI"),
        ("arch+1.img", None),
    ],
)
def test_counted_name(name: str, renamed: str | None) -> None:
    assert loaderwrites.counted_name(name) == renamed


def test_boot_counting_rename_is_refused_off_a_vfat_block_device(tmp_path: Path) -> None:
    fs = make_fs(tmp_path, {"/loader/entries/a+3-0.conf": "title A\nlinux /vmlinuz\n"})
    entry = _entry(format=SourceFormat.BLS, config="/loader/entries/a+3-0.conf", boot_count=BootCount(3, 0))
    reports = loaderwrites.before_jump(entry, {"sda1": loaderwrites.Target(None, fs)})
    assert reports == [
        (
            Level.WARNING,
            "boot counting: sda1:/loader/entries/a+3-0.conf not renamed to a+2-1.conf: not on a block device",
        )
    ]
    ext4 = Filesystem(root=tmp_path, name="sda1", fstype="ext4")
    reports = loaderwrites.before_jump(entry, {"sda1": loaderwrites.Target("/dev/sda1", ext4)})
    assert "ext4 is not an ESP/XBOOTLDR (vfat)" in reports[0][1]
    assert (tmp_path / "loader/entries/a+3-0.conf").exists()
    spent = entry.replace(config="/loader/entries/a+0-3.conf", boot_count=BootCount(0, 3))
    assert loaderwrites.before_jump(spent, {})[0] == (
        Level.WARNING,
        "boot counting: sda1:/loader/entries/a+0-3.conf not renamed to a+0-4.conf: not on a block device",
    )


def test_rename_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "a+2-1.conf").write_text("other")
    with pytest.raises(OSError, match="new name exists") as info:
        loaderwrites.rename_on_remount("/dev/null", tmp_path, "vfat", tmp_path / "a+3-0.conf", tmp_path / "a+2-1.conf")
    assert info.value.errno == errno.EEXIST


def test_real_devices_are_only_written_inside_the_payload(tmp_path: Path) -> None:
    # The host is no boot environment: a device node is refused before anything is opened for writing.
    fs = make_fs(tmp_path, {"/grubenv": grubenv.render({})})
    saves = (EnvSave("sda1", "/grubenv", "recordfail", "1"),)
    reports = loaderwrites.write_grubenv(saves, {"sda1": loaderwrites.Target("/dev/null", fs)})
    assert "not written (recordfail=1): refusing to write a grubenv block" in reports[0][1]
    vfat = Filesystem(root=tmp_path, name="sda1", fstype="vfat")
    (tmp_path / "a+3-0.conf").write_text("title A\nlinux /vmlinuz\n")
    entry = _entry(format=SourceFormat.BLS, config="/a+3-0.conf", boot_count=BootCount(3, 0))
    reports = loaderwrites.before_jump(entry, {"sda1": loaderwrites.Target("/dev/null", vfat)})
    assert "not renamed to a+2-1.conf: refusing to remount a filesystem read-write" in reports[0][1]
    assert (tmp_path / "a+3-0.conf").exists()


def _bls(root: Path, files: dict[str, str]) -> list[BootEntry]:
    from discovery import bls
    from discovery.loaders import LoadContext

    make_fs(root, {"/vmlinuz": "x", **{f"/loader/{k}": v for k, v in files.items()}})
    return list(bls.load(Filesystem(root=root, name="esp"), LoadContext()).entries)


def files_of_two() -> dict[str, str]:
    return {
        "entries/new+0-3.conf": "title New\nversion 6.9\nlinux /vmlinuz\n",
        "entries/old+1-2.conf": "title Old\nversion 6.1\nlinux /vmlinuz\n",
    }


def test_bad_entries_are_not_picked_as_the_default_and_are_marked(tmp_path: Path) -> None:
    from bootmenu.model import EntryRow
    from discovery.protocol import EntryInfo

    entries = _bls(
        tmp_path / "a",
        {
            "entries/new+0-3.conf": "title New\nversion 6.9\nlinux /vmlinuz\n",
            "entries/old+1-2.conf": "title Old\nversion 6.1\nlinux /vmlinuz\n",
        },
    )
    assert [(e.title, e.default, e.bad) for e in entries] == [("Old", True, False), ("New", False, True)]
    warning = "no boot tries left (3 failed): listed last, not picked as the default"
    assert warning in [d.message for d in entries[1].warnings]
    assert EntryRow(EntryInfo("x", entries[1]), False).text() == "New (bad: no boot tries left)"
    assert EntryRow(EntryInfo("y", entries[0]), True).text() == "Old"
    spent = _bls(tmp_path / "b", {"entries/only+0-3.conf": "title Only\nlinux /vmlinuz\n"})
    assert [(e.title, e.default) for e in spent] == [("Only", False)]  # listed, bootable by hand, never autobooted
    # A `default` naming one is obeyed, as systemd-boot 252 does (tests/conformance, the sdboot-counting tree); its id
    # there keeps the counter, so the whole file name matches too.
    for pattern in ("new*", "new+0-3.conf", "new.conf"):
        named = _bls(tmp_path / pattern, {**files_of_two(), "loader.conf": f"default {pattern}\n"})
        assert [(e.title, e.default) for e in named] == [("Old", False), ("New", True)], pattern


def test_daemon_names_each_write_between_load_and_exec_and_boots_on(tmp_path: Path) -> None:
    import asyncio

    from discovery.protocol import Boot, EntryAdded, Status
    from tests.discovery import test_daemon as td

    root = td.bls_tree(tmp_path / "vda2")
    (root / "boot" / "grub").mkdir(parents=True)
    (root / "boot" / "grub" / "grubenv").write_bytes(grubenv.render({"next_entry": "deb"}))
    cfg = DEBIAN_CFG.replace("/vmlinuz-old", "/vmlinuz")
    cfg = cfg.replace("linux /vmlinuz root=/dev/sda2", "linux /vmlinuz root=/dev/sda2\n    initrd /initrd.img")
    (root / "boot" / "grub" / "grub.cfg").write_text(cfg.replace("--id old", "--id deb"))
    mounts = td.DirMounts({"/dev/vda2": root})
    udev = td.FakeUdev([td.fs_event("add", "/dev/vda2", label="root", uuid="1111")])
    kexec = td.ExecFails()

    async def scenario() -> None:
        async with td.serving(tmp_path, source=udev, mounts=mounts, dry_run=False, boot_api=kexec) as (_d, sock):
            client = await td.Client.connect(sock)
            await client.hello()
            added = await client.until(td.is_entry("Debian, old kernel"))
            assert isinstance(added, EntryAdded)
            client.send(Boot(added.entry.id))
            await client.until(td.is_status("loaded Debian, old kernel; starting it"))
            line = await client.until(td.is_status("grubenv vda2:/boot/grub/grubenv"))
            assert isinstance(line, Status)
            assert line.status.level is Level.WARNING
            # The host is no payload: the real node is refused, nothing opened for writing, the boot goes on.
            assert "not written (next_entry=): refusing to write a grubenv block" in line.status.message
            await client.until(td.is_status("cannot boot", Level.ERROR))  # the fake exec fails after the writes
            assert kexec.calls[:4] == ["prepare", "load", "release", "jump"]
            client.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert grubenv.parse((root / "boot/grub/grubenv").read_bytes()) == {"next_entry": "deb"}


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        (0x200, "stored inline in the inode"),
        (0x8, "stored encoded (compressed)"),
        (0x2, "its location is unknown"),
        (0x80, "it is encrypted"),
        (0x800, "unwritten"),
        (0x2000, "shared with another file"),
    ],
)
def test_extents_that_are_not_the_files_bytes_are_refused(
    monkeypatch: pytest.MonkeyPatch, flags: int, why: str
) -> None:
    # The fake sits at the syscall boundary: FS_IOC_FIEMAP's answer, as btrfs (inline, compressed) or ext4
    # (inline_data) gives it.
    def fake_ioctl(fd: int, request: int, arg: bytearray, path: str, name: str) -> None:
        assert request == blockmap.FS_IOC_FIEMAP
        header = blockmap._FIEMAP_HEADER
        header.pack_into(arg, 0, 0, 1024, 1, 1, blockmap.MAX_EXTENTS, 0)
        blockmap._FIEMAP_EXTENT.pack_into(arg, header.size, 0, 8192, 4096, 0, 0, flags | 0x1, 0, 0, 0)

    monkeypatch.setattr(blockmap, "_ioctl", fake_ioctl)
    with pytest.raises(blockmap.BlockMapError, match=re.escape(why)):
        blockmap.fiemap(-1, 1024, "grubenv")


def test_fiemap_answer_is_trimmed_to_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_ioctl(fd: int, request: int, arg: bytearray, path: str, name: str) -> None:
        header = blockmap._FIEMAP_HEADER
        header.pack_into(arg, 0, 0, 1024, 1, 1, blockmap.MAX_EXTENTS, 0)
        blockmap._FIEMAP_EXTENT.pack_into(arg, header.size, 0, 8192, 4096, 0, 0, 0x1, 0, 0, 0)

    monkeypatch.setattr(blockmap, "_ioctl", fake_ioctl)
    assert blockmap.fiemap(-1, 1024, "grubenv").extents == (blockmap.Extent(0, 8192, 1024),)


def test_checksummed_filesystems_are_refused(tmp_path: Path) -> None:
    fs = Filesystem(root=tmp_path, name="sda2", fstype="btrfs")
    (tmp_path / "grubenv").write_bytes(grubenv.render({}))
    reports = loaderwrites.write_grubenv(
        (EnvSave("sda2", "/grubenv", "recordfail", "1"),), {"sda2": loaderwrites.Target("/dev/sda2", fs)}
    )
    assert reports == [
        (
            Level.WARNING,
            "grubenv sda2:/grubenv not written (recordfail=1): btrfs checksums its data blocks: "
            "one changed in place would fail its checksum",
        )
    ]


def test_fedora_blscfg_entries_carry_the_boot_success_saves(tmp_path: Path) -> None:
    cfg = FEDORA_CFG.replace("menuentry 'Fedora' { linux /vmlinuz }\n", "blscfg\n")
    files: dict[str, str | bytes] = {
        "/boot/grub2/grub.cfg": cfg,
        "/boot/grub2/grubenv": env_block(boot_success="0", boot_indeterminate="1"),
        "/boot/loader/entries/f41.conf": "title Fedora 41\nversion 6.11\nlinux /vmlinuz\n",
    }
    files.update(kernel_files("/boot/vmlinuz"))
    result = run(make_fs(tmp_path, files))
    assert [e.title for e in result.entries] == ["Fedora 41"]
    assert saves_of(result.entries[0]) == [("boot_success", "0"), ("boot_indeterminate", "2")]
