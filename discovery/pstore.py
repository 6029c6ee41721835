"""pstore: crash records the previous kernel left (ramoops in reserved RAM, efi-pstore in EFI variables).

Documentation/admin-guide/pstore-blk.rst and ramoops.rst: the records appear as files in the pstore filesystem
(mounted at /sys/fs/pstore), named `dmesg-BACKEND-ID` (the kernel log tail at a panic or oops), `console-...`,
`pmsg-...`. As systemd-pstore does, each record is moved out: copied to /run (tmpfs, read by the menu's log view and
`bootmenu report`) and then removed from pstore, which frees the backend's space (an EFI variable, the ramoops zone)
and keeps the next start from announcing the same crash again. Every copy is bounded.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PSTORE = Path("/sys/fs/pstore")
RUN_DIR = Path("/run/bootmenu/pstore")
MAX_RECORDS = 64
MAX_RECORD_BYTES = 1 << 20
# Lines of a dmesg record quoted in the daemon's log (and so in every menu's log view).
TAIL_LINES = 30
# The line that says what killed the kernel, searched from the end of a dmesg record.
_CAUSE = re.compile(r"Kernel panic|Oops|BUG:|general protection fault|Unable to handle|watchdog: BUG|Call Trace")
# `<0>[   12.345678] ` before each line of a dmesg record.
_PREFIX = re.compile(r"^(<\d+>)?(\[[ \d.]+\] )?")
SUMMARY_CHARS = 120


@dataclass(frozen=True)
class Record:
    name: str
    path: Path  # the copy in RUN_DIR
    size: int
    truncated: bool

    @property
    def is_crash_log(self) -> bool:
        return self.name.startswith("dmesg-")

    def tail(self, lines: int = TAIL_LINES) -> list[str]:
        try:
            text = self.path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def summary(self) -> str:
        """What killed the previous kernel, in one line: its last panic/oops/BUG line, else its last line."""
        lines = [_PREFIX.sub("", line).strip() for line in self.tail(200)]
        lines = [line for line in lines if line]
        cause = next((line for line in reversed(lines) if _CAUSE.search(line) and line != "Call Trace:"), None)
        return (cause or (lines[-1] if lines else "empty record"))[:SUMMARY_CHARS]


def mount(target: Path = PSTORE) -> None:
    """mount -t pstore pstore TARGET, unless something is mounted there already; raises OSError."""
    if os.path.ismount(target):
        return
    from kexec_core import syscalls
    from kexec_core.errors import KexecCoreError

    try:
        syscalls.mount("pstore", str(target), "pstore", 0, None)
    except KexecCoreError as exc:
        raise OSError(getattr(exc, "errno", 0) or 5, str(exc), str(target)) from None


def collect(source: Path = PSTORE, dest: Path = RUN_DIR, *, remove: bool = True) -> list[Record]:
    """Move every record from `source` to `dest` (bounded in number and size); returns what was kept."""
    try:
        names = sorted(n for n in os.listdir(source) if (source / n).is_file())
    except OSError:
        return []
    if not names:
        return []
    dest.mkdir(parents=True, exist_ok=True)
    records = []
    for name in names[:MAX_RECORDS]:
        path = source / name
        try:
            with path.open("rb") as f:
                data = f.read(MAX_RECORD_BYTES + 1)
        except OSError as exc:
            log.warning("pstore: cannot read %s: %s", path, exc.strerror)
            continue
        truncated = len(data) > MAX_RECORD_BYTES
        data = data[:MAX_RECORD_BYTES]
        (dest / name).write_bytes(data)
        records.append(Record(name, dest / name, len(data), truncated))
        if remove:
            try:
                path.unlink()
            except OSError as exc:
                log.warning("pstore: cannot remove %s (it will be reported again): %s", path, exc.strerror)
    if len(names) > MAX_RECORDS:
        log.warning("pstore: %d records, only the first %d kept", len(names), MAX_RECORDS)
    return records
