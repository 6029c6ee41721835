"""kexec_load(2) segments for an x86_64 bzImage, built in user space: the 64-bit boot protocol.

Spec: Documentation/arch/x86/boot.rst ("64-bit Boot Protocol", "The Zero Page", "Details of Header Fields") and
Documentation/arch/x86/zero-page.rst; boot_params offsets from arch/x86/include/uapi/asm/bootparam.h; the memory map
from /sys/firmware/memmap (Documentation/ABI/testing/sysfs-firmware-memmap: the firmware's e820 table, `end`
inclusive); a reserved crash kernel region from /proc/iomem ("Crash kernel").

Segments, each page-aligned as kexec_load requires (kernel/kexec_core.c sanity_check_segment_list):
  kernel       the protected-mode code (the file after its setup sectors) at an address aligned to kernel_alignment,
               with memsz = init_size so the in-place decompression has its room;
  boot_params  the zero page: the file's setup header, type_of_loader 0xff, cmd_line_ptr, ramdisk_image/size (and
               their ext_ high halves), the e820 table; the command line follows it in the same segment;
  initrd       the initrds concatenated (each padded to 4 bytes), as high as initrd_addr_max allows;
  (an ELF vmlinux instead: each PT_LOAD at its p_paddr, and a setup header made up for the zero page)
  setup_data   when the running kernel was booted through EFI: a SETUP_EFI setup_data and the EFI runtime map,
               which boot_params' efi_info and hdr.setup_data point at, so the next kernel keeps EFI runtime
               services (efi.py);
  trampoline   the entry point: relocate_kernel_64.S jumps to it in 64-bit mode with identity-mapped memory and
               %rsi cleared, and the kernel's 64-bit entry (load address + 0x200) wants %rsi = &boot_params. The
               code is 22 bytes, generated here (see TRAMPOLINE_CODE).

The GDT needs no work: the running kernel's __KERNEL_CS (0x10) and __KERNEL_DS (0x18) are the __BOOT_CS and
__BOOT_DS selectors boot.rst asks for, and the decompressor (arch/x86/boot/compressed/head_64.S) loads its own GDT.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

from kexec_core.efi import BP_ACPI_RSDP_ADDR, BP_EFI_INFO, BP_SECURE_BOOT, EFI_INFO_SIZE, HDR_SETUP_DATA, EfiHandoff
from kexec_core.elf import ElfInfo
from kexec_core.errors import PreflightError
from kexec_core.segments import Allocator, MemRange, PlannedSegment, SegmentBytes, SegmentPlan

PAGE = 4096
MIB = 1 << 20
MEMMAP = Path("/sys/firmware/memmap")
IOMEM = Path("/proc/iomem")
LOW_LIMIT = MIB  # nothing below 1 MiB: real-mode IVT, BIOS data, EBDA, option ROMs
MAX_E820 = 128  # E820_MAX_ENTRIES_ZEROPAGE
ENTRY_64 = 0x200  # the 64-bit entry point's offset in the protected-mode code (boot.rst)
LOADER_TYPE = 0xFF  # type_of_loader: undefined boot loader
ELF_CMDLINE_SIZE = 2048  # COMMAND_LINE_SIZE of x86 (asm/setup.h): an ELF vmlinux has no header saying so

# boot_params (zero page) offsets, arch/x86/include/uapi/asm/bootparam.h.
BP_EXT_RAMDISK_IMAGE = 0x0C0
BP_EXT_RAMDISK_SIZE = 0x0C4
BP_EXT_CMD_LINE_PTR = 0x0C8
BP_E820_ENTRIES = 0x1E8
BP_SENTINEL = 0x1EF
BP_HDR = 0x1F1
BP_TYPE_OF_LOADER = 0x210
BP_RAMDISK_IMAGE = 0x218
BP_RAMDISK_SIZE = 0x21C
BP_CMD_LINE_PTR = 0x228
BP_E820_TABLE = 0x2D0
BOOT_PARAMS_SIZE = PAGE

E820_TYPES = {
    "System RAM": 1,
    "Reserved": 2,
    "ACPI Tables": 3,
    "ACPI Non-volatile Storage": 4,
    "Unusable memory": 5,
    "Persistent Memory": 7,
    "Persistent Memory (legacy)": 12,
}
E820_RAM = 1


def trampoline_code(boot_params: int, kernel_entry: int) -> bytes:
    """The entry code, instruction by instruction (Intel SDM vol. 2, REX.W + B8+r io = MOV r64, imm64):

    48 BE <imm64>   mov rsi, boot_params     the 64-bit boot protocol's only argument
    48 B8 <imm64>   mov rax, kernel_entry    load address + 0x200
    FF E0           jmp rax
    """
    return b"\x48\xbe" + struct.pack("<Q", boot_params) + b"\x48\xb8" + struct.pack("<Q", kernel_entry) + b"\xff\xe0"


def read_memmap(root: Path = MEMMAP) -> list[MemRange]:
    """The firmware memory map; PreflightError when it cannot be read (kexec_load needs it for boot_params)."""
    ranges = []
    try:
        entries = sorted(root.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 1 << 30)
        for entry in entries[: 4 * MAX_E820]:
            start = int((entry / "start").read_text(), 16)
            end = int((entry / "end").read_text(), 16) + 1
            kind = E820_TYPES.get((entry / "type").read_text().strip(), 2)
            ranges.append(MemRange(start, end, kind))
    except (OSError, ValueError) as err:
        raise PreflightError(root, f"cannot read the firmware memory map for kexec_load: {err}") from None
    if not ranges:
        raise PreflightError(root, "the firmware memory map is empty (CONFIG_FIRMWARE_MEMMAP?)")
    return sorted(ranges, key=lambda r: r.start)


def read_crash_regions(iomem: Path = IOMEM) -> list[tuple[int, int]]:
    """[start, end) of each "Crash kernel" region in /proc/iomem (zeros when not root: then none are known)."""
    regions = []
    try:
        lines = iomem.read_text().splitlines()
    except OSError:
        return []
    for line in lines[:10000]:
        span, _, name = line.strip().partition(" : ")
        if name.strip() != "Crash kernel":
            continue
        start, _, end = span.partition("-")
        try:
            first, last = int(start, 16), int(end, 16)
        except ValueError:
            continue
        if last > first:
            regions.append((first, last + 1))
    return regions


class _Allocator(Allocator):
    """Placement in the e820 System RAM within [mem_min, mem_max), above 1 MiB, around what is taken."""

    def __init__(self, memmap: Sequence[MemRange], avoid: Sequence[tuple[int, int]], mem_min: int, mem_max: int):
        free = [(max(r.start, mem_min, LOW_LIMIT), min(r.end, mem_max)) for r in memmap if r.type == E820_RAM]
        super().__init__(free, avoid)


def _page_up(n: int) -> int:
    return -(-n // PAGE) * PAGE


def build(
    path: Path,
    kernel: bytes,
    initrd: SegmentBytes,
    cmdline: str,
    *,
    memmap: Sequence[MemRange],
    avoid: Sequence[tuple[int, int]] = (),
    mem_min: int = 0,
    mem_max: int = 1 << 64,
    efi: EfiHandoff | None = None,
) -> SegmentPlan:
    """The kexec_load segments that boot the bzImage `kernel` (whole file) with `initrd` and `cmdline`."""
    from kexec_core import bzimage

    hdr = bzimage.parse(path, kernel[: bzimage.HEADER_END])
    problems = hdr.kexec_file_problems()  # the same requirements as the 64-bit protocol: relocatable, 64-bit entry
    if problems:
        raise PreflightError(path, "kexec_load (64-bit boot protocol) cannot boot this bzImage: " + "; ".join(problems))
    (kernel_alignment,) = struct.unpack_from("<I", kernel, 0x230)
    (initrd_addr_max,) = struct.unpack_from("<I", kernel, 0x22C)
    (pref_address,) = struct.unpack_from("<Q", kernel, 0x258)
    align = max(kernel_alignment, PAGE)
    setup_end = 0x202 + kernel[0x201]  # the setup header ends here (boot.rst: 0x0202 + the byte at 0x0201)
    protected = kernel[hdr.setup_size :]
    init_size = max(hdr.init_size or 0, len(protected))
    cmd = cmdline.encode() + b"\0"
    if len(cmd) > hdr.cmdline_size + 1:
        raise PreflightError(path, f"command line is {len(cmd) - 1} bytes, this kernel takes {hdr.cmdline_size}")

    alloc = _Allocator(memmap, avoid, mem_min, mem_max)
    for r in memmap:  # a non-RAM range overlapping a RAM one wins
        if r.type != E820_RAM:
            alloc.take(r.start, r.end)
    kernel_memsz = _page_up(init_size)
    # A relocatable kernel loaded below LOAD_PHYSICAL_ADDR decompresses itself to LOAD_PHYSICAL_ADDR anyway
    # (compressed/head_64.S), so it goes no lower than its pref_address.
    kaddr = alloc.place(kernel_memsz, align, limit=mem_max, low=pref_address)
    bp_memsz = _page_up(BOOT_PARAMS_SIZE + len(cmd))
    bpaddr = alloc.place(bp_memsz, PAGE, limit=min(mem_max, 1 << 32))
    tramp_addr = alloc.place(PAGE, PAGE, limit=min(mem_max, 1 << 32))
    efi_segment = _efi_segment(path, alloc, efi, mem_max)
    rd_addr = 0
    if initrd:
        # Below initrd_addr_max like kexec-tools; above 4 GiB (ext_ramdisk_image) only if it fits nowhere else.
        rd_size = _page_up(len(initrd))
        placed = alloc.place(rd_size, PAGE, limit=min(mem_max, initrd_addr_max + 1), high=True)
        if placed is None and hdr.xloadflags & bzimage.XLoadFlag.CAN_BE_LOADED_ABOVE_4G:
            placed = alloc.place(rd_size, PAGE, limit=mem_max, high=True)
        if placed is None:
            raise PreflightError(path, f"no room for the {len(initrd)}-byte initrd in System RAM within the limits")
        rd_addr = placed
    if kaddr is None or bpaddr is None or tramp_addr is None:
        raise PreflightError(
            path, f"no room for the kernel ({kernel_memsz} bytes aligned to {align:#x}) in System RAM within the limits"
        )

    bp = _zero_page(
        kernel[BP_HDR:setup_end], bpaddr, bp_memsz, cmd=cmd, rd_addr=rd_addr, rd_size=len(initrd), memmap=memmap
    )
    segments = [
        PlannedSegment("kernel", kaddr, kernel_memsz, protected),
        PlannedSegment("boot_params+cmdline", bpaddr, bp_memsz, _with_efi(bp, efi, efi_segment)),
    ]
    if efi_segment is not None:
        segments.append(efi_segment)
    if initrd:
        segments.append(PlannedSegment("initrd", rd_addr, _page_up(len(initrd)), initrd))
    code = trampoline_code(bpaddr, kaddr + ENTRY_64)
    segments.append(PlannedSegment("trampoline", tramp_addr, PAGE, code))
    return SegmentPlan(entry=tramp_addr, segments=tuple(sorted(segments, key=lambda s: s.mem)), notes=_notes(efi))


def _zero_page(
    header: bytes, addr: int, size: int, *, cmd: bytes, rd_addr: int, rd_size: int, memmap: Sequence[MemRange]
) -> bytes:
    """boot_params at `addr` with `header` (the setup header from 0x1f1) and the command line right after it."""
    bp = bytearray(size)
    bp[BP_HDR : BP_HDR + len(header)] = header
    bp[BP_SENTINEL] = 0
    bp[BP_TYPE_OF_LOADER] = LOADER_TYPE
    cmd_addr = addr + BOOT_PARAMS_SIZE
    bp[BOOT_PARAMS_SIZE : BOOT_PARAMS_SIZE + len(cmd)] = cmd
    struct.pack_into("<I", bp, BP_CMD_LINE_PTR, cmd_addr & 0xFFFFFFFF)
    struct.pack_into("<I", bp, BP_EXT_CMD_LINE_PTR, cmd_addr >> 32)
    struct.pack_into("<II", bp, BP_RAMDISK_IMAGE, rd_addr & 0xFFFFFFFF, rd_size & 0xFFFFFFFF)
    struct.pack_into("<I", bp, BP_EXT_RAMDISK_IMAGE, rd_addr >> 32)
    struct.pack_into("<I", bp, BP_EXT_RAMDISK_SIZE, rd_size >> 32)
    e820 = list(memmap)[:MAX_E820]
    bp[BP_E820_ENTRIES] = len(e820)
    for i, r in enumerate(e820):
        struct.pack_into("<QQI", bp, BP_E820_TABLE + 20 * i, r.start, r.size, r.type)
    return bytes(bp)


def elf_setup_header(cmdline_size: int = ELF_CMDLINE_SIZE) -> bytes:
    """A setup header for a kernel that has none (an ELF vmlinux), from 0x1f1 to 0x268: what the uncompressed
    kernel reads of it (boot.rst): boot_flag, "HdrS", protocol 2.15, LOADED_HIGH, cmdline_size."""
    hdr = bytearray(0x268 - BP_HDR)

    def put(fmt: str, offset: int, value: int | bytes) -> None:
        struct.pack_into(fmt, hdr, offset - BP_HDR, value)

    put("<H", 0x1FE, 0xAA55)
    put("<4s", 0x202, b"HdrS")
    put("<H", 0x206, 0x020F)
    put("<B", 0x211, 0x01)  # loadflags: LOADED_HIGH
    put("<I", 0x22C, 0x7FFFFFFF)  # initrd_addr_max
    put("<I", 0x238, cmdline_size)
    return bytes(hdr)


def build_elf(
    path: Path,
    elf: ElfInfo,
    data: bytes,
    initrd: SegmentBytes,
    cmdline: str,
    *,
    memmap: Sequence[MemRange],
    avoid: Sequence[tuple[int, int]] = (),
    mem_min: int = 0,
    mem_max: int = 1 << 64,
    efi: EfiHandoff | None = None,
) -> SegmentPlan:
    """The kexec_load segments that boot an x86_64 ELF vmlinux: each PT_LOAD at its p_paddr (an ELF kernel is not
    relocated), a made-up setup header in the zero page, and the trampoline to e_entry (physical, startup_64)."""
    if elf.arch.value != "x86_64" or elf.type != "ET_EXEC":
        raise PreflightError(
            path, f"kexec_load of an ELF kernel: x86_64 ET_EXEC only (this is {elf.machine} {elf.type})"
        )
    cmd = cmdline.encode() + b"\0"
    if len(cmd) > ELF_CMDLINE_SIZE:
        raise PreflightError(path, f"command line is {len(cmd) - 1} bytes, at most {ELF_CMDLINE_SIZE - 1} here")
    alloc = _Allocator(memmap, avoid, mem_min, mem_max)
    for r in memmap:
        if r.type != E820_RAM:
            alloc.take(r.start, r.end)
    segments = []
    for i, seg in enumerate(elf.segments):
        if not seg.memsz:
            continue
        start = seg.paddr // PAGE * PAGE
        memsz = _page_up(seg.paddr - start + seg.memsz)
        if not alloc.claim(start, start + memsz):
            raise PreflightError(
                path,
                f"PT_LOAD segment {i} wants {start:#x}-{start + memsz - 1:#x}, which is not free System RAM "
                "within the limits (an ELF kernel cannot be moved)",
            )
        buf = bytes(seg.paddr - start) + data[seg.offset : seg.offset + seg.filesz]
        segments.append(PlannedSegment(f"PT_LOAD {i}", start, memsz, buf))
    bp_memsz = _page_up(BOOT_PARAMS_SIZE + len(cmd))
    bpaddr = alloc.place(bp_memsz, PAGE, limit=min(mem_max, 1 << 32))
    tramp_addr = alloc.place(PAGE, PAGE, limit=min(mem_max, 1 << 32))
    efi_segment = _efi_segment(path, alloc, efi, mem_max)
    if efi_segment is not None:
        segments.append(efi_segment)
    rd_addr = 0
    if initrd:
        placed = alloc.place(_page_up(len(initrd)), PAGE, limit=min(mem_max, 0x80000000), high=True)
        if placed is None:
            raise PreflightError(path, f"no room for the {len(initrd)}-byte initrd in System RAM within the limits")
        rd_addr = placed
        segments.append(PlannedSegment("initrd", rd_addr, _page_up(len(initrd)), initrd))
    if bpaddr is None or tramp_addr is None:
        raise PreflightError(path, "no room below 4 GiB for boot_params and the trampoline")
    bp = _zero_page(elf_setup_header(), bpaddr, bp_memsz, cmd=cmd, rd_addr=rd_addr, rd_size=len(initrd), memmap=memmap)
    segments.append(PlannedSegment("boot_params+cmdline", bpaddr, bp_memsz, _with_efi(bp, efi, efi_segment)))
    segments.append(PlannedSegment("trampoline", tramp_addr, PAGE, trampoline_code(bpaddr, elf.entry)))
    return SegmentPlan(entry=tramp_addr, segments=tuple(sorted(segments, key=lambda s: s.mem)), notes=_notes(efi))


def _efi_segment(path: Path, alloc: _Allocator, efi: EfiHandoff | None, mem_max: int) -> PlannedSegment | None:
    """The SETUP_EFI setup_data followed by the EFI runtime map (efi.py), below 4 GiB like boot_params."""
    if efi is None or efi.state is None:
        return None
    buf = efi.state.segment()
    size = _page_up(len(buf))
    addr = alloc.place(size, PAGE, limit=min(mem_max, 1 << 32))
    if addr is None:
        raise PreflightError(path, "no room below 4 GiB for the EFI setup_data and runtime map")
    return PlannedSegment("setup_data (SETUP_EFI + EFI runtime map)", addr, size, buf)


def _with_efi(bp: bytes, efi: EfiHandoff | None, segment: PlannedSegment | None) -> bytes:
    """The zero page with what the EFI hand-off sets: acpi_rsdp_addr always (when known), and with the EFI state
    efi_info (its memory map: the runtime map in `segment`), secure_boot and hdr.setup_data."""
    if efi is None:
        return bp
    out = bytearray(bp)
    if efi.acpi_rsdp:
        struct.pack_into("<Q", out, BP_ACPI_RSDP_ADDR, efi.acpi_rsdp)
    if efi.state is not None and segment is not None:
        memmap_addr = segment.mem + efi.state.memmap_offset
        out[BP_EFI_INFO : BP_EFI_INFO + EFI_INFO_SIZE] = efi.state.efi_info_for(memmap_addr)
        out[BP_SECURE_BOOT] = efi.state.secure_boot
        # The list's only entry: setup_data in a kernel file's header is the boot loader's field, always 0 there.
        struct.pack_into("<Q", out, HDR_SETUP_DATA, segment.mem)
    return bytes(out)


def _notes(efi: EfiHandoff | None) -> tuple[str, ...]:
    return () if efi is None else (efi.describe(),)
