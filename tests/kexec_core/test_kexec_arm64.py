"""arm64 kexec_load on the real Debian arm64 kernel package (`make kernel` fetches linux-image-VERSION-arm64, the same
VERSION as the x86 test kernel, unpacked under .cache/kernel-arm64): the Image header, the segments, the devicetree
with its /chosen rewritten and the trampoline, checked field by field; dtc, fdtget and an AArch64 disassembler are the
independent readers. Pure Python on any host: the syscall boundary is the fake backend, the guard is not touched.
"""

from __future__ import annotations

import errno
import gzip
import itertools
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from bootmenu.cli import main
from kexec_core import arm64, boot, fdt
from kexec_core.arch import Arch
from kexec_core.errors import ImageError, KexecError, PreflightError
from kexec_core.segments import MemRange, PlannedSegment, SegmentPlan
from tests.kexec_core.conftest import FakeBackend
from tests.kexec_core.kexec_craft import newc, pe, write

REPO = Path(__file__).resolve().parents[2]
ARM64_CACHE = REPO / ".cache" / "kernel-arm64" / "root"
MIB, GIB = 1 << 20, 1 << 30
CMDLINE = "console=ttyAMA0 root=/dev/vda2 rw e2e=arm64"
# The System RAM of a 2 GiB QEMU virt guest as /proc/iomem shows it (top level), with the ranges inside it that the
# kernel reserved, its own image and a crash kernel region.
VIRT_IOMEM = """\
09000000-09000fff : pl011@9000000
  09000000-09000fff : 9000000.pl011 pl011@9000000
40000000-bfffffff : System RAM
  40000000-401fffff : reserved
  40210000-4168ffff : Kernel code
  41690000-41a1ffff : reserved
  41a20000-41e8ffff : Kernel data
  48000000-48ffffff : Crash kernel
  7c000000-7fffffff : reserved
  bd4f0000-bd5fffff : reserved
4010000000-401fffffff : PCI ECAM
"""


@pytest.fixture(scope="module")
def arm64_root() -> Path:
    if not (ARM64_CACHE / ".complete").exists():
        pytest.fail("no arm64 test kernel: run `make kernel` (tools/fetch-kernel-arm64) first")
    return ARM64_CACHE


@pytest.fixture(scope="module")
def arm64_version(arm64_root: Path, kernel_root: Path) -> str:
    """`6.1.0-57-arm64`, from the package's file names; the same release as the x86 test kernel."""
    (image,) = (arm64_root / "boot").glob("vmlinuz-*")
    version = image.name.removeprefix("vmlinuz-")
    x86 = next((kernel_root / "boot").glob("vmlinuz-*")).name.removeprefix("vmlinuz-")
    assert version.removesuffix("-arm64") == x86.removesuffix("-amd64")
    return version


@pytest.fixture(scope="module")
def arm64_image(arm64_root: Path, arm64_version: str) -> Path:
    return arm64_root / "boot" / f"vmlinuz-{arm64_version}"


@pytest.fixture(scope="module")
def dtbs(arm64_root: Path, arm64_version: str) -> Path:
    return arm64_root / "usr" / "lib" / f"linux-image-{arm64_version}"


@pytest.fixture
def meminfo(tmp_path: Path) -> Path:
    return write(tmp_path / "meminfo", b"MemAvailable:  8000000 kB\n")


@pytest.fixture
def iomem(tmp_path: Path) -> Path:
    return write(tmp_path / "iomem", VIRT_IOMEM.encode())


def layout(iomem: Path, tmp_path: Path, *, mem_min: int = 0, mem_max: int = 1 << 64) -> boot.MemoryLayout:
    return boot.MemoryLayout(iomem=iomem, running_fdt=tmp_path / "no-running-fdt", mem_min=mem_min, mem_max=mem_max)


def by_name(plan: SegmentPlan) -> dict[str, PlannedSegment]:
    return {s.name: s for s in plan.segments}


def config(arm64_root: Path, arm64_version: str) -> dict[str, str]:
    text = (arm64_root / "boot" / f"config-{arm64_version}").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if line.startswith("CONFIG_"))


def fdtget(blob: Path, node: str, prop: str, kind: str = "x") -> str:
    return subprocess.run(
        ["fdtget", "-t", kind, str(blob), node, prop], capture_output=True, text=True, check=True
    ).stdout.strip()


def cells_to_int(text: str) -> int:
    """fdtget -t x prints a u64 as two 32-bit cells: `0 4a000000`."""
    value = 0
    for cell in text.split():
        value = value << 32 | int(cell, 16)
    return value


needs_fdtget = pytest.mark.skipif(shutil.which("fdtget") is None, reason="fdtget (device-tree-compiler) missing")
needs_dtc = pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc (device-tree-compiler) missing")


# --- the Image header ------------------------------------------------------------------------------------------------


def test_header_of_the_real_image(arm64_image: Path, arm64_root: Path, arm64_version: str) -> None:
    data = arm64_image.read_bytes()
    hdr = arm64.parse(arm64_image, data[: arm64.HEADER_SIZE])
    cfg = config(arm64_root, arm64_version)
    text_offset, image_size, flags = struct.unpack_from("<QQQ", data, 8)
    assert data[0x38:0x3C] == b"ARM\x64"
    assert (hdr.text_offset, hdr.image_size, hdr.flags) == (text_offset, image_size, flags)
    assert hdr.text_offset == 0  # since 5.x; the placement still honours it
    assert hdr.image_size >= len(data)  # the BSS and what head.S maps lie past the file
    assert not hdr.big_endian
    assert cfg.get("CONFIG_CPU_BIG_ENDIAN") is None
    assert hdr.page_size == {"y": "4K"}.get(cfg.get("CONFIG_ARM64_4K_PAGES", ""), "other")
    assert hdr.flags & arm64.FLAG_PLACE_ANYWHERE  # a relocatable kernel: bit 3 set
    if cfg.get("CONFIG_EFI") == "y":
        assert data[:2] == b"MZ"  # the EFI stub's PE header


# --- the segments ----------------------------------------------------------------------------------------------------


@needs_fdtget
def test_segments_and_devicetree_field_by_field(
    arm64_image: Path, dtbs: Path, tmp_path: Path, meminfo: Path, iomem: Path
) -> None:
    rd_bytes = newc("init", b"#!/bin/sh\necho arm64\n" * 500)
    rd = write(tmp_path / "initrd.img", rd_bytes)
    source_dtb = dtbs / "arm" / "fvp-base-revc.dtb"
    # Leftovers a crash kernel's loader or a previous boot would have put in /chosen.
    stale = fdt.read(source_dtb).with_props(
        "/chosen",
        {
            "linux,elfcorehdr": fdt.u64(0x48000000) + fdt.u64(0x10000),
            "linux,usable-memory-range": fdt.u64(0x48000000) + fdt.u64(0x1000000),
            "kaslr-seed": fdt.u64(0),
            "bootargs": fdt.string("old words"),
        },
    )
    dtb = write(tmp_path / "board.dtb", stale.to_bytes())
    plan = boot.prepare(
        arm64_image, [rd], CMDLINE, devicetree=dtb, machine=Arch.ARM64, meminfo=meminfo, memory=layout(iomem, tmp_path)
    )
    assert plan.method is boot.LoadMethod.KEXEC_LOAD  # chosen by itself: a devicetree was given
    assert plan.segments is not None
    segs = by_name(plan.segments)
    assert set(segs) == {"kernel", "initrd", "dtb", "trampoline"}
    image = arm64_image.read_bytes()
    hdr = arm64.parse(arm64_image, image)

    kernel = segs["kernel"]
    base = kernel.mem - hdr.text_offset
    assert base % (2 * MIB) == 0
    assert kernel.buf == image
    assert kernel.memsz >= hdr.image_size
    # The lowest 2 MiB-aligned base whose span is free: 0x40000000-0x401fffff and 0x41690000.. are reserved,
    # so the kernel (32 MiB) goes past the reserved block inside the running kernel at 0x41690000.
    assert base == 0x41A00000 + 2 * MIB

    initrd = segs["initrd"]
    assert bytes(initrd.buf) == rd_bytes
    assert initrd.mem >= kernel.mem + kernel.memsz

    dtb_seg = segs["dtb"]
    assert dtb_seg.mem % 8 == 0
    assert len(dtb_seg.buf) <= arm64.DTB_MAX
    out = write(tmp_path / "out.dtb", bytes(dtb_seg.buf))
    assert fdtget(out, "/chosen", "bootargs", "s") == CMDLINE
    assert cells_to_int(fdtget(out, "/chosen", "linux,initrd-start")) == initrd.mem
    assert cells_to_int(fdtget(out, "/chosen", "linux,initrd-end")) == initrd.mem + len(rd_bytes)
    tree = fdt.parse(out, bytes(dtb_seg.buf))
    seed = tree.prop("/chosen", "kaslr-seed")
    assert seed is not None
    assert len(seed) == 8
    assert seed != bytes(8)
    rng = tree.prop("/chosen", "rng-seed")
    assert rng is not None
    assert len(rng) == arm64.RNG_SEED_SIZE
    for gone in arm64.STALE_CHOSEN:
        assert tree.prop("/chosen", gone) is None
    # Everything outside /chosen is the board's tree as it was, memory reservations included.
    original = fdt.read(source_dtb)
    assert tree.reservations == original.reservations == ((0x80000000, 0x10000),)
    assert [n for n in tree.root.children if n.name != "chosen"] == [
        n for n in original.root.children if n.name != "chosen"
    ]

    tramp = segs["trampoline"]
    assert plan.segments.entry == tramp.mem
    assert tramp.buf == arm64.trampoline_code(dtb_seg.mem, kernel.mem)

    ram = [(0x40000000, 0xC0000000)]
    reserved = [(0x40000000, 0x40200000), (0x41690000, 0x41A20000), (0x48000000, 0x49000000)]
    reserved += [(0x7C000000, 0x80000000), (0xBD4F0000, 0xBD600000), (0x80000000, 0x80010000)]  # + /memreserve/
    reserved += [(0x18000000, 0x18800000)]  # /reserved-memory/vram
    ordered = sorted(plan.segments.segments, key=lambda s: s.mem)
    for seg in ordered:
        assert seg.mem % 4096 == 0
        assert seg.memsz % 4096 == 0
        assert len(seg.buf) <= seg.memsz
        assert any(s <= seg.mem and seg.mem + seg.memsz <= e for s, e in ram), seg.name
        for s, e in reserved:
            assert seg.mem + seg.memsz <= s or seg.mem >= e, f"{seg.name} overlaps reserved {s:#x}-{e:#x}"
        assert seg.mem + seg.memsz <= base + arm64.SEGMENT_WINDOW
    for a, b in itertools.pairwise(ordered):
        assert a.mem + a.memsz <= b.mem, f"{a.name} overlaps {b.name}"

    text = "\n".join(plan.describe())
    assert f"dtb:     {dtb}" in text
    assert "load:    kexec_load(entry=" in text
    assert re.search(rf"kernel: {kernel.mem:#x}-0x[0-9a-f]+ \(\d+ bytes, {len(image)} of them copied\) from ", text)
    assert f"from {dtb} (/chosen rewritten)" in text
    assert f"initrd: {initrd.mem:#x}-" in text
    assert f"from {rd}" in text
    assert "trampoline: " in text
    assert "from bootmenu (generated code: x0 = dtb" in text


def test_memory_from_the_devicetree_when_iomem_says_nothing(
    arm64_image: Path, dtbs: Path, tmp_path: Path, meminfo: Path
) -> None:
    # Not root: /proc/iomem shows zeros. The fvp tree's /memory has two banks; its /memreserve/ covers the start of
    # DRAM (0x80000000 + 64 KiB), so the first 2 MiB-aligned base is the next one.
    zeros = write(tmp_path / "iomem", b"00000000-00000000 : System RAM\n  00000000-00000000 : reserved\n")
    dtb = dtbs / "arm" / "fvp-base-revc.dtb"
    plan = boot.prepare(
        arm64_image, [], "", devicetree=dtb, machine=Arch.ARM64, meminfo=meminfo, memory=layout(zeros, tmp_path)
    )
    assert plan.segments is not None
    segs = by_name(plan.segments)
    assert segs["kernel"].mem == 0x80200000
    assert "initrd" not in segs
    tree = fdt.parse(dtb, bytes(segs["dtb"].buf))
    assert tree.prop("/chosen", "linux,initrd-start") is None
    assert tree.prop("/chosen", "bootargs") == b"\0"


def test_mem_min_and_mem_max(arm64_image: Path, dtbs: Path, tmp_path: Path, meminfo: Path, iomem: Path) -> None:
    plan = boot.prepare(
        arm64_image,
        [],
        CMDLINE,
        devicetree=dtbs / "arm" / "juno.dtb",
        machine=Arch.ARM64,
        meminfo=meminfo,
        memory=layout(iomem, tmp_path, mem_min=0x90000000, mem_max=0xA0000000),
    )
    assert plan.segments is not None
    for seg in plan.segments.segments:
        assert seg.mem >= 0x90000000
        assert seg.mem + seg.memsz <= 0xA0000000
    with pytest.raises(PreflightError, match="no room for the kernel"):
        boot.prepare(
            arm64_image,
            [],
            CMDLINE,
            devicetree=dtbs / "arm" / "juno.dtb",
            machine=Arch.ARM64,
            meminfo=meminfo,
            memory=layout(iomem, tmp_path, mem_min=0x90000000, mem_max=0x91000000),
        )


def test_segments_follow_a_64k_page_kernel(
    arm64_image: Path, dtbs: Path, tmp_path: Path, meminfo: Path, iomem: Path
) -> None:
    rd = write(tmp_path / "initrd.img", newc("init", b"x" * 5000))
    memory = boot.MemoryLayout(iomem=iomem, running_fdt=tmp_path / "none", page_size=64 << 10)
    plan = boot.prepare(
        arm64_image,
        [rd],
        CMDLINE,
        devicetree=dtbs / "arm" / "juno.dtb",
        machine=Arch.ARM64,
        meminfo=meminfo,
        memory=memory,
    )
    assert plan.segments is not None
    for seg in plan.segments.segments:
        assert seg.mem % (64 << 10) == 0, seg.name
        assert seg.memsz % (64 << 10) == 0, seg.name


def test_running_devicetree_when_the_entry_names_none(
    arm64_image: Path, dtbs: Path, tmp_path: Path, meminfo: Path, iomem: Path
) -> None:
    # What /sys/firmware/fdt holds after an earlier boot with an initrd: its addresses must not survive.
    running = fdt.read(dtbs / "arm" / "juno.dtb").with_props(
        "/chosen",
        {"linux,initrd-start": fdt.u64(0x88000000), "linux,initrd-end": fdt.u64(0x89000000), "kaslr-seed": bytes(8)},
    )
    fw = write(tmp_path / "fdt", running.to_bytes())
    memory = boot.MemoryLayout(iomem=iomem, running_fdt=fw)
    plan = boot.prepare(
        arm64_image, [], CMDLINE, machine=Arch.ARM64, meminfo=meminfo, method=boot.LoadMethod.KEXEC_LOAD, memory=memory
    )
    assert plan.segments is not None
    assert plan.devicetree == fw
    tree = fdt.parse(fw, bytes(by_name(plan.segments)["dtb"].buf))
    assert tree.prop("/chosen", "linux,initrd-start") is None
    assert tree.prop("/chosen", "linux,initrd-end") is None
    assert tree.prop("/chosen", "bootargs") == fdt.string(CMDLINE)
    assert tree.prop("/chosen", "stdout-path") == b"serial0:115200n8\0"  # the rest of /chosen is kept
    assert "(the running kernel's) (/chosen rewritten)" in "\n".join(plan.describe())
    with pytest.raises(PreflightError, match="no devicetree given and the running one cannot be used"):
        boot.prepare(
            arm64_image,
            [],
            CMDLINE,
            machine=Arch.ARM64,
            meminfo=meminfo,
            method=boot.LoadMethod.KEXEC_LOAD,
            memory=boot.MemoryLayout(iomem=iomem, running_fdt=tmp_path / "absent"),
        )


def test_seeds_left_out_when_the_pool_is_not_ready(dtbs: Path) -> None:
    tree, warnings = arm64.chosen(fdt.read(dtbs / "arm" / "juno.dtb"), "quiet", None, random=lambda n: None)
    assert tree.prop("/chosen", "kaslr-seed") is None
    assert tree.prop("/chosen", "rng-seed") is None
    assert any("kaslr-seed left out" in w for w in warnings)


def test_gzip_image_is_decompressed_and_loaded(
    arm64_image: Path, dtbs: Path, tmp_path: Path, meminfo: Path, iomem: Path
) -> None:
    image = arm64_image.read_bytes()
    packed = write(tmp_path / "Image.gz", gzip.compress(image, compresslevel=1, mtime=0))
    plan = boot.prepare(
        packed,
        [],
        CMDLINE,
        devicetree=dtbs / "arm" / "juno.dtb",
        machine=Arch.ARM64,
        meminfo=meminfo,
        memory=layout(iomem, tmp_path),
    )
    try:
        assert plan.segments is not None
        assert by_name(plan.segments)["kernel"].buf == image
        text = "\n".join(plan.describe())
        assert "decompressed (gzip) in user space" in text
        assert "from " in text
        assert "decompressed from gzip" in text
    finally:
        plan.close()


def test_efi_zboot_image_is_decompressed_and_loaded(
    arm64_image: Path, dtbs: Path, tmp_path: Path, meminfo: Path, iomem: Path
) -> None:
    # The layout of arch/arm64 zboot images (drivers/firmware/efi/libstub/zboot-header.S) around the real Image.
    image = arm64_image.read_bytes()
    payload = gzip.compress(image, compresslevel=1, mtime=0)
    zboot = write(tmp_path / "vmlinuz.efi", pe([(".data", payload)], machine=0xAA64, zboot="gzip"))
    plan = boot.prepare(
        zboot,
        [],
        CMDLINE,
        devicetree=dtbs / "arm" / "juno.dtb",
        machine=Arch.ARM64,
        meminfo=meminfo,
        memory=layout(iomem, tmp_path),
    )
    try:
        assert plan.segments is not None
        assert by_name(plan.segments)["kernel"].buf == image
    finally:
        plan.close()


# --- method selection and refusals -----------------------------------------------------------------------------------


def test_method_choice(arm64_image: Path, dtbs: Path, tmp_path: Path, meminfo: Path, iomem: Path) -> None:
    dtb = dtbs / "arm" / "juno.dtb"
    memory = layout(iomem, tmp_path)
    plain = boot.prepare(arm64_image, [], CMDLINE, machine=Arch.ARM64, meminfo=meminfo, memory=memory)
    assert plain.method is boot.LoadMethod.KEXEC_FILE_LOAD
    assert plain.segments is None
    with pytest.raises(PreflightError, match="kexec_file_load cannot pass a devicetree"):
        boot.prepare(
            arm64_image,
            [],
            CMDLINE,
            devicetree=dtb,
            machine=Arch.ARM64,
            meminfo=meminfo,
            method=boot.LoadMethod.KEXEC_FILE_LOAD,
        )
    with pytest.raises(PreflightError, match="passed to arm64 kernels only"):
        boot.prepare(arm64_image, [], CMDLINE, devicetree=dtb, machine=Arch.X86_64, meminfo=meminfo)


def test_bad_devicetree_names_file_and_offset(arm64_image: Path, dtbs: Path, tmp_path: Path, meminfo: Path) -> None:
    good = (dtbs / "arm" / "juno.dtb").read_bytes()
    cut = write(tmp_path / "cut.dtb", good[:200])
    with pytest.raises(ImageError, match=r"cut\.dtb: not a valid devicetree blob: totalsize \d+ but the file has 200"):
        boot.prepare(arm64_image, [], "", devicetree=cut, machine=Arch.ARM64, meminfo=meminfo)
    bad = bytearray(good)
    (off_struct,) = struct.unpack_from(">I", good, 8)
    struct.pack_into(">I", bad, off_struct, 7)
    with pytest.raises(ImageError, match=rf"unknown token 0x7 at offset {off_struct:#x}"):
        fdt.parse(tmp_path / "x.dtb", bytes(bad))
    with pytest.raises(ImageError, match="magic"):
        fdt.parse(tmp_path / "x.dtb", bytes(64))


def test_devicetree_nesting_is_bounded(tmp_path: Path) -> None:
    node = fdt.Node("leaf")
    for i in range(fdt.MAX_DEPTH + 2):
        node = fdt.Node(f"n{i}", children=(node,))
    with pytest.raises(ImageError, match="nested deeper"):
        fdt.Fdt(root=fdt.Node("", children=(node,))).to_bytes()
    deep = b"".join(struct.pack(">I", fdt.BEGIN_NODE) + b"abc\0" for _ in range(fdt.MAX_DEPTH + 2))
    blob = fdt.Fdt(root=fdt.Node("")).to_bytes()
    hdr = list(fdt.HEADER.unpack_from(blob))
    body = blob[:40] + bytes(16) + deep + struct.pack(">I", fdt.END)
    hdr[1], hdr[2], hdr[3], hdr[4], hdr[8], hdr[9] = len(body), 56, len(body), 40, 0, len(deep) + 4
    with pytest.raises(ImageError, match="nested deeper"):
        fdt.parse(tmp_path / "deep.dtb", fdt.HEADER.pack(*hdr) + body[40:])


# --- the trampoline --------------------------------------------------------------------------------------------------


def _disassembler() -> list[str] | None:
    if shutil.which("aarch64-linux-gnu-objdump"):
        return ["aarch64-linux-gnu-objdump", "-D", "-b", "binary", "-m", "aarch64"]
    return None


@pytest.mark.skipif(_disassembler() is None, reason="aarch64-linux-gnu-objdump (binutils-aarch64-linux-gnu) missing")
def test_trampoline_disassembles_to_the_documented_instructions(tmp_path: Path) -> None:
    code = arm64.trampoline_code(0x4A000000, 0x40200000)
    assert len(code) == arm64.TRAMPOLINE_SIZE
    cmd = _disassembler()
    assert cmd is not None
    out = subprocess.run([*cmd, str(write(tmp_path / "t.bin", code))], capture_output=True, text=True, check=True)
    insns = [
        re.sub(r"\s+", " ", m.group(1)).split("//")[0].strip()
        for m in re.finditer(r"^\s+[0-9a-f]+:\s+[0-9a-f]{8}\s+(.+)$", out.stdout, re.M)
    ]
    assert insns[:6] == ["ldr x0, 0x18", "ldr x17, 0x20", "mov x1, xzr", "mov x2, xzr", "mov x3, xzr", "br x17"]
    assert struct.unpack_from("<QQ", code, 0x18) == (0x4A000000, 0x40200000)
    # The words the docstring lists, so that the documentation and the code cannot drift apart.
    words = struct.unpack_from("<6I", code)
    for word in words:
        assert f"{word:08x}" in (arm64.trampoline_code.__doc__ or "")


# --- loading through the fake backend, and the CLI -------------------------------------------------------------------


@pytest.fixture
def on_arm64(monkeypatch: pytest.MonkeyPatch, iomem: Path) -> None:
    """This process believes it runs on arm64 with VIRT_IOMEM: the CLI's own code paths, no syscall."""
    monkeypatch.setattr(Arch, "running", classmethod(lambda cls: Arch.ARM64))
    real = arm64.read_iomem
    monkeypatch.setattr(arm64, "read_iomem", lambda path=iomem: real(iomem))


@pytest.mark.usefixtures("on_arm64")
def test_load_hands_the_segments_to_kexec_load(
    arm64_image: Path, dtbs: Path, tmp_path: Path, meminfo: Path, fake_backend: FakeBackend
) -> None:
    plan = boot.prepare(
        arm64_image,
        [],
        CMDLINE,
        devicetree=dtbs / "arm" / "juno.dtb",
        meminfo=meminfo,
        memory=boot.MemoryLayout(running_fdt=tmp_path / "none"),
    )
    boot.load(plan, force=True)
    assert fake_backend.names() == ["kexec_load"]
    args = fake_backend.calls[0].args
    assert plan.segments is not None
    assert args["entry"] == plan.segments.entry
    assert [(s.mem, s.memsz, s.buf) for s in args["segments"]] == [
        (s.mem, s.memsz, s.buf) for s in plan.segments.segments
    ]


@pytest.mark.usefixtures("on_arm64")
def test_lockdown_refusal_of_kexec_load_says_so(
    arm64_image: Path, dtbs: Path, tmp_path: Path, meminfo: Path, fake_backend: FakeBackend
) -> None:
    plan = boot.prepare(
        arm64_image,
        [],
        CMDLINE,
        devicetree=dtbs / "arm" / "juno.dtb",
        meminfo=meminfo,
        memory=boot.MemoryLayout(running_fdt=tmp_path / "none"),
    )
    fake_backend.fail["kexec_load"] = errno.EPERM
    with pytest.raises(KexecError, match="kexec_load is always refused when the kernel is locked down") as err:
        boot.load(plan, force=True)
    assert err.value.errno == errno.EPERM
    assert fake_backend.names() == ["kexec_load"]  # no retry with kexec_file_load: it cannot take the devicetree


@pytest.mark.usefixtures("on_arm64")
def test_enosys_from_kexec_file_load_falls_back_to_kexec_load_with_the_running_devicetree(
    arm64_image: Path, dtbs: Path, tmp_path: Path, fake_backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    fw = write(tmp_path / "fdt", (dtbs / "arm" / "juno.dtb").read_bytes())
    monkeypatch.setattr(arm64, "RUNNING_FDT", fw)
    meminfo = write(tmp_path / "meminfo", b"MemAvailable:  8000000 kB\n")
    plan = boot.prepare(arm64_image, [], CMDLINE, meminfo=meminfo)
    assert plan.method is boot.LoadMethod.KEXEC_FILE_LOAD
    fake_backend.fail["kexec_file_load"] = errno.ENOSYS
    boot.load(plan, force=True)
    assert fake_backend.names() == ["kexec_file_load", "kexec_load"]
    segments = fake_backend.calls[1].args["segments"]
    dtb = fdt.parse(fw, next(s.buf for s in segments if fdt.is_fdt(s.buf)))
    assert dtb.prop("/chosen", "bootargs") == fdt.string(CMDLINE)


@pytest.mark.usefixtures("on_arm64")
def test_cli_load_dtb_dry_run(
    capsys: pytest.CaptureFixture[str], arm64_image: Path, dtbs: Path, fake_backend: FakeBackend
) -> None:
    dtb = dtbs / "arm" / "juno.dtb"
    code = main(["kexec", "load", str(arm64_image), "--dtb", str(dtb), "--append", "quiet", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "load:    kexec_load(entry=" in out
    for name in ("kernel", "dtb", "trampoline"):
        assert re.search(rf"^\s+{name}: 0x[0-9a-f]+-0x[0-9a-f]+ \(\d+ bytes, \d+ of them copied\) from ", out, re.M)
    assert fake_backend.calls == []
    assert main(["kexec", "load", "-s", str(arm64_image), "--dtb", str(dtb), "--dry-run"]) == 3
    assert "kexec_file_load cannot pass a devicetree" in capsys.readouterr().err


@pytest.mark.usefixtures("on_arm64")
def test_cli_inspect_on_arm64_names_why_without_a_running_devicetree(
    capsys: pytest.CaptureFixture[str], arm64_image: Path
) -> None:
    # This host has no /sys/firmware/fdt: inspect still describes the Image and says why there are no segments.
    if arm64.RUNNING_FDT.exists():
        pytest.skip("this machine has a running devicetree")
    assert main(["kexec", "inspect", str(arm64_image)]) == 0
    out = capsys.readouterr().out
    assert "kexec_load (-c, no initrd, empty command line):" in out
    assert "no devicetree given and the running one cannot be used" in out


def test_iomem_reading(iomem: Path, tmp_path: Path) -> None:
    got = arm64.read_iomem(iomem)
    assert got is not None
    assert got.ram == (MemRange(0x40000000, 0xC0000000, 1),)
    assert (0x48000000, 0x49000000) in got.avoid
    assert (0x7C000000, 0x80000000) in got.avoid
    assert (0x40210000, 0x41690000) not in got.avoid  # the running kernel's code is overwritten at the jump
    assert arm64.read_iomem(tmp_path / "absent") is None


# --- the FDT writer against dtc --------------------------------------------------------------------------------------


@needs_dtc
def test_every_fourth_debian_dtb_round_trips_as_dtc_reads_it(dtbs: Path, tmp_path: Path) -> None:
    files = sorted(dtbs.glob("*/*.dtb"))
    assert len(files) > 100
    for path in files[::4]:
        ours = fdt.read(path).to_bytes()
        want = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(path)], capture_output=True, check=True).stdout
        got = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", "-"], input=ours, capture_output=True, check=True).stdout
        assert got == want, path


@needs_dtc
def test_edits_read_back_by_dtc(dtbs: Path, tmp_path: Path) -> None:
    tree = fdt.read(dtbs / "arm" / "juno.dtb")
    edited = tree.with_props("/chosen", {"bootargs": fdt.string("a b"), "stdout-path": None})
    edited = edited.with_props("/new/child@1", {"x": fdt.u32(5)})
    out = subprocess.run(
        ["dtc", "-I", "dtb", "-O", "dts", "-"], input=edited.to_bytes(), capture_output=True, check=True
    )
    dts = out.stdout.decode()
    assert out.returncode == 0
    assert re.search(r'chosen \{\s+bootargs = "a b";\s+\};', dts)
    assert re.search(r"new \{\s+child@1 \{\s+x = <0x05>;", dts)
