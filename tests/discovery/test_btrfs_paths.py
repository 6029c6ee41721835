"""Paths on a btrfs filesystem mounted at its top level, as GRUB reads it (discovery.fs, discovery.mount)."""

from __future__ import annotations

from pathlib import Path

from discovery.fs import Filesystem, Platform
from discovery.loaders import LoadContext, load_filesystem
from discovery.mount import boot_subvolume

CTX = LoadContext(platform=Platform(firmware="efi", cpu="x86_64"))


def put(root: Path, path: str, text: str = "x") -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)


def test_the_subvolume_with_boot_files_stands_in_only_when_the_top_level_has_none(tmp_path: Path) -> None:
    put(tmp_path, "@/boot/vmlinuz")
    put(tmp_path, "@home/user/file")
    assert boot_subvolume(tmp_path) == "@"
    put(tmp_path, "boot/grub/grub.cfg")
    assert boot_subvolume(tmp_path) == ""


def test_ubuntu_paths_from_the_top_level_and_the_config_inside_the_subvolume(tmp_path: Path) -> None:
    put(tmp_path, "@/boot/vmlinuz-6.8")
    put(tmp_path, "@/boot/initrd.img-6.8")
    put(tmp_path, "@/.snapshots/1/snapshot/boot/vmlinuz-6.5")
    put(
        tmp_path,
        "@/boot/grub/grub.cfg",
        "menuentry Ubuntu { linux /@/boot/vmlinuz-6.8 rootflags=subvol=@\n initrd /@/boot/initrd.img-6.8 }\n"
        "menuentry Snapshot { linux /@/.snapshots/1/snapshot/boot/vmlinuz-6.5 }\n",
    )
    fs = Filesystem(root=tmp_path, name="sda2", fstype="btrfs", subvolume=boot_subvolume(tmp_path))
    result = load_filesystem(fs, CTX)
    assert [(e.title, e.kernel) for e in result.entries] == [
        ("Ubuntu", "/@/boot/vmlinuz-6.8"),
        ("Snapshot", "/@/.snapshots/1/snapshot/boot/vmlinuz-6.5"),
    ]
    assert fs.host_path("/@/boot/vmlinuz-6.8") == tmp_path / "@/boot/vmlinuz-6.8"
    assert [str(d) for d in result.diagnostics] == []


def test_subvolume_relative_paths_and_absolute_symlinks_resolve_inside_the_subvolume(tmp_path: Path) -> None:
    # openSUSE's GRUB (btrfs_relative_path) and BLS entries name paths from the subvolume's own root.
    put(tmp_path, "@/boot/vmlinuz-6.9")
    (tmp_path / "@/boot/vmlinuz").symlink_to("/boot/vmlinuz-6.9")
    put(tmp_path, "@/boot/loader/entries/opensuse.conf", "title openSUSE\nlinux /boot/vmlinuz\n")
    fs = Filesystem(root=tmp_path, name="sda2", fstype="btrfs", subvolume="@")
    assert fs.host_path("/boot/vmlinuz") == tmp_path / "@/boot/vmlinuz-6.9"
    [entry] = load_filesystem(fs, CTX).entries
    assert (entry.title, entry.kernel) == ("openSUSE", "/boot/vmlinuz")


def test_without_a_subvolume_nothing_outside_the_tree_is_seen(tmp_path: Path) -> None:
    put(tmp_path, "@/boot/vmlinuz")
    assert Filesystem(root=tmp_path, name="sda2").host_path("/boot/vmlinuz") is None
