"""kexec_core's one gateway to other programs: the decompressors the standard library lacks (zstd, lz4, lzop...).

A decompressor is a filter whose output size the input does not bound (a decompression bomb), so `run` streams its
stdout to the caller's `sink` one chunk at a time and never holds the whole output: the sink enforces the cap by
raising, which kills the program. stderr goes to a temporary file and only its last line is kept. Every run has a
timeout. (initramfs/run.py, the build side's gateway, collects output in memory and is not importable here:
kexec_core is the bottom of the import graph.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

log = logging.getLogger(__name__)
CHUNK = 1 << 20
STDERR_KEPT = 4096


class ProgramError(Exception):
    """The program could not run, failed, or timed out; the message is one line naming it."""


def find(names: Sequence[str]) -> str | None:
    """The first of `names` on PATH, as an absolute path."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def run(argv: Sequence[str], *, stdin: BinaryIO, sink: Callable[[bytes], None], timeout: float) -> None:
    """Runs `argv` with `stdin` (a real file: seekable, at the offset to read from), passing stdout to `sink`.

    `timeout` counts from the end of the output. ProgramError on a non-zero exit (with the program's last stderr
    line), a signal or a timeout; whatever `sink` raises propagates, after the program is killed and reaped.
    """
    log.debug("+ %s", shlex.join(argv))
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(list(argv), stdin=stdin, stdout=subprocess.PIPE, stderr=errors)
        except OSError as err:
            raise ProgramError(f"{argv[0]}: cannot run: {err.strerror}") from None
        assert proc.stdout is not None
        try:
            while data := proc.stdout.read(CHUNK):
                sink(data)
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ProgramError(f"{os.path.basename(argv[0])}: no exit {timeout:g} s after its output ended") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        if rc != 0:
            errors.seek(0)
            lines = errors.read(STDERR_KEPT).decode(errors="replace").strip().splitlines()
            why = lines[-1] if lines else (f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}")
            raise ProgramError(f"{os.path.basename(argv[0])} says: {why}")


@contextlib.contextmanager
def bytes_file(data: bytes, name: str = "bootmenu-input") -> Iterator[BinaryIO]:
    """`data` in an anonymous tmpfs file at offset 0, for a program's stdin (no pipe to deadlock on)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as f:
        f.write(data)
        f.seek(0)
        yield f
