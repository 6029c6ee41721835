"""kexec_load(2) segments as user space plans them, whatever the architecture: ranges, placement, the plan.

The kernel's rules (kernel/kexec_core.c sanity_check_segment_list): each segment's `mem` and `memsz` are page-aligned,
segments do not overlap, and `bufsz <= memsz` (the rest is zeroed); at most KEXEC_SEGMENT_MAX (16) of them.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# A segment's bytes: built here, or a file mapped read-only (an initrd: boot._mapped).
SegmentBytes = bytes | mmap.mmap

PAGE = 4096
MAX_SEGMENTS = 16  # KEXEC_SEGMENT_MAX


@dataclass(frozen=True)
class MemRange:
    start: int
    end: int  # exclusive
    type: int  # e820 type on x86 (1 = RAM); arm64 System RAM from /proc/iomem is 1 too

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class PlannedSegment:
    """A kexec_load segment and where its bytes come from (for the plan and the kmsg line)."""

    name: str
    mem: int
    memsz: int
    buf: SegmentBytes
    source: str = ""  # the file (or "built here") the bytes come from

    def describe(self) -> str:
        last = self.mem + self.memsz - 1
        src = f" from {self.source}" if self.source else ""
        return f"{self.name}: {self.mem:#x}-{last:#x} ({self.memsz} bytes, {len(self.buf)} of them copied){src}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "mem": self.mem, "memsz": self.memsz, "bufsz": len(self.buf), "source": self.source}


@dataclass(frozen=True)
class SegmentPlan:
    entry: int
    segments: tuple[PlannedSegment, ...]
    notes: tuple[str, ...] = ()  # what the segments hand on beyond the kernel (x86_64: the EFI hand-off, efi.py)

    def describe(self) -> list[str]:
        return [f"entry {self.entry:#x} (trampoline)", *(s.describe() for s in self.segments), *self.notes]

    def to_json(self) -> dict[str, Any]:
        return {"entry": self.entry, "segments": [s.to_json() for s in self.segments], "notes": list(self.notes)}


def page_up(n: int, page: int = PAGE) -> int:
    return -(-n // page) * page


class Allocator:
    """First-fit (or last-fit) placement in `free` [start, end) ranges, around `avoid` and what was placed."""

    def __init__(self, free: Sequence[tuple[int, int]], avoid: Sequence[tuple[int, int]] = ()):
        self.free = sorted((s, e) for s, e in free if e > s)
        for region in avoid:
            self.take(*region)

    def take(self, start: int, end: int) -> None:
        out = []
        for s, e in self.free:
            if end <= s or start >= e:
                out.append((s, e))
                continue
            if s < start:
                out.append((s, start))
            if end < e:
                out.append((end, e))
        self.free = out

    def claim(self, start: int, end: int) -> bool:
        """Take exactly [start, end) if it is free."""
        if any(s <= start and end <= e for s, e in self.free):
            self.take(start, end)
            return True
        return False

    def place(self, size: int, align: int, *, limit: int, low: int = 0, high: bool = False) -> int | None:
        candidates = sorted(self.free, reverse=high)
        for free_start, free_end in candidates:
            s, e = max(free_start, low), min(free_end, limit)
            if high:
                addr = (e - size) // align * align
                if addr >= s:
                    self.take(addr, addr + size)
                    return addr
            else:
                addr = -(-s // align) * align
                if addr + size <= e:
                    self.take(addr, addr + size)
                    return addr
        return None
