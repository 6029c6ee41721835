"""The daemon's log: a file, the kernel log (/dev/kmsg, inside the payload) and a ring buffer that `get-log` serves.

Each is bounded in bytes, since inside the payload the file lives on tmpfs (RAM) and the ring in the daemon: the
file rotates once, the ring keeps the newest lines within a line count and a byte budget, a longer line is cut.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import logging.handlers
import os
import threading
from pathlib import Path
from typing import ClassVar

from discovery.protocol import clip

# Lines kept for `get-log`; older ones are still in the file. RING_BYTES keeps a get-log reply, even with every
# character escaped by JSON, under protocol.MAX_LINE.
RING_LINES = 2000
RING_BYTES = 512 * 1024
RING_LINE_CHARS = 4096
# The log file: this many bytes, then one older copy (FILE.1).
FILE_BYTES = 4 * 1024 * 1024
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RingHandler(logging.Handler):
    def __init__(self, size: int = RING_LINES, max_bytes: int = RING_BYTES, line_chars: int = RING_LINE_CHARS) -> None:
        super().__init__()
        self._size = size
        self._max_bytes = max_bytes
        self._line_chars = line_chars
        self._lines: collections.deque[tuple[str, int]] = collections.deque()  # (line, its UTF-8 length)
        self._bytes = 0
        self._guard = threading.Lock()
        self.setFormatter(logging.Formatter(FORMAT, "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        lines = text.splitlines() or [""]
        with self._guard:
            for whole in lines:
                line = clip(whole, self._line_chars)
                size = len(line.encode(errors="replace"))
                self._lines.append((line, size))
                self._bytes += size
            while self._lines and (len(self._lines) > self._size or self._bytes > self._max_bytes):
                self._bytes -= self._lines.popleft()[1]

    def lines(self) -> tuple[str, ...]:
        with self._guard:
            return tuple(line for line, _ in self._lines)


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
        handler = logging.handlers.RotatingFileHandler(file, maxBytes=FILE_BYTES, backupCount=1)
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    if kmsg:
        try:
            root.addHandler(KmsgHandler())
        except OSError as exc:
            logging.getLogger(__name__).warning("cannot log to /dev/kmsg: %s", exc.strerror)
    return ring
