"""Free memory as the kernel reports it: MemAvailable in /proc/meminfo (Documentation/filesystems/proc.rst)."""

from __future__ import annotations

from pathlib import Path

MEMINFO = Path("/proc/meminfo")


def mem_available(meminfo: Path = MEMINFO) -> int | None:
    """MemAvailable in bytes, or None when /proc/meminfo does not say."""
    try:
        for line in meminfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "MemAvailable":
                return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
