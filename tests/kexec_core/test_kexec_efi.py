"""The EFI hand-off of x86_64 kexec_load (kexec_core/efi.py), from a real capture, checked field by field.

tests/data/efi_sysfs_ovmf is what the payload kernel (Debian 6.1, booted by QEMU's -kernel through OVMF and the EFI
stub) showed in /sys/firmware/efi and /sys/kernel/boot_params, copied out over the serial console with `od` (the
recording is tests/qemu/test_efi_kexec.py's capture step). The expected values are read from those files here with
their own parsing, so the test can fail if efi.py reads a field from the wrong place.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from kexec_core import boot, efi
from kexec_core.arch import Arch
from kexec_core.segments import MemRange, PlannedSegment, SegmentPlan
from tests.kexec_core.kexec_craft import newc, write

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "efi_sysfs_ovmf"
CMDLINE = "console=ttyS0,115200 e2e=efi"
# An OVMF-like map for a 1 GiB q35 guest: the runtime regions of the capture sit in reserved ranges, as in e820.
OVMF_MEMMAP = (
    MemRange(0x0, 0xA0000, 1),
    MemRange(0x100000, 0x3D35C000, 1),
    MemRange(0x3D35C000, 0x3D385000, 2),
    MemRange(0x3D385000, 0x3EEB7000, 1),
    MemRange(0x3EEB7000, 0x3EF78000, 2),
    MemRange(0x3EF78000, 0x3F8ED000, 1),
    MemRange(0x3F8ED000, 0x3FAED000, 2),
    MemRange(0x3FAED000, 0x3FF58000, 1),
    MemRange(0x3FF58000, 0x3FF78000, 2),
    MemRange(0x3FF78000, 0x40000000, 1),
)


def files(root: Path) -> dict[str, int]:
    e = root / "firmware" / "efi"
    systab = dict(line.split("=", 1) for line in (e / "systab").read_text().split())
    return {
        "fw_vendor": int((e / "fw_vendor").read_text(), 16),
        "runtime": int((e / "runtime").read_text(), 16),
        "tables": int((e / "config_table").read_text(), 16),
        "smbios": int(systab["SMBIOS"], 16),
        "acpi20": int(systab["ACPI20"], 16),
    }


def runtime_map(root: Path) -> list[tuple[int, int, int, int, int]]:
    rt = root / "firmware" / "efi" / "runtime-map"
    out = []
    for n in range(len(list(rt.iterdir()))):
        d = rt / str(n)
        out.append(
            tuple(int((d / f).read_text(), 16) for f in ("type", "phys_addr", "virt_addr", "num_pages", "attribute"))
        )
    return out  # type: ignore[return-value]


@pytest.fixture
def meminfo(tmp_path: Path) -> Path:
    return write(tmp_path / "meminfo", b"MemAvailable:  4000000 kB\n")


def plan_with(kernel: Path, initrds: list[Path], meminfo: Path, sysfs: Path) -> boot.BootPlan:
    memory = boot.MemoryLayout(memmap=OVMF_MEMMAP, avoid=(), sysfs=sysfs)
    return boot.prepare(
        kernel, initrds, CMDLINE, machine=Arch.X86_64, meminfo=meminfo, method=boot.LoadMethod.KEXEC_LOAD, memory=memory
    )


def by_name(plan: SegmentPlan) -> dict[str, PlannedSegment]:
    return {s.name.split()[0]: s for s in plan.segments}


def test_read_the_real_capture() -> None:
    handoff = efi.read(CAPTURE)
    assert handoff is not None
    state = handoff.state
    assert state is not None, handoff.why_not
    want = files(CAPTURE)
    assert (state.fw_vendor, state.runtime, state.tables, state.smbios) == (
        want["fw_vendor"],
        want["runtime"],
        want["tables"],
        want["smbios"],
    )
    assert handoff.acpi_rsdp == want["acpi20"]
    bp = (CAPTURE / "kernel" / "boot_params" / "data").read_bytes()
    sig, systab, desc_size, desc_version = struct.unpack_from("<4sIII", bp, 0x1C0)
    assert sig == b"EL64"
    assert state.systab == systab | struct.unpack_from("<I", bp, 0x1D8)[0] << 32
    assert (state.desc_size, state.desc_version) == (desc_size, desc_version) == (48, 1)
    assert [(r.type, r.phys_addr, r.virt_addr, r.num_pages, r.attribute) for r in state.regions] == runtime_map(CAPTURE)
    assert all(r.attribute >> 63 for r in state.regions)  # EFI_MEMORY_RUNTIME, as the runtime map holds only those


def test_kexec_load_plan_hands_on_efi_field_by_field(kernel_image: Path, tmp_path: Path, meminfo: Path) -> None:
    rd = write(tmp_path / "initrd.img", newc("init", b"#!/bin/sh\n"))
    plan = plan_with(kernel_image, [rd], meminfo, CAPTURE)
    assert plan.segments is not None
    segs = by_name(plan.segments)
    assert set(segs) == {"kernel", "boot_params+cmdline", "initrd", "trampoline", "setup_data"}
    ram = [r for r in OVMF_MEMMAP if r.type == 1]
    for s in plan.segments.segments:
        assert any(r.start <= s.mem and s.mem + s.memsz <= r.end for r in ram), f"{s.name} is not in System RAM"
    sd_seg, bp = segs["setup_data"], segs["boot_params+cmdline"].buf
    assert sd_seg.mem + sd_seg.memsz <= 1 << 32
    assert sd_seg.source.startswith("bootmenu (built from sysfs")
    want = files(CAPTURE)
    running = (CAPTURE / "kernel" / "boot_params" / "data").read_bytes()

    # hdr.setup_data -> struct setup_data {next, type, len} + struct efi_setup_data
    assert struct.unpack_from("<Q", bp, 0x250)[0] == sd_seg.mem
    nxt, kind, length = struct.unpack_from("<QII", sd_seg.buf, 0)
    assert (nxt, kind, length) == (0, 4, 96)
    fw_vendor, runtime, tables, smbios = struct.unpack_from("<QQQQ", sd_seg.buf, 16)
    assert (fw_vendor, runtime, tables, smbios) == (want["fw_vendor"], want["runtime"], want["tables"], want["smbios"])
    assert sd_seg.buf[16 + 32 : 16 + 96] == bytes(64)

    # efi_info: the running kernel's, its memory map now the runtime map right after the setup_data
    sig, systab, desc_size, desc_version, mm_lo, mm_size, systab_hi, mm_hi = struct.unpack_from("<4s7I", bp, 0x1C0)
    r_sig, r_systab, r_desc, r_ver = struct.unpack_from("<4sIII", running, 0x1C0)
    assert (sig, systab, desc_size, desc_version, systab_hi) == (r_sig, r_systab, r_desc, r_ver, 0)
    regions = runtime_map(CAPTURE)
    assert mm_size == len(regions) * desc_size
    at = (mm_lo | mm_hi << 32) - sd_seg.mem
    assert at >= 16 + 96
    assert at % 16 == 0
    for i, region in enumerate(regions):
        t, pad, phys, virt, pages, attr = struct.unpack_from("<IIQQQQ", sd_seg.buf, at + i * desc_size)
        assert (t, phys, virt, pages, attr) == region
        assert pad == 0
    assert len(sd_seg.buf) == at + mm_size
    assert bp[0x1EC] == running[0x1EC]  # secure_boot
    assert struct.unpack_from("<Q", bp, 0x070)[0] == want["acpi20"]

    lines = plan.describe()
    assert any("setup_data (SETUP_EFI + EFI runtime map)" in line for line in lines)
    note = next(line for line in lines if "EFI hand-off" in line)
    assert f"systab {systab:#x}" in note
    assert "5 regions of 48 bytes" in note
    assert plan.to_json()["segments"]["notes"] == [note.strip()]


def test_without_runtime_map_the_next_kernel_boots_as_noefi(kernel_image: Path, tmp_path: Path, meminfo: Path) -> None:
    """A kernel without CONFIG_EFI_RUNTIME_MAP: no efi_info (the second kernel has no EFI runtime services), said in
    the plan; ACPI still reaches it through acpi_rsdp_addr."""
    sysfs = tmp_path / "sys"
    shutil.copytree(CAPTURE, sysfs)
    shutil.rmtree(sysfs / "firmware" / "efi" / "runtime-map")
    plan = plan_with(kernel_image, [], meminfo, sysfs)
    assert plan.segments is not None
    segs = by_name(plan.segments)
    assert "setup_data" not in segs
    bp = segs["boot_params+cmdline"].buf
    assert bp[0x1C0:0x1E0] == bytes(32)
    assert struct.unpack_from("<Q", bp, 0x250)[0] == 0
    assert struct.unpack_from("<Q", bp, 0x070)[0] == files(CAPTURE)["acpi20"]
    note = next(line for line in plan.describe() if "EFI hand-off" in line)
    assert "runtime-map" in note
    assert "CONFIG_EFI_RUNTIME_MAP" in note
    assert "noefi" in note


def test_refusals_name_the_file(tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    shutil.copytree(CAPTURE, sysfs)
    data = sysfs / "kernel" / "boot_params" / "data"
    bp = bytearray(data.read_bytes())
    bp[0x1CC] = 2  # efi_memdesc_version
    data.write_bytes(bytes(bp))
    handoff = efi.read(sysfs)
    assert handoff is not None
    assert handoff.state is None
    assert "descriptor version 2" in handoff.why_not
    assert str(data) in handoff.why_not
    data.write_bytes(b"\0" * 100)
    handoff = efi.read(sysfs)
    assert handoff is not None
    assert "too short" in handoff.why_not
    (sysfs / "firmware" / "efi" / "runtime-map" / "0" / "type").write_text("garbage\n")
    data.write_bytes(bytes(bp[:0x1CC]) + b"\x01" + bytes(bp[0x1CD:]))
    handoff = efi.read(sysfs)
    assert handoff is not None
    assert "runtime-map/0/type: not a number" in handoff.why_not


def test_no_efi_directory_means_no_handoff(kernel_image: Path, tmp_path: Path, meminfo: Path) -> None:
    """A BIOS boot (SeaBIOS): no /sys/firmware/efi, the zero page as before, nothing said."""
    sysfs = tmp_path / "sys"
    (sysfs / "kernel").mkdir(parents=True)
    assert efi.read(sysfs) is None
    plan = plan_with(kernel_image, [], meminfo, sysfs)
    assert plan.segments is not None
    assert plan.segments.notes == ()
    bp = by_name(plan.segments)["boot_params+cmdline"].buf
    assert bp[0x1C0:0x1E0] == bytes(32)
    assert struct.unpack_from("<Q", bp, 0x070)[0] == 0


def test_elf_vmlinux_gets_the_handoff_too(debian_vmlinux: Path, tmp_path: Path, meminfo: Path) -> None:
    memory = boot.MemoryLayout(memmap=OVMF_MEMMAP, avoid=(), sysfs=CAPTURE)
    plan = boot.prepare(debian_vmlinux, [], CMDLINE, machine=Arch.X86_64, meminfo=meminfo, memory=memory)
    assert plan.segments is not None
    segs = by_name(plan.segments)
    bp = segs["boot_params+cmdline"].buf
    assert struct.unpack_from("<Q", bp, 0x250)[0] == segs["setup_data"].mem
    assert bp[0x1C0:0x1C4] == b"EL64"
