"""`bootmenu report`: one text file with what a bug report about a failed boot needs.

Sections, each bounded: system information (kernel, command line, memory, DMI names), the last boot plan the daemon
kept, pstore records the previous kernel left (moved to /run by the daemon, discovery/pstore.py), the kernel log read
from /dev/kmsg (Documentation/ABI/testing/dev-kmsg: one record per read, `PRIO,SEQ,USEC,FLAGS;TEXT`, EAGAIN at the
end when opened O_NONBLOCK), and the daemon's and /init's logs.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

RUN = Path("/run/bootmenu")
# Per file quoted: its last bytes.
MAX_FILE_BYTES = 256 * 1024
MAX_KMSG_RECORDS = 20000
DMI_FIELDS = ("sys_vendor", "product_name", "product_version", "board_name", "bios_vendor", "bios_version")


@dataclass(frozen=True)
class Sources:
    """Where the report reads from (tests point these at a temporary tree)."""

    run: Path = RUN
    proc: Path = Path("/proc")
    sysfs: Path = Path("/sys")
    kmsg: Path | None = Path("/dev/kmsg")


def _tail(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - limit))
            data = f.read(limit)
    except OSError as exc:
        return f"({path}: {exc.strerror})\n"
    head = f"(last {limit} of {size} bytes)\n" if size > limit else ""
    return head + data.decode("utf-8", "replace")


def read_kmsg(path: Path, limit: int = MAX_KMSG_RECORDS) -> Iterator[str]:
    """The kernel log as `[seconds] text` lines, read record by record until EAGAIN (bounded)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        yield f"({path}: {exc.strerror})"
        return
    try:
        for _ in range(limit):
            try:
                record = os.read(fd, 8192)
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten while reading: go on from the next record
                    continue
                if exc.errno != errno.EAGAIN:
                    yield f"({path}: {exc.strerror})"
                break
            if not record:
                break
            header, _, text = record.decode("utf-8", "replace").partition(";")
            fields = header.split(",")
            usec = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else 0
            # Continuation lines (" KEY=VALUE") are metadata, not text.
            message = text.split("\n")[0]
            yield f"[{usec / 1e6:12.6f}] {message}"
    finally:
        os.close(fd)


def system_lines(sources: Sources) -> Iterator[str]:
    u = os.uname()
    yield f"kernel: {u.sysname} {u.release} {u.version} {u.machine}"
    for name in ("cmdline", "uptime"):
        try:
            yield f"{name}: {(sources.proc / name).read_text().strip()}"
        except OSError as exc:
            yield f"{name}: ({exc.strerror})"
    try:
        meminfo = (sources.proc / "meminfo").read_text().splitlines()[:3]
    except OSError:
        meminfo = []
    yield from (f"meminfo: {line}" for line in meminfo)
    for name in DMI_FIELDS:
        try:
            yield f"dmi {name}: {(sources.sysfs / 'class' / 'dmi' / 'id' / name).read_text().strip()}"
        except OSError:
            continue


def report(sources: Sources = Sources(), now: float | None = None) -> str:
    """The whole report as text."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now if now is not None else time.time()))
    parts = [f"bootmenu report, {stamp}", ""]

    def section(title: str, body: str) -> None:
        parts.extend([f"===== {title} =====", body.rstrip("\n"), ""])

    section("system", "\n".join(system_lines(sources)))
    plan = sources.run / "last-plan.txt"
    section("last boot plan", _tail(plan) if plan.exists() else "(none: nothing was booted since this start)")
    pstore_dir = sources.run / "pstore"
    records = sorted(pstore_dir.iterdir()) if pstore_dir.is_dir() else []
    if not records:
        section("pstore", "(no records from the previous kernel)")
    for record in records:
        section(f"pstore {record.name}", _tail(record))
    if sources.kmsg is not None:
        section("kernel log", "\n".join(read_kmsg(sources.kmsg)))
    for name in ("daemon.log", "daemon.out", "init.log"):
        path = sources.run / name
        if path.exists():
            section(name, _tail(path))
    return "\n".join(parts) + "\n"
