"""What concurrent test processes (pytest-xdist workers, and a `make bench` beside them) share safely.

A payload is built once: the first process takes an exclusive fcntl lock beside the file and builds it, the others
wait on that lock and then find the file. fcntl locks are released by the kernel when a process dies, so a killed
worker never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on `path` (created if missing) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def session_dir(base_temp: Path) -> Path:
    """A directory shared by every worker of one pytest run: the parent of an xdist worker's base temp (the base
    temp itself when not distributed)."""
    return base_temp.parent if os.environ.get("PYTEST_XDIST_WORKER") else base_temp
