"""arm64 and RISC-V `Image` headers, and the kexec_load(2) segments that boot an arm64 Image with a devicetree.

Specs: Documentation/arch/arm64/booting.rst, Documentation/arch/riscv/boot-image-header.rst; /chosen as
Documentation/devicetree/bindings/chosen.txt and the dtschema chosen.yaml describe it (bootargs,
linux,initrd-start/end with the end exclusive as drivers/of/fdt.c reads it, kaslr-seed, rng-seed,
linux,elfcorehdr, linux,usable-memory-range); /proc/iomem as Documentation/filesystems/proc.rst shows it.

Both headers are 64 bytes little-endian at the start of the uncompressed kernel; the EFI stub may put "MZ" in the
first two bytes, so identification goes by the magic at 0x38 (arm64) or 0x30 (RISC-V).

Segments (kexec_load, KEXEC_ARCH_DEFAULT), each page-aligned:
  kernel      the Image at a 2 MiB-aligned base + text_offset, memsz image_size (its BSS included); as low in RAM as
              it fits (flags bit 3 clear asks for "as close as possible to the base of DRAM"; set, anywhere: low too);
  initrd      above the kernel, within 32 GiB of its base (kexec-tools' bound, so that an older kernel's linear map
              reaches it);
  dtb         the entry's devicetree or the running one (/sys/firmware/fdt) with /chosen rewritten, 8-byte aligned
              and at most 2 MiB (booting.rst), above the initrd;
  trampoline  the entry point (see trampoline_code): arch/arm64/kernel/relocate_kernel.S jumps to it with the MMU
              off and x0 = 0 for a kexec_load image (only kexec_file_load records a dtb address), and booting.rst asks
              for x0 = the dtb's physical address, x1 = x2 = x3 = 0 on entry to the kernel.
Memory: "System RAM" from /proc/iomem minus its "reserved" children and "Crash kernel" (what kexec-tools reads on
arm64), else the DTB's /memory nodes; always minus the DTB's /memreserve/ entries and /reserved-memory regions.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kexec_core import fdt
from kexec_core.arch import Arch
from kexec_core.errors import ImageError, PreflightError
from kexec_core.fdt import Fdt
from kexec_core.segments import PAGE, Allocator, MemRange, PlannedSegment, SegmentBytes, SegmentPlan, page_up

ARM64_MAGIC = b"ARM\x64"
RISCV_MAGIC = b"RISCV\0\0\0"
HEADER_SIZE = 64
PAGE_SIZES = {0: "unspecified", 1: "4K", 2: "16K", 3: "64K"}


@dataclass(frozen=True)
class ImageHeader:
    arch: Arch
    text_offset: int
    image_size: int
    flags: int

    @property
    def big_endian(self) -> bool:
        return self.arch is Arch.ARM64 and bool(self.flags & 1)

    @property
    def page_size(self) -> str:
        return PAGE_SIZES[(self.flags >> 1) & 3] if self.arch is Arch.ARM64 else "n/a"

    def to_json(self) -> dict[str, Any]:
        return {
            "text_offset": self.text_offset,
            "image_size": self.image_size,
            "big_endian": self.big_endian,
            "page_size": self.page_size,
        }


def identify(head: bytes) -> Arch | None:
    if head[0x38:0x3C] == ARM64_MAGIC:
        return Arch.ARM64
    if head[0x30:0x38] == RISCV_MAGIC:
        return Arch.RISCV64
    return None


def parse(path: Path, data: bytes) -> ImageHeader:
    arch = identify(data)
    if arch is None:
        raise ImageError(path, "not an arm64/RISC-V Image: no header magic at 0x38/0x30")
    if len(data) < HEADER_SIZE:
        raise ImageError(path, f"truncated Image header: {len(data)} of {HEADER_SIZE} bytes")
    text_offset, image_size, flags = struct.unpack_from("<QQQ", data, 8)
    if arch is Arch.ARM64 and image_size == 0:
        # booting.rst: image_size 0 means a kernel older than 3.17, whose text_offset cannot be trusted.
        raise ImageError(path, "arm64 Image header has image_size 0 (a pre-3.17 kernel): unsupported")
    return ImageHeader(arch=arch, text_offset=text_offset, image_size=image_size, flags=flags)


MIB = 1 << 20
GIB = 1 << 30
KERNEL_ALIGN = 2 * MIB  # booting.rst: text_offset bytes from a 2 MB aligned base address
DTB_MAX = 2 * MIB  # booting.rst: the dtb must not exceed 2 megabytes
SEGMENT_WINDOW = 32 * GIB  # initrd and dtb within this of the kernel's base
FLAG_PLACE_ANYWHERE = 1 << 3  # booting.rst flags bit 3: physical placement
KASLR_SEED_SIZE = 8  # a u64 (arch/arm64/kernel/kaslr.c reads and then zeroes it)
RNG_SEED_SIZE = 128  # what the kernel's own kexec_file_load puts in rng-seed (drivers/of/kexec.c RNG_SEED_SIZE)
RUNNING_FDT = Path("/sys/firmware/fdt")
IOMEM = Path("/proc/iomem")
RAM = 1
# Left in /chosen by a crash kernel's loader: a normal boot that kept them would think it is a crash dump kernel
# and limit itself to the crash region (drivers/of/kexec.c removes them the same way for kexec_file_load).
STALE_CHOSEN = ("linux,elfcorehdr", "linux,usable-memory-range")

# The trampoline: A64 instructions (Arm ARM C6.2), little-endian words, then two 8-byte literals.
_LDR_LITERAL_X = 0x58000000  # LDR Xt, label: imm19 = (label - pc) / 4 at bits 5-23, Rt at bits 0-4
_MOV_ZR = 0xAA1F03E0  # MOV Xd, XZR = ORR Xd, XZR, XZR: Rd at bits 0-4
_BR = 0xD61F0000  # BR Xn: Rn at bits 5-9
TRAMPOLINE_SIZE = 40


def _ldr_literal(rt: int, pc: int, label: int) -> int:
    return _LDR_LITERAL_X | (((label - pc) // 4) << 5) | rt


def trampoline_code(dtb: int, kernel_entry: int) -> bytes:
    """The entry code, instruction by instruction (offsets in bytes):

    0x00  580000c0  ldr  x0, 0x18    x0 = the dtb's physical address (the literal at 0x18)
    0x04  580000f1  ldr  x17, 0x20   x17 = the kernel's entry (the literal at 0x20): its load address
    0x08  aa1f03e1  mov  x1, xzr     x1-x3 = 0, reserved for future use (booting.rst)
    0x0c  aa1f03e2  mov  x2, xzr
    0x10  aa1f03e3  mov  x3, xzr
    0x14  d61f0220  br   x17
    0x18  .quad dtb
    0x20  .quad kernel_entry
    x17 (IP1, an intra-procedure-call scratch register) is free here; the literals are 8-byte aligned.
    """
    words = [
        _ldr_literal(0, 0x00, 0x18),
        _ldr_literal(17, 0x04, 0x20),
        _MOV_ZR | 1,
        _MOV_ZR | 2,
        _MOV_ZR | 3,
        _BR | (17 << 5),
    ]
    return struct.pack("<6I", *words) + struct.pack("<QQ", dtb, kernel_entry)


@dataclass(frozen=True)
class Iomem:
    """What /proc/iomem says about RAM: System RAM ranges, and the ranges inside them to keep clear."""

    ram: tuple[MemRange, ...]
    avoid: tuple[tuple[int, int], ...]


def read_iomem(iomem: Path = IOMEM) -> Iomem | None:
    """System RAM (top level) and the "reserved" / "Crash kernel" ranges within it; None when the file cannot be
    read or shows only zeros (not root: the kernel hides the addresses)."""
    try:
        lines = iomem.read_text().splitlines()
    except OSError:
        return None
    ram: list[MemRange] = []
    avoid: list[tuple[int, int]] = []
    for line in lines[:20000]:
        span, _, name = line.partition(" : ")
        depth = (len(span) - len(span.lstrip())) // 2
        start, _, end = span.strip().partition("-")
        try:
            first, last = int(start, 16), int(end, 16)
        except ValueError:
            continue
        name = name.strip()
        if depth == 0 and name == "System RAM":
            ram.append(MemRange(first, last + 1, RAM))
        elif depth > 0 and name in ("reserved", "Crash kernel"):
            avoid.append((first, last + 1))
    if not ram or all(r.start == 0 and r.end == 1 for r in ram):
        return None
    return Iomem(tuple(ram), tuple(avoid))


def getrandom(size: int) -> bytes | None:
    """Fresh random bytes for the seeds, or None when the pool is not ready yet (never blocks the boot)."""
    try:
        return os.getrandom(size, os.GRND_NONBLOCK)
    except BlockingIOError:
        return None


def chosen(
    tree: Fdt,
    cmdline: str,
    initrd: tuple[int, int] | None,
    *,
    random: Callable[[int], bytes | None] = getrandom,
) -> tuple[Fdt, list[str]]:
    """`tree` with /chosen rewritten for the new kernel, and warnings. initrd: (start, end exclusive) or None."""
    warnings = []
    changes: dict[str, bytes | None] = {"bootargs": fdt.string(cmdline)}
    changes.update(dict.fromkeys(STALE_CHOSEN))
    if initrd is not None:
        changes["linux,initrd-start"] = fdt.u64(initrd[0])
        changes["linux,initrd-end"] = fdt.u64(initrd[1])
    else:  # the running tree's initrd is not loaded: its addresses would point at garbage
        changes["linux,initrd-start"] = changes["linux,initrd-end"] = None
    # The running kernel zeroes kaslr-seed once used and consumes rng-seed: both are refreshed, as the kernel's own
    # kexec_file_load does.
    for name, size in (("kaslr-seed", KASLR_SEED_SIZE), ("rng-seed", RNG_SEED_SIZE)):
        seed = random(size)
        if seed is None:
            changes[name] = None
            warnings.append(f"/chosen/{name} left out: the random pool is not initialised yet (getrandom EAGAIN)")
        else:
            changes[name] = seed
    return tree.with_props("/chosen", changes), warnings


def memory_of(tree: Fdt, iomem: Iomem | None, source: Path) -> tuple[list[MemRange], list[tuple[int, int]]]:
    """RAM and the ranges to avoid: /proc/iomem when it can be read, else the devicetree's /memory nodes."""
    if iomem is not None:
        ram, avoid = list(iomem.ram), list(iomem.avoid)
    else:
        ram = [MemRange(s, e, RAM) for s, e in tree.memory()]
        avoid = []
        if not ram:
            raise PreflightError(
                source,
                "no memory map: /proc/iomem shows no System RAM (needs root) and the devicetree has no /memory node "
                "(an EFI boot removes them)",
            )
    return ram, avoid + tree.reserved()


def build(
    path: Path,
    kernel: bytes,
    initrd: SegmentBytes,
    cmdline: str,
    *,
    tree: Fdt,
    ram: Sequence[MemRange],
    avoid: Sequence[tuple[int, int]] = (),
    mem_min: int = 0,
    mem_max: int = 1 << 64,
    sources: dict[str, str] | None = None,
    random: Callable[[int], bytes | None] = getrandom,
    page: int = PAGE,
) -> tuple[SegmentPlan, list[str]]:
    """The kexec_load segments that boot the arm64 Image `kernel` (uncompressed, whole) with `initrd`, `cmdline`
    and `tree` (its /chosen rewritten here); also the warnings for the plan."""
    hdr = parse(path, kernel[:HEADER_SIZE])
    if hdr.arch is not Arch.ARM64:
        raise PreflightError(path, f"kexec_load segments are built for arm64 Images; this Image is for {hdr.arch}")
    if hdr.big_endian:
        raise PreflightError(path, "a big-endian arm64 Image: bootmenu builds little-endian segments only")
    src = sources or {}
    free = [(max(r.start, mem_min), min(r.end, mem_max)) for r in ram if r.type == RAM]
    alloc = Allocator(free, avoid)
    # The base is 2 MiB aligned; text_offset (0 since 5.x) and image_size (file + BSS + what head.S maps) follow.
    span = page_up(hdr.text_offset + max(hdr.image_size, len(kernel)), page)
    base = alloc.place(span, KERNEL_ALIGN, limit=mem_max)
    if base is None:
        raise PreflightError(
            path, f"no room for the kernel ({span} bytes at a 2 MiB-aligned base) in System RAM within the limits"
        )
    kaddr = base + hdr.text_offset
    kernel_memsz = span - hdr.text_offset
    if kaddr % page:
        raise PreflightError(path, f"text_offset {hdr.text_offset:#x} is not page-aligned: kexec_load cannot place it")
    window = min(mem_max, base + SEGMENT_WINDOW)
    rd_range = None
    segments = [PlannedSegment("kernel", kaddr, kernel_memsz, kernel, src.get("kernel", str(path)))]
    if initrd:
        rd_size = page_up(len(initrd), page)
        rd_addr = alloc.place(rd_size, page, limit=window, low=base + span)
        if rd_addr is None:
            rd_addr = alloc.place(rd_size, page, limit=window)
        if rd_addr is None:
            raise PreflightError(path, f"no room for the {len(initrd)}-byte initrd within 32 GiB of the kernel")
        rd_range = (rd_addr, rd_addr + len(initrd))
        segments.append(PlannedSegment("initrd", rd_addr, rd_size, initrd, src.get("initrd", "")))
    new_tree, warnings = chosen(tree, cmdline, rd_range, random=random)
    blob = new_tree.to_bytes()
    if len(blob) > DTB_MAX:
        raise PreflightError(tree.source, f"the devicetree is {len(blob)} bytes; arm64 takes at most {DTB_MAX}")
    dtb_size = page_up(len(blob), page)
    low = rd_range[1] if rd_range else base + span
    dtb_addr = alloc.place(dtb_size, page, limit=window, low=low)
    if dtb_addr is None:
        dtb_addr = alloc.place(dtb_size, page, limit=window)
    tramp_addr = alloc.place(page, page, limit=window, low=low)
    if tramp_addr is None:
        tramp_addr = alloc.place(page, page, limit=window)
    if dtb_addr is None or tramp_addr is None:
        raise PreflightError(path, "no room for the devicetree and the trampoline within 32 GiB of the kernel")
    dtb_source = src.get("dtb", str(tree.source))
    segments.append(PlannedSegment("dtb", dtb_addr, dtb_size, blob, f"{dtb_source} (/chosen rewritten)"))
    segments.append(
        PlannedSegment(
            "trampoline",
            tramp_addr,
            page,
            trampoline_code(dtb_addr, kaddr),
            "bootmenu (generated code: x0 = dtb, x1-x3 = 0, br to the kernel)",
        )
    )
    return SegmentPlan(entry=tramp_addr, segments=tuple(sorted(segments, key=lambda s: s.mem))), warnings
