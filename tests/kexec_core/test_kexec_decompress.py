"""Compressed kernels (issue 13): decompressed in user space to a memfd, loaded from there, bombs refused.

Inputs are real: the Debian bzImage and the ELF vmlinux of its payload, compressed in the test by the same programs
the kernel build uses (gzip, zstd, xz, lzma, lz4 -l, bzip2), and EFI zboot images built around them per
drivers/firmware/efi/libstub/zboot-header.S.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bootmenu.cli import main
from kexec_core import boot
from kexec_core.arch import Arch
from kexec_core.compress import Compression
from kexec_core.errors import ImageError, PreflightError
from kexec_core.image import ImageKind, Options, inspect_kernel
from tests.kexec_core.conftest import FakeBackend
from tests.kexec_core.kexec_craft import arm64_image, bzimage, pe, write

MIB = 1024 * 1024

# How each format is made, as the kernel's scripts/Makefile.lib does (at the fastest level: the tests are about
# the format, not the ratio). lz4 -l is the legacy frame the kernel's lz4 uses; xz gets --check=crc32 like xzkern.
COMPRESSORS: dict[Compression, list[str]] = {
    Compression.GZIP: ["gzip", "-n", "-1", "-c"],
    Compression.ZSTD: ["zstd", "-q", "-1", "-c"],
    Compression.XZ: ["xz", "-0", "--check=crc32", "-c"],
    Compression.LZMA: ["xz", "--format=lzma", "-0", "-c"],
    Compression.LZ4: ["lz4", "-q", "-l", "-1", "-c"],
    Compression.BZIP2: ["bzip2", "-1", "-c"],
}
# Where each format (as made above) says how big it is: the cap the output is held to.
CAP_SOURCES = {
    Compression.GZIP: "the gzip ISIZE trailer",
    Compression.ZSTD: "the zstd frame header",
    Compression.XZ: "the xz index",
    Compression.LZMA: "the decompression limit",  # xz writes "size unknown" in .lzma headers
    Compression.LZ4: "the decompression limit",  # the legacy frame has no size
    Compression.BZIP2: "the decompression limit",
}


def compress(comp: Compression, src: Path, dst: Path) -> Path:
    with dst.open("wb") as out:
        subprocess.run([*COMPRESSORS[comp], str(src)], stdout=out, check=True)
    return dst


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def meminfo(tmp_path: Path) -> Path:
    return write(tmp_path / "meminfo", b"MemTotal:  8000000 kB\nMemAvailable:  4000000 kB\n")


@pytest.fixture(scope="module")
def compressed_bzimages(kernel_image: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[Compression, Path]:
    out = tmp_path_factory.mktemp("compressed")
    return {c: compress(c, kernel_image, out / f"vmlinuz.{c}") for c in COMPRESSORS}


@pytest.mark.parametrize("comp", list(COMPRESSORS))
def test_compressed_real_kernel_is_decompressed_and_loaded(
    comp: Compression,
    compressed_bzimages: dict[Compression, Path],
    kernel_image: Path,
    fake_backend: FakeBackend,
    meminfo: Path,
) -> None:
    path = compressed_bzimages[comp]
    original = kernel_image.read_bytes()
    plan = boot.prepare(path, [], "console=ttyS0", machine=Arch.X86_64, meminfo=meminfo)
    try:
        info = plan.kernel
        assert info.kind is ImageKind.COMPRESSED
        assert info.compression is comp
        assert info.inner is not None
        assert info.inner.kind is ImageKind.BZIMAGE
        assert info.version == kernel_image.name.removeprefix("vmlinuz-")
        assert info.decompressed is not None
        assert info.decompressed.size == len(original)
        assert info.decompressed.cap.source.startswith(CAP_SOURCES[comp])
        text = "\n".join(plan.describe())
        assert f"decompressed ({comp}) in user space to /memfd:bootmenu-kernel" in text
        program = {Compression.ZSTD: "/zstd:", Compression.LZ4: "/lz4:", Compression.GZIP: "Python's zlib module:"}
        expected = program.get(comp, "Python's bz2 module:" if comp is Compression.BZIP2 else "Python's lzma module:")
        assert expected in text, f"the plan does not say {expected!r} decompressed it"
        assert f"{len(original)} bytes" in text
        boot.load(plan, force=True)
    finally:
        plan.close()
    (call,) = fake_backend.calls
    assert call.args["kernel_path"].startswith("/memfd:bootmenu-kernel")
    assert sha(call.args["kernel_data"]) == sha(original)
    assert call.args["cmdline"] == b"console=ttyS0\0"


def test_inspect_cli_shows_what_it_decompressed(
    capsys: pytest.CaptureFixture[str], compressed_bzimages: dict[Compression, Path], kernel_image: Path
) -> None:
    code = main(["kexec", "inspect", str(compressed_bzimages[Compression.ZSTD])])
    out = capsys.readouterr().out
    assert code == 0
    version = kernel_image.name.removeprefix("vmlinuz-")
    assert f"zstd-compressed bzImage {version} for x86_64" in out
    assert f"{kernel_image.stat().st_size} bytes decompressed" in out


@pytest.mark.parametrize("comp", [Compression.GZIP, Compression.ZSTD])
def test_compressed_real_vmlinux_is_described_as_elf(
    comp: Compression, debian_vmlinux: Path, tmp_path: Path, meminfo: Path
) -> None:
    path = compress(comp, debian_vmlinux, tmp_path / f"vmlinux.{comp}")
    info = inspect_kernel(path, Options(meminfo=meminfo))
    try:
        assert info.inner is not None
        assert info.inner.elf is not None
        assert info.inner.elf.type == "ET_EXEC"
        assert "Linux note" in info.inner.elf.kernel_markers
        assert len(info.inner.elf.segments) >= 2
        assert info.decompressed is not None
        assert info.decompressed.size == debian_vmlinux.stat().st_size
    finally:
        info.close()
    with pytest.raises(PreflightError, match=f"the {comp}-compressed kernel decompresses to ELF"):
        boot.prepare(path, [], "", machine=Arch.X86_64, meminfo=meminfo, method=boot.LoadMethod.KEXEC_FILE_LOAD)


# --- EFI zboot -----------------------------------------------------------------------------------------------------


def zboot(payload: bytes, name: str, *, size_after: int | None = None) -> bytes:
    """An EFI zboot image: "zimg" DOS header naming the payload's offset, size and compressor; for every compressor
    but gzip, Makefile.zboot appends the le32 uncompressed size right after the payload."""
    tail = b"" if size_after is None else struct.pack("<I", size_after)
    return pe([(".data", payload + tail)], zboot=name, zboot_size=len(payload))


def test_zboot_gzip_payload_is_extracted_per_header(
    kernel_image: Path, tmp_path: Path, fake_backend: FakeBackend, meminfo: Path
) -> None:
    original = kernel_image.read_bytes()
    data = zboot(gzip.compress(original, compresslevel=1, mtime=0), "gzip")
    plan = boot.prepare(write(tmp_path / "vmlinuz.efi", data), [], "", machine=Arch.X86_64, meminfo=meminfo)
    try:
        assert plan.kernel.kind is ImageKind.EFI_ZBOOT
        assert plan.kernel.inner is not None
        assert plan.kernel.inner.kind is ImageKind.BZIMAGE
        assert "gzip bzImage payload" in plan.kernel.summary()
        boot.load(plan, force=True)
    finally:
        plan.close()
    assert sha(fake_backend.calls[0].args["kernel_data"]) == sha(original)


def test_zboot_zstd_payload_uses_the_size_after_it(kernel_image: Path, tmp_path: Path, meminfo: Path) -> None:
    original = kernel_image.read_bytes()
    # As Makefile.zboot's zstd22_with_size: from a pipe (no content size in the frame), then the size appended.
    packed = subprocess.run(
        ["zstd", "-q", "-1", "-c", "--no-content-size"], input=original, capture_output=True, check=True
    )
    info = inspect_kernel(write(tmp_path / "ok.efi", zboot(packed.stdout, "zstd22", size_after=len(original))))
    try:
        assert info.decompressed is not None
        assert info.decompressed.cap.source == "the size after the EFI zboot payload"
        assert info.decompressed.size == len(original)
    finally:
        info.close()
    bad = write(tmp_path / "bad.efi", zboot(packed.stdout, "zstd22", size_after=len(original) - 1))
    with pytest.raises(
        ImageError, match=r"decompresses to more than \d+ bytes \(the size after the EFI zboot payload\)"
    ):
        inspect_kernel(bad, Options(meminfo=meminfo))


def test_zboot_unknown_payload(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"EFI zboot payload \('gzip'\) at offset \d+ starts with 78 78"):
        inspect_kernel(write(tmp_path / "vmlinuz.efi", zboot(b"x" * 64, "gzip")))


# --- bombs and corruption ------------------------------------------------------------------------------------------


def kernel_then_zeros(zeros: int) -> bytes:
    """Starts like a kernel (so it is worth decompressing), then `zeros` bytes that compress to almost nothing."""
    return bzimage(size=4096) + bytes(zeros)


def test_declared_size_over_the_limit_is_refused_before_decompressing(tmp_path: Path, meminfo: Path) -> None:
    path = write(tmp_path / "bomb.gz", gzip.compress(kernel_then_zeros(64 * MIB), mtime=0))
    assert path.stat().st_size < MIB
    with pytest.raises(ImageError) as err:
        inspect_kernel(path, Options(limit=16 * MIB, meminfo=meminfo))
    assert f"declares {64 * MIB + 4096} bytes uncompressed (the gzip ISIZE trailer)" in str(err.value)
    assert "more than the decompression limit of 16 MiB" in str(err.value)


def test_lying_size_stops_at_the_declared_size(tmp_path: Path, meminfo: Path) -> None:
    data = bytearray(gzip.compress(kernel_then_zeros(8 * MIB), mtime=0))
    struct.pack_into("<I", data, len(data) - 4, MIB)  # ISIZE says 1 MiB
    path = write(tmp_path / "liar.gz", bytes(data))
    with pytest.raises(ImageError) as err:
        inspect_kernel(path, Options(meminfo=meminfo))
    assert str(err.value) == (
        f"{path}: gzip data decompresses to more than 1048576 bytes (the gzip ISIZE trailer): stopped there "
        "(a corrupt file)"
    )


def test_no_declared_size_stops_at_the_limit(tmp_path: Path, meminfo: Path) -> None:
    raw = write(tmp_path / "raw", kernel_then_zeros(32 * MIB))
    path = compress(Compression.BZIP2, raw, tmp_path / "bomb.bz2")
    with pytest.raises(ImageError) as err:
        inspect_kernel(path, Options(limit=4 * MIB, meminfo=meminfo))
    assert "bzip2 data decompresses to more than 4194304 bytes (the decompression limit of 4 MiB)" in str(err.value)
    assert "decompression bomb" in str(err.value)


def test_limit_is_at_most_half_of_mem_available(tmp_path: Path) -> None:
    low = write(tmp_path / "meminfo", b"MemAvailable:  20480 kB\n")
    raw = write(tmp_path / "raw", kernel_then_zeros(32 * MIB))
    path = compress(Compression.LZ4, raw, tmp_path / "bomb.lz4")
    with pytest.raises(ImageError, match=r"more than 10485760 bytes \(half of MemAvailable in .*meminfo, 10 MiB\)"):
        inspect_kernel(path, Options(meminfo=low))


def test_arm64_image_size_bounds_the_output(tmp_path: Path, meminfo: Path) -> None:
    raw = write(tmp_path / "raw", arm64_image(image_size=MIB) + bytes(4 * MIB))
    path = compress(Compression.LZ4, raw, tmp_path / "Image.lz4")
    with pytest.raises(ImageError, match=r"more than 1048576 bytes \(the image_size of the Image header\)"):
        inspect_kernel(path, Options(meminfo=meminfo))
    ok = compress(Compression.LZ4, write(tmp_path / "ok", arm64_image(image_size=MIB)), tmp_path / "ok.lz4")
    info = inspect_kernel(ok, Options(meminfo=meminfo))
    assert info.decompressed is not None
    assert info.decompressed.cap.source == "the image_size of the Image header"
    info.close()


@pytest.mark.parametrize(
    ("comp", "message"),
    [
        (Compression.XZ, "truncated xz data: the stream ends early"),
        (Compression.BZIP2, "truncated bzip2 data: the stream ends early"),
        (Compression.ZSTD, "corrupt zstd data: zstd says:"),
        (Compression.LZMA, "truncated lzma data: the stream ends early"),
    ],
)
def test_truncated_compressed_kernel(
    comp: Compression, compressed_bzimages: dict[Compression, Path], tmp_path: Path, meminfo: Path, message: str
) -> None:
    src = compressed_bzimages[comp]
    cut = write(tmp_path / src.name, src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(ImageError) as err:
        inspect_kernel(cut, Options(meminfo=meminfo))
    assert str(err.value).startswith(f"{cut}: ")
    assert message in str(err.value)


def test_missing_decompressor_is_a_clear_refusal(
    compressed_bzimages: dict[Compression, Path], tmp_path: Path, meminfo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no zstd program to be found
    path = compressed_bzimages[Compression.ZSTD]
    info = inspect_kernel(path, Options(meminfo=meminfo))
    assert info.decompressed is None
    assert info.not_decompressed == "no zstd decompressor here: needs the zstd program"
    with pytest.raises(PreflightError, match="cannot load this zstd-compressed kernel: no zstd decompressor here"):
        boot.prepare(path, [], "", machine=Arch.X86_64, meminfo=meminfo)


def test_compressed_initrd_is_not_decompressed_as_a_kernel(tmp_path: Path) -> None:
    from tests.kexec_core.kexec_craft import newc

    info = inspect_kernel(write(tmp_path / "initrd.img", gzip.compress(newc("init", b"x" * MIB))))
    assert info.decompressed is None
    assert info.not_decompressed == "it does not start like a kernel"


def test_nothing_is_left_open_or_on_disk(
    compressed_bzimages: dict[Compression, Path], meminfo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fds: Callable[[], set[str]] = lambda: set(os.listdir("/proc/self/fd"))  # noqa: E731
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    before = fds()
    plan = boot.prepare(compressed_bzimages[Compression.GZIP], [], "", machine=Arch.X86_64, meminfo=meminfo)
    assert len(fds() - before) == 1  # the memfd
    plan.close()
    assert fds() == before
    with pytest.raises(PreflightError):  # a refused plan closes its copy too
        boot.prepare(compressed_bzimages[Compression.GZIP], [], "", machine=Arch.ARM64, meminfo=meminfo)
    assert fds() == before
    assert list(scratch.iterdir()) == []


def test_lz4_legacy_initrd_is_accepted(tmp_path: Path) -> None:
    """initramfs-tools writes `lz4 -l`: its 8 MiB blocks do not decompress from the first 64 KiB alone."""
    from kexec_core.initrd import InitrdFormat, inspect_initrd
    from tests.kexec_core.kexec_craft import newc

    raw = write(tmp_path / "initrd", newc("init", os.urandom(256 * 1024)))
    info = inspect_initrd(compress(Compression.LZ4, raw, tmp_path / "initrd.lz4"))
    assert info.format is InitrdFormat.COMPRESSED
    assert info.compression is Compression.LZ4
    assert info.warning is None


def test_cli_max_decompressed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    raw = write(tmp_path / "raw", kernel_then_zeros(8 * MIB))
    path = compress(Compression.BZIP2, raw, tmp_path / "vmlinuz.bz2")
    code = main(["kexec", "load", str(path), "--dry-run", "--max-decompressed", "1M"])
    err = capsys.readouterr().err
    assert code == 3
    assert "more than 1048576 bytes (the decompression limit of 1 MiB)" in err
    with pytest.raises(SystemExit):
        main(["kexec", "inspect", str(path), "--max-decompressed", "lots"])
    assert "not a size: 'lots'" in capsys.readouterr().err


def test_bzip2_with_big_blocks_is_decompressed(kernel_image: Path, tmp_path: Path, meminfo: Path) -> None:
    """bzip2 -9 (900 KiB blocks, as the kernel's Makefile.lib uses): nothing comes out of the first 128 KiB alone."""
    path = tmp_path / "vmlinuz.bz2"
    with path.open("wb") as out:
        subprocess.run(["bzip2", "-9", "-c", str(kernel_image)], stdout=out, check=True)
    info = inspect_kernel(path, Options(meminfo=meminfo))
    assert info.decompressed is not None
    assert info.decompressed.size == kernel_image.stat().st_size
    info.close()
