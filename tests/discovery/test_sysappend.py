"""syslinux SYSAPPEND/IPAPPEND words: discovery.dmi reads them from an SMBIOS table and cpuinfo (fake files: the
sysfs/procfs boundary), discovery.syslinux adds them to each label's command line as syslinux 6.04 does. Checked
against real syslinux on QEMU's SMBIOS by tests/conformance (the append-words fixture)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from discovery import dmi, syslinux
from discovery.dmi import Sysappend
from discovery.fs import Filesystem

UUID = bytes.fromhex("00112233445566778899aabbccddeeff")


def structure(kind: int, formatted: bytes, *strings: bytes) -> bytes:
    """One SMBIOS structure: type, length, handle, the rest of the formatted area, its strings, double NUL."""
    head = struct.pack("<BBH", kind, 4 + len(formatted), 0x100 + kind) + formatted
    return head + (b"\0".join(strings) + b"\0\0" if strings else b"\0\0")


def table(uuid: bytes = UUID) -> bytes:
    # type 1: vendor 1, product 2, version 3, serial 0 (absent), uuid, wake-up, sku 4, family 5
    system = structure(1, bytes([1, 2, 3, 0]) + uuid + b"\x06" + bytes([4, 5]),
                       b"  Acme  Corp ", b"Model\tX  1", b"   ", b"SKU-9", b"Fam")  # fmt: skip
    board = structure(2, bytes([1, 2, 0, 0, 3]), b"Board Co", b"B-1", b"Asset #7")
    bios = structure(0, bytes([1, 2, 0, 0]), b"SeaBIOS", b"1.16.2")
    chassis = structure(3, bytes([0, 0x81]))  # manufacturer absent, type 1 with the lock bit
    return bios + system + board + chassis + structure(127, b"")


# The first processor's block is read (a later one's flags do not count).
CPUINFO = "\n".join(
    ("processor\t: 0", "vendor_id\t: AuthenticAMD", "cpu family\t: 15", "flags\t\t: fpu pae nx lm svm", "",
     "processor\t: 1", "flags\t\t: vmx", "")
)  # fmt: skip


def test_words_from_the_table_as_syslinux_makes_them() -> None:
    words = dict(Sysappend.from_tables(table(), CPUINFO).words)
    assert words == {
        dmi.SYSUUID: "SYSUUID=00112233-4455-6677-8899-aabbccddeeff",
        dmi.CPU: "CPU=6PXLS",
        4: "SYSVENDOR=Acme_Corp",
        5: "SYSPRODUCT=Model_X_1",
        8: "SYSSKU=SKU-9",
        9: "SYSFAMILY=Fam",
        10: "MBVENDOR=Board_Co",
        11: "MBPRODUCT=B-1",
        14: "MBASSET=Asset_#7",
        15: "BIOSVENDOR=SeaBIOS",
        16: "BIOSVERSION=1.16.2",
        dmi.SYSFF: "SYSFF=1",
    }  # version (blanks only) and serial (string 0) give no word


@pytest.mark.parametrize("byte6", [0x00, 0x0F, 0xF0, 0xFF])
def test_a_uuid_without_a_version_gives_no_word(byte6: int) -> None:
    uuid = UUID[:6] + bytes([byte6]) + UUID[7:]
    assert Sysappend.from_tables(table(uuid)).get(dmi.SYSUUID) is None


def test_cpu_word_family_below_six_and_no_x86_cpuinfo() -> None:
    assert dmi.cpu_word("cpu family\t: 5\nflags\t: fpu\n") == "CPU=5"
    assert dmi.cpu_word("cpu family\t: 6\nflags\t: vmx smx pae\n") == "CPU=6PVT"
    assert dmi.cpu_word("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\n") is None


def test_unreadable_or_truncated_tables_give_no_words(tmp_path: Path) -> None:
    assert Sysappend.detect(tmp_path / "missing", tmp_path / "missing") == Sysappend()
    cut = tmp_path / "DMI"
    cut.write_bytes(table()[:20])  # the type 0 structure without its string terminator
    assert Sysappend.detect(cut, tmp_path / "missing") == Sysappend()


CONFIG = """SYSAPPEND 0x30
LABEL global
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND a=1
LABEL own
  LINUX /vmlinuz
  APPEND b=2
  SYSAPPEND 0x40004
LABEL pxe
  LINUX /vmlinuz
  IPAPPEND 3
LABEL fs
  LINUX /vmlinuz
  SYSAPPEND 0x40000
  SYSAPPEND 0
  SYSAPPEND 0x40000
"""


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "sda1"
    (root / "syslinux").mkdir(parents=True)
    (root / "syslinux" / "syslinux.cfg").write_text(CONFIG)
    for name in ("vmlinuz", "initrd.img", "syslinux/ldlinux.sys"):
        (root / name).write_bytes(b"x")
    return root


@pytest.mark.parametrize(
    ("fstype", "uuid", "fs_word"),
    [("vfat", "1a2b-3c4d", "FSUUID=1A2B-3C4D"), ("ext4", "0A1B2C3D-0000-4000-8000-00000000ABCD",
      "FSUUID=0a1b2c3d-0000-4000-8000-00000000abcd"), ("iso9660", "2024-01-01-00-00-00-00", None)],
)  # fmt: skip
def test_labels_get_the_words_of_their_mask(tmp_path: Path, fstype: str, uuid: str, fs_word: str | None) -> None:
    fs = Filesystem(root=_tree(tmp_path), name="sda1", fstype=fstype, uuid=uuid)
    words = Sysappend.from_tables(table(), CPUINFO)
    entries = {e.id: e for e in syslinux.load_config(fs, "/syslinux/syslinux.cfg", sysappend=words).entries}
    # After the APPEND and INITRD's initrd= word, in bit order; the global mask in force at LABEL, else the label's
    # (its last SYSAPPEND: inside a label block the directive is the label's).
    assert entries["global"].kernel_cmdline() == (
        "BOOT_IMAGE=/vmlinuz a=1 initrd=/initrd.img SYSVENDOR=Acme_Corp SYSPRODUCT=Model_X_1"
    )
    own = "BOOT_IMAGE=/vmlinuz b=2 SYSUUID=00112233-4455-6677-8899-aabbccddeeff"
    assert entries["own"].kernel_cmdline() == " ".join(filter(None, (own, fs_word)))
    assert entries["pxe"].kernel_cmdline() == "BOOT_IMAGE=/vmlinuz"  # ip=/BOOTIF= exist under PXELINUX only
    assert entries["fs"].kernel_cmdline() == " ".join(filter(None, ("BOOT_IMAGE=/vmlinuz", fs_word)))


def test_without_the_machines_words_nothing_is_added(tmp_path: Path) -> None:
    fs = Filesystem(root=_tree(tmp_path), name="sda1", fstype="iso9660")
    entries = {e.id: e for e in syslinux.load_config(fs, "/syslinux/syslinux.cfg").entries}
    assert entries["global"].kernel_cmdline() == "BOOT_IMAGE=/vmlinuz a=1 initrd=/initrd.img"


@pytest.mark.parametrize(
    ("text", "mask"),
    [("0x30", 0x30), (" 48 junk", 48), ("060", 0o60), ("0x", 0), ("-1", 0xFFFFFFFF), ("", 0), ("zz", 0),
     ("99999999999", 0xFFFFFFFF)],
)  # fmt: skip
def test_masks_are_read_as_strtoul_base_0(text: str, mask: int) -> None:
    assert syslinux._strtoul(text) == mask


def test_scan_json_shows_the_words(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (root / ".bootmenu-fs").write_text("fstype=vfat\nuuid=1A2B-3C4D\n")
    dmi_table, cpuinfo = tmp_path / "DMI", tmp_path / "cpuinfo"
    dmi_table.write_bytes(table())
    cpuinfo.write_text(CPUINFO)
    argv = [sys.executable, "-m", "bootmenu", "scan", "--json", "--dmi-table", str(dmi_table), "--cpuinfo",
            str(cpuinfo), str(root)]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    entries = {e["id"]: e for e in json.loads(out)}
    assert entries["own"]["loader_tail"] == ["SYSUUID=00112233-4455-6677-8899-aabbccddeeff", "FSUUID=1A2B-3C4D"]
    assert entries["global"]["loader_tail"] == ["initrd=/initrd.img", "SYSVENDOR=Acme_Corp", "SYSPRODUCT=Model_X_1"]
