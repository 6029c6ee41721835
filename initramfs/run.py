"""The one subprocess gateway of the project: every external command (cpio, ldconfig, zstd, qemu, mkfs...) runs here.

Argv is always a sequence (never a shell string), failures are checked by default and classified - the program was
not found, it was killed by a signal, it exited non-zero or timed out - and raised as typed errors whose message
names the command, so entry points can print one line instead of a traceback. The command is logged as
`+ shlex.join(argv)` at debug level.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

# How much of a failed command's stderr goes into the error message.
_STDERR_TAIL = 2000

Argv = Sequence[str | os.PathLike[str]]


class RunError(Exception):
    """An external command could not be run or did not succeed."""

    def __init__(self, argv: Sequence[str], message: str) -> None:
        self.argv = list(argv)
        super().__init__(f"{shlex.join(self.argv)}: {message}")


class CommandNotFound(RunError):
    """The program does not exist or cannot be executed."""


class CommandSignaled(RunError):
    """The program was killed by a signal."""

    def __init__(self, argv: Sequence[str], signum: int, stderr: bytes = b"") -> None:
        self.signum = signum
        self.stderr = stderr
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        super().__init__(argv, f"killed by {name}{_tail(stderr)}")


class CommandFailed(RunError):
    """The program exited with a non-zero status."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: bytes = b"") -> None:
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(argv, f"exited with status {returncode}{_tail(stderr)}")


class CommandTimedOut(RunError):
    """The program ran longer than its timeout and was killed."""

    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        self.timeout = timeout
        super().__init__(argv, f"timed out after {timeout:g} s")


def _tail(stderr: bytes | None) -> str:
    if not stderr:
        return ""
    text = stderr.decode("utf-8", "replace").strip()
    if len(text) > _STDERR_TAIL:
        text = "..." + text[-_STDERR_TAIL:]
    return f": {text}" if text else ""


def run(
    argv: Argv,
    *,
    check: bool = True,
    capture: bool = False,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    timeout: float | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Runs `argv` and waits for it.

    `capture` collects stdout and stderr as bytes (otherwise they go to ours). `env` entries are added to our own
    environment (LC_ALL is C.UTF-8 so tool messages are stable). With `check`, a non-zero exit raises CommandFailed
    and a signal CommandSignaled; a missing program always raises CommandNotFound and a timeout CommandTimedOut.
    """
    cmd = [os.fspath(a) for a in argv]
    if not cmd:
        raise ValueError("run(): empty argv")
    log.debug("+ %s", shlex.join(cmd))
    full_env = dict(os.environ)
    full_env["LC_ALL"] = "C.UTF-8"
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run(
            cmd,
            input=input,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            env=full_env,
            timeout=timeout,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError as e:
        where = "" if Path(cmd[0]).is_absolute() or cwd is None else f" (in {os.fspath(cwd)})"
        raise CommandNotFound(cmd, f"{cmd[0]} not found{where}: {e.strerror}") from None
    except PermissionError as e:
        raise CommandNotFound(cmd, f"{cmd[0]} cannot be executed: {e.strerror}") from None
    except subprocess.TimeoutExpired:
        assert timeout is not None
        raise CommandTimedOut(cmd, timeout) from None
    if check and proc.returncode < 0:
        raise CommandSignaled(cmd, -proc.returncode, proc.stderr or b"")
    if check and proc.returncode > 0:
        raise CommandFailed(cmd, proc.returncode, proc.stderr or b"")
    return proc
