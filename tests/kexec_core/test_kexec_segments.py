"""kexec_load segments for the real Debian bzImage (x86_64.py), checked field by field, and the CLI that forces it.

What is not shown here: a boot through these segments. That needs kexec_load in QEMU (see the report / README).
"""

from __future__ import annotations

import itertools
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from bootmenu.cli import main
from kexec_core import boot, x86_64
from kexec_core.arch import Arch
from kexec_core.errors import MemoryShortError, PreflightError
from kexec_core.image import inspect_kernel
from kexec_core.segments import MemRange, PlannedSegment, SegmentPlan
from tests.kexec_core.conftest import FakeBackend
from tests.kexec_core.kexec_craft import bzimage, newc, riscv_image, write

GIB = 1 << 30
# What SeaBIOS gives a 1 GiB QEMU q35 guest.
QEMU_MEMMAP = (
    MemRange(0x0, 0x9FC00, 1),
    MemRange(0x9FC00, 0xA0000, 2),
    MemRange(0xF0000, 0x100000, 2),
    MemRange(0x100000, 0x3FFE0000, 1),
    MemRange(0x3FFE0000, 0x40000000, 2),
    MemRange(0xB0000000, 0xC0000000, 2),
    MemRange(0xFED1C000, 0xFED20000, 2),
    MemRange(0xFEFFC000, 0xFF000000, 2),
    MemRange(0xFFFC0000, 0x100000000, 2),
)
CMDLINE = "console=ttyS0,115200 root=/dev/vda1 e2e=segments"


@pytest.fixture
def meminfo(tmp_path: Path) -> Path:
    return write(tmp_path / "meminfo", b"MemAvailable:  4000000 kB\n")


def plan_for(
    kernel: Path, initrds: list[Path], meminfo: Path, *, mem_min: int = 0, mem_max: int = 1 << 64
) -> boot.BootPlan:
    memory = boot.MemoryLayout(memmap=QEMU_MEMMAP, avoid=(), mem_min=mem_min, mem_max=mem_max)
    return boot.prepare(
        kernel, initrds, CMDLINE, machine=Arch.X86_64, meminfo=meminfo, method=boot.LoadMethod.KEXEC_LOAD, memory=memory
    )


def by_name(plan: SegmentPlan) -> dict[str, PlannedSegment]:
    return {s.name: s for s in plan.segments}


def test_segments_of_the_real_kernel_field_by_field(kernel_image: Path, tmp_path: Path, meminfo: Path) -> None:
    rd = write(tmp_path / "initrd.img", newc("init", b"#!/bin/sh\n" * 1000))
    plan = plan_for(kernel_image, [rd], meminfo)
    assert plan.method is boot.LoadMethod.KEXEC_LOAD
    assert plan.segments is not None
    segs = by_name(plan.segments)
    assert set(segs) == {"kernel", "boot_params+cmdline", "initrd", "trampoline"}
    data = kernel_image.read_bytes()
    hdr = plan.kernel.bzimage
    assert hdr is not None

    ram = [r for r in QEMU_MEMMAP if r.type == 1]
    spans = sorted((s.mem, s.mem + s.memsz) for s in plan.segments.segments)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, "segments overlap"
    for s in plan.segments.segments:
        assert s.mem % 4096 == 0
        assert s.memsz % 4096 == 0
        assert len(s.buf) <= s.memsz
        assert s.mem >= 1 << 20
        assert any(r.start <= s.mem and s.mem + s.memsz <= r.end for r in ram), f"{s.name} is not in System RAM"

    kernel = segs["kernel"]
    (alignment,) = struct.unpack_from("<I", data, 0x230)
    (pref_address,) = struct.unpack_from("<Q", data, 0x258)
    assert kernel.buf == data[hdr.setup_size :]
    assert kernel.mem % alignment == 0
    assert kernel.mem >= pref_address
    assert hdr.init_size is not None
    assert kernel.memsz >= hdr.init_size

    bp_seg = segs["boot_params+cmdline"]
    bp = bp_seg.buf
    end = 0x202 + data[0x201]
    expected = bytearray(data[0x1F1:end])
    expected[0x210 - 0x1F1] = 0xFF  # type_of_loader
    struct.pack_into("<I", expected, 0x218 - 0x1F1, segs["initrd"].mem)
    struct.pack_into("<I", expected, 0x21C - 0x1F1, rd.stat().st_size)
    struct.pack_into("<I", expected, 0x228 - 0x1F1, bp_seg.mem + 4096)
    assert bp[0x1F1:end] == bytes(expected)
    assert bp[0x1EF] == 0  # sentinel
    (cmd_ptr,) = struct.unpack_from("<I", bp, 0x228)
    at = cmd_ptr - bp_seg.mem
    assert bp[at : at + len(CMDLINE) + 1] == CMDLINE.encode() + b"\0"
    assert struct.unpack_from("<III", bp, 0x0C0) == (0, 0, 0)  # ext_ramdisk_image/size, ext_cmd_line_ptr: all < 4G
    assert bp[0x1E8] == len(QEMU_MEMMAP)
    table = [struct.unpack_from("<QQI", bp, 0x2D0 + 20 * i) for i in range(len(QEMU_MEMMAP))]
    assert table == [(r.start, r.size, r.type) for r in QEMU_MEMMAP]

    initrd = segs["initrd"]
    assert bytes(initrd.buf) == rd.read_bytes()  # mapped, not read (boot._mapped)
    (initrd_addr_max,) = struct.unpack_from("<I", data, 0x22C)
    assert initrd.mem + initrd.memsz <= initrd_addr_max + 1

    tramp = segs["trampoline"]
    assert plan.segments.entry == tramp.mem
    assert tramp.buf == x86_64.trampoline_code(bp_seg.mem, kernel.mem + 0x200)
    lines = plan.describe()
    assert any("kexec_load(entry=" in line for line in lines)
    assert any(line.strip().startswith("kernel: ") for line in lines)


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
def test_trampoline_disassembles_to_the_documented_instructions(tmp_path: Path) -> None:
    code = write(tmp_path / "trampoline.bin", x86_64.trampoline_code(0x100000, 0x1000200))
    out = subprocess.run(
        ["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", str(code)], capture_output=True, check=True
    ).stdout.decode()
    text = " ".join(re.findall(r"^\s+[0-9a-f]+:\s+(?:[0-9a-f]{2} )+\s*(.+)$", out, re.M))
    assert re.search(r"movabs \$0x100000,%rsi .*movabs \$0x1000200,%rax .*jmp \s*\*%rax", text), out


def test_crash_kernel_region_and_mem_limits_are_honoured(kernel_image: Path, meminfo: Path) -> None:
    crash = (0x1000000, 0x9000000)
    memory = boot.MemoryLayout(memmap=QEMU_MEMMAP, avoid=(crash,))
    plan = boot.prepare(
        kernel_image, [], "", machine=Arch.X86_64, meminfo=meminfo, method=boot.LoadMethod.KEXEC_LOAD, memory=memory
    )
    assert plan.segments is not None
    for s in plan.segments.segments:
        assert s.mem + s.memsz <= crash[0] or s.mem >= crash[1], s
    plan = plan_for(kernel_image, [], meminfo, mem_min=0x20000000, mem_max=0x30000000)
    assert plan.segments is not None
    assert all(s.mem >= 0x20000000 and s.mem + s.memsz <= 0x30000000 for s in plan.segments.segments)
    with pytest.raises(PreflightError, match="no room for the kernel"):
        plan_for(kernel_image, [], meminfo, mem_max=0x2000000)


def test_memmap_and_crash_regions_from_sysfs_and_iomem(tmp_path: Path) -> None:
    root = tmp_path / "memmap"
    for i, (start, end, kind) in enumerate([(0x0, 0x9FBFF, "System RAM"), (0x100000, 0x3FFDFFFF, "System RAM")]):
        (root / str(i)).mkdir(parents=True)
        (root / str(i) / "start").write_text(f"{start:#x}\n")
        (root / str(i) / "end").write_text(f"{end:#x}\n")
        (root / str(i) / "type").write_text(f"{kind}\n")
    (root / "2").mkdir()
    (root / "2" / "start").write_text("0xfeffc000\n")
    (root / "2" / "end").write_text("0xfeffffff\n")
    (root / "2" / "type").write_text("Reserved\n")
    ranges = x86_64.read_memmap(root)
    assert ranges == [MemRange(0, 0x9FC00, 1), MemRange(0x100000, 0x3FFE0000, 1), MemRange(0xFEFFC000, 0xFF000000, 2)]
    iomem = write(
        tmp_path / "iomem",
        b"00100000-3ffdffff : System RAM\n  2b000000-32ffffff : Crash kernel\n  01000000-01ffffff : Kernel code\n",
    )
    assert x86_64.read_crash_regions(iomem) == [(0x2B000000, 0x33000000)]
    hidden = write(tmp_path / "iomem0", b"00000000-00000000 : System RAM\n  00000000-00000000 : Crash kernel\n")
    assert x86_64.read_crash_regions(hidden) == []  # not root: addresses read as zero
    with pytest.raises(PreflightError, match="cannot read the firmware memory map"):
        x86_64.read_memmap(tmp_path / "absent")


def test_real_memmap_of_this_machine_gives_a_plan(kernel_image: Path, meminfo: Path) -> None:
    if not x86_64.MEMMAP.is_dir():
        pytest.skip("no /sys/firmware/memmap here")
    plan = boot.prepare(kernel_image, [], "", machine=Arch.X86_64, meminfo=meminfo, method=boot.LoadMethod.KEXEC_LOAD)
    assert plan.segments is not None
    assert len(plan.segments.segments) == 3


def test_load_calls_kexec_load_with_the_segments(
    kernel_image: Path, tmp_path: Path, meminfo: Path, fake_backend: FakeBackend
) -> None:
    rd = write(tmp_path / "initrd.img", newc("init", b"x"))
    plan = plan_for(kernel_image, [rd], meminfo)
    boot.load(plan, force=True)
    (call,) = fake_backend.calls
    assert call.name == "kexec_load"
    assert plan.segments is not None
    assert call.args["entry"] == plan.segments.entry
    assert [(s.mem, s.memsz, s.buf) for s in call.args["segments"]] == [
        (s.mem, s.memsz, s.buf) for s in plan.segments.segments
    ]


def test_kexec_load_refused_for_what_it_cannot_build(tmp_path: Path, meminfo: Path) -> None:
    with pytest.raises(PreflightError, match="x86_64 bzImages and ELF kernels and arm64 Images only"):
        boot.prepare(
            write(tmp_path / "Image", riscv_image()),
            [],
            "",
            machine=Arch.RISCV64,
            meminfo=meminfo,
            method=boot.LoadMethod.KEXEC_LOAD,
        )


# --- CLI -----------------------------------------------------------------------------------------------------------


def test_cli_segments_dry_run(
    capsys: pytest.CaptureFixture[str], kernel_image: Path, fake_backend: FakeBackend
) -> None:
    code = main(["kexec", "load", "-c", str(kernel_image), "--append", "quiet", "--dry-run", "--mem-min", "256M"])
    out = capsys.readouterr().out
    assert code == 0
    assert "load:    kexec_load(entry=" in out
    kernel_line = next(line for line in out.splitlines() if line.strip().startswith("kernel: 0x"))
    assert int(kernel_line.split()[1].split("-")[0], 16) >= 256 << 20
    assert "trampoline:" in out
    assert fake_backend.calls == []


def test_cli_method_flags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    kernel = write(tmp_path / "vmlinuz", bzimage())
    with pytest.raises(SystemExit) as exc:
        main(["kexec", "load", "-s", "-c", str(kernel)])
    assert exc.value.code == 2
    capsys.readouterr()
    assert main(["kexec", "load", "-s", str(kernel), "--dry-run", "--mem-max", "1G"]) == 2
    assert "--mem-min/--mem-max place kexec_load segments: add -c" in capsys.readouterr().err
    assert main(["kexec", "load", "--file-load", str(kernel), "--dry-run"]) == 0
    assert "kexec_file_load(kernel_fd" in capsys.readouterr().out
    dtb = write(tmp_path / "board.dtb", b"\xd0\x0d\xfe\xed" + bytes(60))
    assert main(["kexec", "load", str(kernel), "--dtb", str(dtb), "--dry-run"]) == 3
    assert "a devicetree is passed to arm64 kernels only" in capsys.readouterr().err


def test_cli_inspect_shows_the_segments(capsys: pytest.CaptureFixture[str], kernel_image: Path) -> None:
    if Arch.running() is not Arch.X86_64 or not x86_64.MEMMAP.is_dir():
        pytest.skip("segments are shown for x86_64 machines with /sys/firmware/memmap")
    assert main(["kexec", "inspect", str(kernel_image)]) == 0
    out = capsys.readouterr().out
    assert "kexec_load (-c, no initrd, empty command line):" in out
    assert re.search(r"^\s+kernel: 0x[0-9a-f]+-0x[0-9a-f]+ \(\d+ bytes", out, re.M)
    assert re.search(r"^\s+entry 0x[0-9a-f]+ \(trampoline\)", out, re.M)


def test_enosys_from_kexec_file_load_falls_back_to_kexec_load(
    kernel_image: Path, meminfo: Path, fake_backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    if Arch.running() is not Arch.X86_64 or not x86_64.MEMMAP.is_dir():
        pytest.skip("the fallback builds segments for this machine's memory map")
    import errno

    fake_backend.fail["kexec_file_load"] = errno.ENOSYS
    plan = boot.prepare(kernel_image, [], "quiet", machine=Arch.X86_64, meminfo=meminfo)
    boot.load(plan, force=True)
    assert fake_backend.names() == ["kexec_file_load", "kexec_load"]
    assert "loading with kexec_load instead" in caplog.text


@pytest.mark.parametrize("code", ["EPERM", "EKEYREJECTED", "EBADMSG"])
def test_signature_and_lockdown_refusals_are_not_dodged(
    kernel_image: Path, meminfo: Path, fake_backend: FakeBackend, code: str
) -> None:
    import errno

    from kexec_core.errors import KexecError

    fake_backend.fail["kexec_file_load"] = getattr(errno, code)
    plan = boot.prepare(kernel_image, [], "", machine=Arch.X86_64, meminfo=meminfo)
    with pytest.raises(KexecError, match=code):
        boot.load(plan, force=True)
    assert fake_backend.names() == ["kexec_file_load"]


def test_elf_vmlinux_segments_at_their_physical_addresses(
    debian_vmlinux: Path, tmp_path: Path, meminfo: Path, fake_backend: FakeBackend
) -> None:
    """The ELF inside the Debian bzImage: kexec_load is chosen by itself, each PT_LOAD lands at its p_paddr."""
    rd = write(tmp_path / "initrd.img", newc("init", b"x"))
    memory = boot.MemoryLayout(memmap=QEMU_MEMMAP, avoid=())
    plan = boot.prepare(debian_vmlinux, [rd], CMDLINE, machine=Arch.X86_64, meminfo=meminfo, memory=memory)
    assert plan.method is boot.LoadMethod.KEXEC_LOAD
    assert plan.segments is not None
    assert plan.kernel.elf is not None
    data = debian_vmlinux.read_bytes()
    segs = by_name(plan.segments)
    for i, load in enumerate(plan.kernel.elf.segments):
        seg = segs[f"PT_LOAD {i}"]
        assert seg.mem == load.paddr // 4096 * 4096
        pad = load.paddr - seg.mem
        assert seg.buf[pad:] == data[load.offset : load.offset + load.filesz]
        assert seg.mem + seg.memsz >= load.paddr + load.memsz
    bp_seg = segs["boot_params+cmdline"]
    bp = bp_seg.buf
    assert bp[0x202:0x206] == b"HdrS"
    assert struct.unpack_from("<H", bp, 0x1FE)[0] == 0xAA55
    assert struct.unpack_from("<I", bp, 0x218)[0] == segs["initrd"].mem
    (cmd_ptr,) = struct.unpack_from("<I", bp, 0x228)
    assert bp[cmd_ptr - bp_seg.mem :].startswith(CMDLINE.encode() + b"\0")
    assert segs["trampoline"].buf == x86_64.trampoline_code(bp_seg.mem, plan.kernel.elf.entry)
    with pytest.raises(PreflightError, match=r"PT_LOAD segment 0 wants .* not free System RAM"):
        boot.prepare(
            debian_vmlinux,
            [],
            "",
            machine=Arch.X86_64,
            meminfo=meminfo,
            memory=boot.MemoryLayout(memmap=QEMU_MEMMAP, avoid=((0x1000000, 0x1001000),)),
        )


def test_kexec_load_is_chosen_when_only_its_single_initrd_copy_fits(kernel_image: Path, tmp_path: Path) -> None:
    # The 256 MiB case (tests/qemu/test_small_memory.py): kexec_file_load holds the kernel file and the initrd in
    # kernel buffers and copies them again; kexec_load copies the mapped initrd once (preflight.memory_needed).
    rd = write(tmp_path / "initrd.img", newc("padding", bytes(8 << 20)))
    info = inspect_kernel(kernel_image)
    rd_size = rd.stat().st_size
    file_load_need = info.loaded_kernel.size + info.memory_needed + 2 * rd_size
    kexec_load_need = info.loaded_kernel.size + info.memory_needed + rd_size
    between = write(
        tmp_path / "meminfo", f"MemAvailable: {(file_load_need + kexec_load_need) // 2 // 1024} kB\n".encode()
    )
    memory = boot.MemoryLayout(memmap=QEMU_MEMMAP, avoid=())
    plan = boot.prepare(kernel_image, [rd], CMDLINE, machine=Arch.X86_64, meminfo=between, memory=memory)
    assert plan.method is boot.LoadMethod.KEXEC_LOAD
    assert plan.segments is not None
    assert any("kexec_load chosen: kexec_file_load would not fit" in w for w in plan.warnings)
    assert bytes(by_name(plan.segments)["initrd"].buf) == rd.read_bytes()
    # Asked for kexec_file_load by name: refused, naming the two copies.
    with pytest.raises(MemoryShortError, match=r"twice\) but only"):
        boot.prepare(
            kernel_image, [rd], CMDLINE, machine=Arch.X86_64, meminfo=between, method=boot.LoadMethod.KEXEC_FILE_LOAD
        )
    # Less than even kexec_load needs: refused, naming the single mapped copy.
    short = write(tmp_path / "short", f"MemAvailable: {(kexec_load_need - (1 << 20)) // 1024} kB\n".encode())
    with pytest.raises(MemoryShortError, match=r"once, mapped\) but only"):
        boot.prepare(kernel_image, [rd], CMDLINE, machine=Arch.X86_64, meminfo=short, memory=memory)
    # Plenty: kexec_file_load, as before.
    plenty = write(tmp_path / "plenty", f"MemAvailable: {file_load_need // 1024 + 1024} kB\n".encode())
    assert boot.prepare(kernel_image, [rd], CMDLINE, machine=Arch.X86_64, meminfo=plenty).method is (
        boot.LoadMethod.KEXEC_FILE_LOAD
    )


def test_reclaimable_slab_is_not_counted_for_a_load(tmp_path: Path) -> None:
    # What a 256 MiB payload VM reported before the OOM killer ended a kexec_file_load that MemAvailable allowed.
    from kexec_core.memory import allocatable

    text = (
        "MemFree: 110000 kB\nMemAvailable: 121000 kB\nActive(file): 24 kB\nInactive(file): 4 kB\n"
        "KReclaimable: 14884 kB\n"
    )
    assert allocatable(write(tmp_path / "meminfo", text.encode())) == (110000 + 28) * 1024
    # Only MemAvailable (older kernels' fields missing, the tests' fake files): it is what there is.
    assert allocatable(write(tmp_path / "short", b"MemAvailable: 5000 kB\n")) == 5000 * 1024
    assert allocatable(tmp_path / "absent") is None
