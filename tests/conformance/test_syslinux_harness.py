"""The syslinux harness's host-side parts (tests/conformance/syslinux_qemu.py), without QEMU: reading the test
initrds' markers out of a ramdisk dump, titles as the screen shows them, answers and progress as stored."""

from __future__ import annotations

from pathlib import Path

from tests.conformance import syslinux_qemu
from tests.conformance.syslinux_qemu import Answer, Item


def _initrd(tmp_path: Path, marker: str) -> bytes:
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF not really busybox" * 100)
    out = tmp_path / f"initrd-{len(list(tmp_path.iterdir()))}"
    return syslinux_qemu.test_initrd(out, marker, busybox).read_bytes()


def test_markers_are_read_from_the_ramdisk_syslinux_loaded(tmp_path: Path) -> None:
    a, b = _initrd(tmp_path, "/boot/a.img"), _initrd(tmp_path, "/boot/b.img")
    assert a.startswith(b"070701")  # the uncompressed marker archive first, then the gzip part
    assert b"\x1f\x8b" in a
    # One after another, as syslinux loads an initrd= list (each aligned), and what follows in memory.
    ramdisk = a + b"\0" * (-len(a) % 4) + b + b"\0" * 64
    assert syslinux_qemu.initrd_markers(ramdisk) == ("/boot/a.img", "/boot/b.img")


def test_memory_that_is_not_a_test_initrd_gives_no_markers(tmp_path: Path) -> None:
    assert syslinux_qemu.initrd_markers(b"\0" * 4096) is None
    assert syslinux_qemu.initrd_markers(b"\x1f\x8b" + _initrd(tmp_path, "/x.img")) is None


def test_titles_drop_the_scrollbar_thumb_but_keep_exit_marks() -> None:
    strip = syslinux_qemu.SCROLLBAR.sub
    assert strip(r"\1", "Bulgarian (bg)                         a") == "Bulgarian (bg)"
    assert strip(r"\1", "Back                                < a") == "Back                                <"
    assert strip(r"\1", "Utilities                           >") == "Utilities                           >"
    assert strip(r"\1", "Tamil (ta)") == "Tamil (ta)"
    assert syslinux_qemu._title("Utilities                        >") == ("Utilities", True)


def test_answers_and_progress_round_trip(tmp_path: Path) -> None:
    item = Item(path=("Sub", "Linux"), outcome="linux", cmdline="BOOT_IMAGE=/k ", initrds=("/i",), note="/k /i")
    answer = Answer(config="/c.cfg", device="sda1", medium="fat", ui="menu", items=(item,), default=item, dmi="7f04")
    path = tmp_path / "answers.json"
    syslinux_qemu.save_answers(path, {"key": [answer]})
    assert syslinux_qemu.load_answers(path) == {"key": [answer]}
    progress = tmp_path / "progress" / "p.json"
    syslinux_qemu.save_progress(progress, {(1, 3): item, (0,): item})
    assert syslinux_qemu.load_progress(progress) == {(1, 3): item, (0,): item}
    assert syslinux_qemu.load_progress(tmp_path / "none.json") == {}
