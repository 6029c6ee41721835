"""Image inspection: the real Debian kernel, and crafted headers for every format and malformed case."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kexec_core.arch import Arch
from kexec_core.errors import ImageError
from kexec_core.image import ImageKind, inspect_kernel
from kexec_core.initrd import InitrdFormat, inspect_initrd
from tests.kexec_core.kexec_craft import arm64_image, bzimage, elf64, gz, newc, pe, riscv_image, write, xz, zst


def test_real_debian_kernel(kernel_image: Path) -> None:
    info = inspect_kernel(kernel_image)
    assert info.kind is ImageKind.BZIMAGE
    assert info.arch is Arch.X86_64
    # The file name says the version the header must carry.
    assert info.version == kernel_image.name.removeprefix("vmlinuz-")
    hdr = info.bzimage
    assert hdr is not None
    assert hdr.protocol >= (2, 12)
    assert hdr.relocatable
    assert hdr.kexec_file_problems() == []
    assert hdr.cmdline_size >= 2047
    assert hdr.init_size is not None
    assert hdr.init_size > info.size
    assert hdr.efi_handover
    assert str(hdr.payload_compression) in {"xz", "gzip", "zstd", "lz4", "lzma", "bzip2", "lzo"}
    assert "6.1" in info.summary()
    assert "x86_64" in info.summary()


def test_real_module_is_elf_relocatable(kernel_root: Path) -> None:
    ko = next(p for p in (kernel_root / "lib" / "modules").rglob("*.ko*") if p.suffix == ".ko")
    info = inspect_kernel(ko)
    assert info.kind is ImageKind.ELF
    assert info.elf is not None
    assert info.elf.type == "ET_REL"
    assert info.arch is Arch.X86_64


@pytest.mark.parametrize(
    ("data", "kind", "arch"),
    [
        (bzimage(), ImageKind.BZIMAGE, Arch.X86_64),
        (bzimage(xloadflags=0), ImageKind.BZIMAGE, Arch.X86),
        (arm64_image(), ImageKind.IMAGE, Arch.ARM64),
        (riscv_image(), ImageKind.IMAGE, Arch.RISCV64),
        (elf64(), ImageKind.ELF, Arch.X86_64),
        (elf64(machine=183), ImageKind.ELF, Arch.ARM64),
        (pe([(".text", b"\xc3" * 64)]), ImageKind.PE, Arch.X86_64),
        (pe([(".linux", bzimage(size=4096)), (".osrel", b'PRETTY_NAME="Test OS"\n')]), ImageKind.UKI, Arch.X86_64),
        (pe([(".data", zst(arm64_image()))], machine=0xAA64, zboot="zstd22"), ImageKind.EFI_ZBOOT, Arch.ARM64),
        (gz(arm64_image()), ImageKind.COMPRESSED, Arch.ARM64),
        (xz(elf64()), ImageKind.COMPRESSED, Arch.X86_64),
    ],
)
def test_identify_crafted(tmp_path: Path, data: bytes, kind: ImageKind, arch: Arch) -> None:
    path = write(tmp_path / "kernel", data)
    assert ImageKind.identify(path) is (ImageKind.PE if kind is ImageKind.UKI else kind)
    info = inspect_kernel(path)
    assert info.kind is kind
    assert info.arch is arch


def test_bzimage_fields(tmp_path: Path) -> None:
    info = inspect_kernel(write(tmp_path / "bz", bzimage(protocol=0x020C, cmdline_size=1024, init_size=12345)))
    assert info.bzimage is not None
    assert info.bzimage.protocol_str == "2.12"
    assert info.cmdline_size == 1024
    assert info.memory_needed == 12345
    assert info.version == "6.6.0-test"
    assert info.bzimage.handover_offset is not None  # protocol 2.11+ has the field
    assert str(info.bzimage.payload_compression) == "xz"


def test_old_protocol_fields_are_absent(tmp_path: Path) -> None:
    info = inspect_kernel(write(tmp_path / "bz", bzimage(protocol=0x0204, relocatable=1)))
    assert info.bzimage is not None
    assert not info.bzimage.relocatable  # the field did not exist before 2.05
    assert info.bzimage.cmdline_size == 255
    assert info.bzimage.init_size is None
    assert "older than 2.12" in " ".join(info.bzimage.kexec_file_problems())


def test_uki_sections_and_texts(tmp_path: Path) -> None:
    data = pe(
        [
            (".osrel", b'ID=test\nPRETTY_NAME="Test OS 1"\n'),
            (".cmdline", b"root=/dev/vda quiet\0"),
            (".uname", b"6.6.0-uki\n"),
            (".linux", bzimage(size=4096)),
            (".initrd", newc("init", b"#!/bin/sh\n")),
        ]
    )
    info = inspect_kernel(write(tmp_path / "uki.efi", data))
    assert info.pe is not None
    assert [s.name for s in info.pe.sections] == [".osrel", ".cmdline", ".uname", ".linux", ".initrd"]
    assert info.pe.os_pretty_name == "Test OS 1"
    assert info.pe.text(".cmdline") == "root=/dev/vda quiet"
    assert info.version == "6.6.0-uki"
    assert ".linux" in info.summary()


def test_zboot_payload(tmp_path: Path) -> None:
    payload = gz(arm64_image())
    info = inspect_kernel(write(tmp_path / "vmlinuz.efi", pe([(".data", payload)], machine=0xAA64, zboot="gzip")))
    assert info.zboot is not None
    assert info.zboot.compression == "gzip"
    assert info.zboot.payload_size == len(payload)
    assert info.inner is not None
    assert info.inner.kind is ImageKind.IMAGE


def test_elf_segments(tmp_path: Path) -> None:
    info = inspect_kernel(write(tmp_path / "vmlinux", elf64(segments=3, entry=0x1234000)))
    assert info.elf is not None
    assert info.elf.elfclass == 64
    assert info.elf.entry == 0x1234000
    assert [s.paddr for s in info.elf.segments] == [0x1000000, 0x1200000, 0x1400000]
    assert info.memory_needed == 3 * 0x200000


def test_compressed_kernel_inner(tmp_path: Path) -> None:
    info = inspect_kernel(write(tmp_path / "Image.gz", gz(arm64_image())))
    assert info.compression is not None
    assert str(info.compression) == "gzip"
    assert info.inner is not None
    assert info.inner.kind is ImageKind.IMAGE
    assert info.summary().startswith("gzip-compressed Image")


def test_zstd_compressed_kernel(tmp_path: Path) -> None:
    raw = write(tmp_path / "Image", arm64_image())
    subprocess.run(["zstd", "-q", "-f", str(raw), "-o", str(tmp_path / "Image.zst")], check=True)
    info = inspect_kernel(tmp_path / "Image.zst")
    assert str(info.compression) == "zstd"
    assert info.inner is not None
    assert info.inner.arch is Arch.ARM64


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (bzimage()[:0x230], "truncated bzImage"),
        (bzimage(protocol=0x0105), "unsupported boot protocol 1.05"),
        (bzimage()[:0x1FE] + b"\0\0" + bzimage()[0x200:], "boot_flag"),
        (b"\x7fELF" + b"\x02\x01\x01" + bytes(9), "malformed ELF"),
        (elf64()[:200], "truncated ELF"),
        (pe([(".text", b"x" * 600)], truncate=100), "truncated PE file: section .text"),
        (b"MZ" + bytes(0x3A) + b"\x80\0\0\0" + bytes(0x60), "no 'PE' signature"),
        (b"\x1f\x8b\x08\x00" + b"garbage!" * 8, "corrupt gzip data"),
        (b"\xfd7zXZ\x00" + b"garbage!" * 8, "corrupt xz data"),
        (arm64_image(image_size=0), "pre-3.17"),
        (b"hello, this is not a kernel", "not a kernel image: unknown format"),
    ],
)
def test_malformed_images_name_file_and_problem(tmp_path: Path, data: bytes, message: str) -> None:
    path = write(tmp_path / "broken", data)
    with pytest.raises(ImageError) as err:
        inspect_kernel(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        inspect_kernel(tmp_path / "nope")
    with pytest.raises(ImageError, match="is a directory"):
        inspect_kernel(tmp_path)


@pytest.mark.parametrize(
    ("data", "fmt", "inner"),
    [
        (newc("init", b"x"), InitrdFormat.CPIO_NEWC, None),
        (b"070702" + bytes(200), InitrdFormat.CPIO_CRC, None),
        (b"070707" + bytes(200), InitrdFormat.CPIO_ODC, None),
        (gz(newc("init", b"x")), InitrdFormat.COMPRESSED, InitrdFormat.CPIO_NEWC),
        (xz(newc("init", b"x")), InitrdFormat.COMPRESSED, InitrdFormat.CPIO_NEWC),
        (b"squashfs?" * 10, InitrdFormat.UNKNOWN, None),
    ],
)
def test_initrd_formats(tmp_path: Path, data: bytes, fmt: InitrdFormat, inner: InitrdFormat | None) -> None:
    info = inspect_initrd(write(tmp_path / "initrd", data))
    assert info.format is fmt
    assert info.inner is inner
    assert info.size == len(data)
    if fmt in (InitrdFormat.UNKNOWN, InitrdFormat.CPIO_ODC):
        assert info.warning is not None
        assert str(info.path) in info.warning
    else:
        assert info.warning is None


def test_initrd_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such initrd"):
        inspect_initrd(tmp_path / "missing.img")
    with pytest.raises(ImageError, match="empty initrd"):
        inspect_initrd(write(tmp_path / "empty.img", b""))
    with pytest.raises(ImageError, match="corrupt gzip"):
        inspect_initrd(write(tmp_path / "bad.gz", b"\x1f\x8b\x08\x00" + bytes(6) + b"\xff" * 40))
    unreadable = write(tmp_path / "secret.img", newc("a", b"b"))
    unreadable.chmod(0)
    if not _can_read(unreadable):  # root reads anything
        with pytest.raises(ImageError, match="permission denied"):
            inspect_initrd(unreadable)


def _can_read(path: Path) -> bool:
    try:
        path.read_bytes()
    except PermissionError:
        return False
    return True


def test_every_prefix_of_a_real_kernel_is_a_clean_error_or_valid(kernel_image: Path, tmp_path: Path) -> None:
    """Truncated anywhere in its headers, the real kernel gives ImageError naming the file, never another exception."""
    head = kernel_image.read_bytes()[:0x300]
    messages = []
    for size in range(1, len(head), 5):
        path = write(tmp_path / f"cut{size}", head[:size])
        try:
            inspect_kernel(path)
        except ImageError as err:
            messages.append((path, str(err)))
    assert messages
    assert all(message.startswith(f"{path}: ") for path, message in messages)
