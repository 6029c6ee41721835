"""Opening kernel and initrd files: regular files only, never a FIFO, device or socket (POSIX stat(2) file types).

A FIFO blocks open(2) until a writer appears and a character device such as /dev/zero reads forever (or reports size
0), so inspection refuses anything but a regular file: by stat(2) before opening, and again by fstat(2) on a
descriptor opened with O_NONBLOCK, in case the path was swapped for a FIFO in between (O_NONBLOCK makes opening a
FIFO return at once; it changes nothing for a regular file).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from kexec_core.errors import ImageError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_type(mode: int) -> str:
    """`a FIFO (named pipe)`, `a character device`, ... for an st_mode; `a regular file` for one."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else f"a file of unknown type {stat.S_IFMT(mode):#o}"


def _refuse_irregular(path: Path, mode: int, what: str) -> None:
    if not stat.S_ISREG(mode):
        raise ImageError(path, f"is {file_type(mode)}, not {what}: only regular files are read")


def open_regular(path: Path, what: str = "a kernel image", missing: str = "no such file") -> BinaryIO:
    """`path` opened for reading, binary; ImageError for a missing, unreadable or non-regular file.

    `what` names the expected file in messages ("a kernel image", "an initrd"), `missing` is the message for ENOENT.
    """
    try:
        _refuse_irregular(path, os.stat(path).st_mode, what)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(path, missing) from None
    except PermissionError:
        raise ImageError(path, "not readable: permission denied") from None
    except OSError as err:
        raise ImageError(path, f"cannot open: {err.strerror}") from None
    try:
        _refuse_irregular(path, os.fstat(fd).st_mode, what)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def size_of(f: BinaryIO) -> int:
    """The size of an open regular file (fstat, so it is the file that was checked, not whatever the path is now)."""
    return os.fstat(f.fileno()).st_size
