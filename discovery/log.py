"""The daemon's log: a file, the kernel log (/dev/kmsg, inside the payload) and a ring buffer that `get-log` serves."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import ClassVar

# Lines kept for `get-log`; older ones are still in the file.
RING_LINES = 2000
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RingHandler(logging.Handler):
    def __init__(self, size: int = RING_LINES) -> None:
        super().__init__()
        self._lines: collections.deque[str] = collections.deque(maxlen=size)
        self._guard = threading.Lock()
        self.setFormatter(logging.Formatter(FORMAT, "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self._guard:
            self._lines.extend(line.splitlines() or [""])

    def lines(self) -> tuple[str, ...]:
        with self._guard:
            return tuple(self._lines)


class KmsgHandler(logging.Handler):
    """One record per write to /dev/kmsg, with the syslog priority prefix the kernel understands."""

    PRIORITY: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
        logging.CRITICAL: 2,
    }

    def __init__(self, path: Path = Path("/dev/kmsg")) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NONBLOCK)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "in_kmsg", False):
            # Already written to the kernel log by its author (discovery/evidence.py): not twice.
            return
        prio = self.PRIORITY.get(record.levelno, 6)
        text = f"<{prio}>bootmenu: {record.getMessage()}"[:900]
        # A full kernel ring buffer must not stop the daemon.
        with contextlib.suppress(OSError):
            os.write(self._fd, text.encode(errors="replace"))

    def close(self) -> None:
        os.close(self._fd)
        super().close()


def setup(*, file: Path | None, kmsg: bool, debug: bool) -> RingHandler:
    """Configure the root logger for the daemon; returns the ring that `get-log` reads."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    ring = RingHandler()
    root.addHandler(ring)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file)
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    if kmsg:
        try:
            root.addHandler(KmsgHandler())
        except OSError as exc:
            logging.getLogger(__name__).warning("cannot log to /dev/kmsg: %s", exc.strerror)
    return ring
