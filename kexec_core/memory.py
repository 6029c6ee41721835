"""Free memory as the kernel reports it: MemAvailable in /proc/meminfo (Documentation/filesystems/proc.rst), and
what a kexec load can count on (`allocatable`)."""

from __future__ import annotations

from pathlib import Path

MEMINFO = Path("/proc/meminfo")
# MemAvailable counts part of the reclaimable slab; a kexec load cannot count on it (see allocatable).
LOAD_KEYS = ("MemFree", "Active(file)", "Inactive(file)")


def _fields(meminfo: Path) -> dict[str, int]:
    """The meminfo lines as bytes, by key; {} when the file cannot be read."""
    out: dict[str, int] = {}
    try:
        for line in meminfo.read_text().splitlines():
            key, _, value = line.partition(":")
            words = value.split()
            if words and words[0].isdigit():
                out[key] = int(words[0]) * 1024
    except OSError:
        return {}
    return out


def mem_available(meminfo: Path = MEMINFO) -> int | None:
    """MemAvailable in bytes, or None when /proc/meminfo does not say."""
    return _fields(meminfo).get("MemAvailable")


def allocatable(meminfo: Path = MEMINFO) -> int | None:
    """The memory a kexec load can take: free pages plus the page cache (clean file pages, reclaimed on demand),
    never more than MemAvailable. MemAvailable also counts reclaimable slab, which in a payload is mostly the
    dentries and inodes of its in-RAM root filesystem, pinned by its files: a 256 MiB VM reported 119 MiB
    available, kexec_file_load's 114 MiB passed the check and the OOM killer ended the load (issue 15). None when
    /proc/meminfo says neither."""
    fields = _fields(meminfo)
    available = fields.get("MemAvailable")
    if not all(k in fields for k in LOAD_KEYS):
        return available
    usable = sum(fields[k] for k in LOAD_KEYS)
    return usable if available is None else min(usable, available)
