"""Typed errors of kexec_core. Each str() is a complete message for a user at a serial console.

Hierarchy: KexecCoreError
  - PreflightError (a file or plan that must not be loaded; names the file)
      - ImageError (a file that cannot be read or understood as a kernel/initrd image)
  - KexecError (a syscall failed; quotes the call with its arguments, the errno and a hint)
  - ExecRefused (the safety guard refused to load or execute outside the payload's boot environment)
  - BindingsMissing (the compiled cffi module kexec_core._kexec is absent)
"""

from __future__ import annotations

import errno as errno_mod
import os
from pathlib import Path


class KexecCoreError(Exception):
    """Base of every kexec_core error; `str(err)` is the whole user message."""


class PreflightError(KexecCoreError):
    """The boot plan failed a check before anything was loaded."""

    def __init__(self, path: Path | str | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class MemoryShortError(PreflightError):
    """The load needs more memory than is available (preflight.check_memory)."""


class ImageError(PreflightError):
    """A kernel or initrd file is missing, unreadable, truncated or of an unknown or malformed format."""


class KexecError(KexecCoreError):
    """A syscall failed. `call` is the call as written, e.g. `kexec_file_load(kernel_fd=3</boot/vmlinuz>, ...)`."""

    def __init__(self, call: str, errno: int, hint: str = "") -> None:
        self.call = call
        self.errno = errno
        self.hint = hint
        name = errno_mod.errorcode.get(errno, f"errno {errno}") if errno else "no error"
        reason = os.strerror(errno) if errno else "returned without effect"
        message = f"{call} failed: {name} ({reason})"
        super().__init__(f"{message}: {hint}" if hint else message)


class ExecRefused(KexecCoreError):
    """The safety guard refused: not running in the payload's boot environment and no force flag."""


class BindingsMissing(KexecCoreError):
    """The compiled cffi extension is not importable (the package was not built)."""
