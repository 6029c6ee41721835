"""Files that are not kernels, or not whole ones, are refused before anything is loaded (issue 9, item 5).

Programs (/bin/ls), FIFOs and devices (/dev/zero), and the real Debian bzImage and its vmlinux cut short.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bootmenu.cli import main
from kexec_core import boot
from kexec_core.arch import Arch
from kexec_core.errors import ImageError, PreflightError
from kexec_core.image import ImageKind, inspect_kernel
from kexec_core.initrd import inspect_initrd
from tests.kexec_core.kexec_craft import bzimage, elf64, newc, write

# A hung inspection is the bug being tested: the CLI runs in a child that is killed after this long.
HANG_GUARD = 60


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bootmenu.cli", "kexec", *argv],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        check=False,
    )


def inspect_exit(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str]:
    code = main(["kexec", "inspect", str(path)])
    return code, capsys.readouterr().err


# --- programs ----------------------------------------------------------------------------------------------------


def test_bin_ls_is_a_program_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    ls = Path(shutil.which("ls") or "/bin/ls").resolve()
    code, err = inspect_exit(capsys, ls)
    assert code == 3
    assert f"{ls}: a program, not a kernel" in err
    assert "interpreter /lib" in err  # it names what gave it away
    with pytest.raises(PreflightError, match="a program, not a kernel"):
        boot.prepare(ls, [], "", machine=Arch.X86_64)


def test_python_interpreter_is_a_program() -> None:
    with pytest.raises(ImageError, match="a program, not a kernel"):
        inspect_kernel(Path(sys.executable).resolve())


def test_position_independent_without_kernel_markers_is_a_program(tmp_path: Path) -> None:
    # A static PIE has no PT_INTERP, only ET_DYN.
    with pytest.raises(ImageError, match=r"a program, not a kernel: an ET_DYN ELF file \(it is position-independent"):
        inspect_kernel(write(tmp_path / "static-pie", elf64(e_type=3)))


def test_real_vmlinux_is_a_kernel_even_as_et_dyn(debian_vmlinux: Path, tmp_path: Path) -> None:
    info = inspect_kernel(debian_vmlinux)
    assert info.kind is ImageKind.ELF
    assert info.elf is not None
    assert info.elf.type == "ET_EXEC"
    assert info.elf.interpreter is None
    assert {"Linux note", "Xen note", "__ksymtab", ".init.text"} <= set(info.elf.kernel_markers)
    # Relocatable arm64/RISC-V kernels are ET_DYN: the markers keep such a vmlinux a kernel.
    data = bytearray(debian_vmlinux.read_bytes())
    struct.pack_into("<H", data, 16, 3)
    pie = inspect_kernel(write(tmp_path / "vmlinux-dyn", bytes(data)))
    assert pie.elf is not None
    assert pie.elf.type == "ET_DYN"
    assert not pie.elf.is_program


def test_kernel_module_is_still_described(kernel_root: Path) -> None:
    ko = next(p for p in (kernel_root / "lib" / "modules").rglob("*.ko"))
    info = inspect_kernel(ko)
    assert info.elf is not None
    assert not info.elf.is_program


# --- FIFOs and devices ---------------------------------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "vmlinuz.fifo"
    os.mkfifo(path)
    return path


def test_fifo_inspect_is_refused_not_hung(fifo: Path) -> None:
    proc = cli("inspect", str(fifo))
    assert proc.returncode == 3
    assert f"{fifo}: is a FIFO (named pipe), not a kernel image" in proc.stderr


def test_fifo_load_dry_run_is_refused_not_hung(fifo: Path, tmp_path: Path) -> None:
    proc = cli("load", str(fifo), "--dry-run")
    assert proc.returncode == 3
    assert "is a FIFO (named pipe)" in proc.stderr
    kernel = write(tmp_path / "vmlinuz", bzimage())
    proc = cli("load", str(kernel), "--initrd", str(fifo), "--dry-run")
    assert proc.returncode == 3
    assert f"{fifo}: is a FIFO (named pipe), not an initrd" in proc.stderr


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_character_device_is_refused_not_empty(capsys: pytest.CaptureFixture[str], device: str) -> None:
    code, err = inspect_exit(capsys, Path(device))
    assert code == 3
    assert f"{device}: is a character device, not a kernel image" in err
    assert "empty" not in err
    with pytest.raises(ImageError, match="is a character device, not an initrd"):
        inspect_initrd(Path(device))


def test_symlink_to_a_regular_file_is_followed(tmp_path: Path) -> None:
    target = write(tmp_path / "vmlinuz-6.6", bzimage())
    link = tmp_path / "vmlinuz"
    link.symlink_to(target.name)
    assert inspect_kernel(link).kind is ImageKind.BZIMAGE
    rd = write(tmp_path / "initrd.img-6.6", newc("init", b"x"))
    (tmp_path / "initrd.img").symlink_to(rd.name)
    assert inspect_initrd(tmp_path / "initrd.img").size == rd.stat().st_size


def test_socket_is_refused(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(ImageError, match="is a socket, not a kernel image"):
            inspect_kernel(path)


# --- truncated images ----------------------------------------------------------------------------------------------


def _cut(src: Path, dst: Path, size: int) -> Path:
    with src.open("rb") as f:
        dst.write_bytes(f.read(size))
    return dst


@pytest.mark.parametrize("size", [1024 * 1024, 8_000_000])
def test_truncated_real_bzimage_fails_preflight(
    capsys: pytest.CaptureFixture[str], kernel_image: Path, tmp_path: Path, size: int
) -> None:
    assert kernel_image.stat().st_size > size
    cut = _cut(kernel_image, tmp_path / "vmlinuz", size)
    code, err = inspect_exit(capsys, cut)
    assert code == 3
    assert f"{cut}: truncated bzImage" in err
    assert f"the file has only {size} bytes" in err
    with pytest.raises(PreflightError, match="truncated bzImage"):
        boot.prepare(cut, [], "", machine=Arch.X86_64)


def test_bzimage_cut_exactly_at_syssize_is_whole(kernel_image: Path, tmp_path: Path) -> None:
    """What follows setup + syssize (Debian's appended Authenticode signature) is optional; one byte less is not."""
    hdr = inspect_kernel(kernel_image).bzimage
    assert hdr is not None
    end = hdr.setup_size + hdr.syssize * 16
    assert hdr.payload_offset is not None
    assert hdr.payload_length is not None
    assert hdr.setup_size + hdr.payload_offset + hdr.payload_length <= end <= kernel_image.stat().st_size
    assert inspect_kernel(_cut(kernel_image, tmp_path / "whole", end)).bzimage == hdr
    with pytest.raises(ImageError, match=r"syssize \d+ paragraphs\) ends at byte"):
        inspect_kernel(_cut(kernel_image, tmp_path / "short", end - 1))


def test_bzimage_header_fields_each_checked(tmp_path: Path) -> None:
    whole = bzimage(size=16384)
    with pytest.raises(ImageError, match=r"the setup code \(4 setup sectors\) ends at byte 2560"):
        inspect_kernel(write(tmp_path / "a", whole[:2000]))
    payload_past = bytearray(whole)
    struct.pack_into("<I", payload_past, 0x1F4, 0)  # syssize 0: only the payload check is left
    struct.pack_into("<I", payload_past, 0x24C, 16384)
    with pytest.raises(ImageError, match=r"payload_offset 256 \+ payload_length 16384\) ends at byte 19200"):
        inspect_kernel(write(tmp_path / "b", bytes(payload_past)))


def test_truncated_uki_linux_section_is_judged_by_its_size(tmp_path: Path) -> None:
    from tests.kexec_core.kexec_craft import pe

    linux = bzimage(size=8192)
    data = bytearray(pe([(".linux", linux[:6000])]))
    with pytest.raises(ImageError, match=r"UKI \.linux section: truncated bzImage"):
        inspect_kernel(write(tmp_path / "uki.efi", bytes(data)))


def test_truncated_real_vmlinux_names_its_pt_load(debian_vmlinux: Path, tmp_path: Path) -> None:
    info = inspect_kernel(debian_vmlinux)
    assert info.elf is not None
    last = info.elf.segments[-1]
    cut = _cut(debian_vmlinux, tmp_path / "vmlinux", last.offset + last.filesz // 2)
    with pytest.raises(ImageError) as err:
        inspect_kernel(cut)
    message = str(err.value)
    assert message.startswith(f"{cut}: truncated ELF: PT_LOAD segment")
    assert f"{last.offset}..{last.offset + last.filesz}" in message
    # Every PT_LOAD is checked, not just the last: cut inside the first one.
    first = info.elf.segments[0]
    with pytest.raises(ImageError, match=f"file bytes {first.offset}..{first.offset + first.filesz}"):
        inspect_kernel(_cut(debian_vmlinux, tmp_path / "vmlinux1", first.offset + 4096))
