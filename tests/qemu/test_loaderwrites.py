"""Boot loader writes in QEMU (issue 11 section 1), on real images whose writes are kept (no snapshot).

1. An ext4 disk with a Debian-style grub.cfg and a grubenv made by grub-editenv holding `next_entry` (grub-reboot's
   one-shot): the menu autoboots that entry, and once the second kernel runs the image's grubenv block has
   `next_entry=` and `recordfail=1`, written in place through its blocks (FIEMAP on the read-only mount): the
   filesystem is clean, the file's inode unchanged, and Debian's grub-editenv lists the block as valid.
2. A vfat ESP with `NAME+3-0.conf`: booting it leaves `NAME+2-1.conf` on the image.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from initramfs import disks
from initramfs.guests import SECOND_STAGE_MARKER
from initramfs.qemu import Disk, VmConfig
from tests.qemu.e2e_support import BASE_APPEND, COMMON, VM_TIMEOUT, second_initrd
from tests.qemu.qemu_console import SerialVm

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
GRUB_EDITENV = REPO / ".cache" / "grub-common" / "root" / "usr" / "bin" / "grub-editenv"
BOOT_TIMEOUT = 300.0
ESCAPES = re.compile(r"\x1b(\[[0-9;?$]*[A-Za-z]|[()][0-9A-Za-z]|c)")

# Debian's 00_header logic for grubenv; recordfail saved unconditionally (Debian skips it on a grub-reboot boot,
# `boot_once`), so that one boot shows both writes in the same block.
GRUB_CFG = f"""\
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${{next_entry}}" ] ; then
   set default="${{next_entry}}"
   set next_entry=
   save_env next_entry
else
   set default="${{saved_entry}}"
fi
function recordfail {{
  set recordfail=1
  if [ -n "${{have_grubenv}}" ]; then save_env recordfail; fi
}}
set timeout=30
menuentry 'Writes usual' --id usual {{
    recordfail
    linux /boot/vmlinuz {COMMON} e2e=usual
    initrd /boot/second.img
}}
menuentry 'Writes one-shot' --id oneshot {{
    recordfail
    linux /boot/vmlinuz {COMMON} e2e=oneshot
    initrd /boot/second.img
}}
"""
BLS_ENTRY = f"title Counted\nversion 6.1\nlinux /vmlinuz\ninitrd /second.img\noptions {COMMON} e2e=counted\n"


def editenv(path: Path, *args: str) -> str:
    proc = subprocess.run([str(GRUB_EDITENV), str(path), *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"grub-editenv {path} {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def partition(image: Path, out: Path) -> Path:
    """The first partition of a GPT image, copied out (no loop devices on the host)."""
    table = json.loads(subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, check=True).stdout)
    part = table["partitiontable"]["partitions"][0]
    with image.open("rb") as f:
        f.seek(part["start"] * 512)
        out.write_bytes(f.read(part["size"] * 512))
    return out


def debugfs(image: Path, request: str) -> str:
    return subprocess.run(["debugfs", "-R", request, str(image)], capture_output=True, text=True, check=True).stdout


def run_to_second_kernel(kernel: Path, payload: Path, disk: Path, transcript: Path) -> tuple[str, str]:
    """The second kernel's command line and the console up to it, terminal escapes removed (the menu's status
    lines name each write before the jump)."""
    config = VmConfig(
        kernel=kernel,
        initrd=payload,
        append=f"{BASE_APPEND} bootmenu.timeout=1",
        disks=(Disk(disk, snapshot=False),),
    )
    with SerialVm(config, timeout=VM_TIMEOUT + 120, transcript=transcript) as vm:
        try:
            match = vm.expect(re.escape(SECOND_STAGE_MARKER).encode() + rb"([^\r\n]*)[\r\n]", timeout=BOOT_TIMEOUT)
        except Exception:
            raise AssertionError(f"no second kernel; the console:\n{vm.tail(60)}") from None
        cmdline = match.group(1).decode()
        print(f"\nsecond kernel {vm.elapsed():.1f} s after QEMU started")
        vm.wait_exit(timeout=60)  # it powers off: QEMU has flushed the image
        console = ESCAPES.sub("", vm.transcript.decode("utf-8", "replace"))
    return cmdline, console


def show_status_line(console: str, pattern: str) -> None:
    """Print the write's status line when the menu drew it before the jump (a race with kexec, so not asserted:
    the images are the evidence)."""
    found = re.search(pattern, console)
    print(found.group(0) if found else f"(the menu did not draw {pattern!r} before the jump)")


def test_grubenv_block_rewritten_in_place(kernel: Path, payload: Path, tmp_path: Path) -> None:
    if not GRUB_EDITENV.exists():
        pytest.fail("no grub-editenv: run `make grub-editenv` first")
    tree = tmp_path / "tree"
    (tree / "boot" / "grub").mkdir(parents=True)
    (tree / "boot" / "grub" / "grub.cfg").write_text(GRUB_CFG)
    env = tree / "boot" / "grub" / "grubenv"
    editenv(env, "create")
    editenv(env, "set", "saved_entry=usual", "next_entry=oneshot")
    (tree / ".bootmenu-fs").write_text("label=writes-grub\nfstype=ext4\n")
    image = disks.disk_from_directory(
        tree, tmp_path / "grub.img", {"boot/vmlinuz": kernel, "boot/second.img": second_initrd(tmp_path)}
    )
    before = partition(image, tmp_path / "before.ext4")
    inode_before = debugfs(before, "stat /boot/grub/grubenv")

    cmdline, console = run_to_second_kernel(kernel, payload, image, tmp_path / "console.log")
    assert "e2e=oneshot" in cmdline.split(), "grub-reboot's next_entry was the default"
    show_status_line(
        console,
        # A long status line wraps onto the next screen row.
        r"grubenv \S+:/boot/grub/grubenv: wrote next_entry=, recordfail=1 in place\s*"
        r"\(FIEMAP: 1024 bytes at \d+ of /dev/vda1; read back\)",
    )

    after = partition(image, tmp_path / "after.ext4")
    debugfs(after, f"dump /boot/grub/grubenv {tmp_path / 'grubenv'}")
    block = (tmp_path / "grubenv").read_bytes()
    assert len(block) == 1024
    assert editenv(tmp_path / "grubenv", "list").splitlines() == ["saved_entry=usual", "next_entry=", "recordfail=1"]
    # Only the data block changed: same inode, size and block list; the filesystem needs no repair.
    strip = re.compile(r"^.*time.*$", re.MULTILINE)
    assert strip.sub("", debugfs(after, "stat /boot/grub/grubenv")) == strip.sub("", inode_before)
    fsck = subprocess.run(["e2fsck", "-fn", str(after)], capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_bls_boot_counting_renames_the_entry(kernel: Path, payload: Path, tmp_path: Path) -> None:
    tree = tmp_path / "esp"
    (tree / "loader" / "entries").mkdir(parents=True)
    (tree / "loader" / "entries" / "counted+3-0.conf").write_text(BLS_ENTRY)
    (tree / ".bootmenu-fs").write_text("label=WRITESESP\nfstype=vfat\n")
    image = disks.disk_from_directory(
        tree, tmp_path / "esp.img", {"vmlinuz": kernel, "second.img": second_initrd(tmp_path)}
    )
    cmdline, console = run_to_second_kernel(kernel, payload, image, tmp_path / "console.log")
    assert "e2e=counted" in cmdline.split()
    show_status_line(console, r"boot counting: renamed \S+:/loader/entries/counted\+3-0\.conf to counted\+2-1\.conf")
    esp = partition(image, tmp_path / "esp.vfat")
    listing = subprocess.run(
        ["mdir", "-b", "-i", str(esp), "::/loader/entries"],
        capture_output=True,
        text=True,
        check=True,
        env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"},
    ).stdout
    assert [Path(line).name for line in listing.split()] == ["counted+2-1.conf"]
    fsck = subprocess.run(["fsck.vfat", "-n", str(esp)], capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
