"""Runs every config loader on a filesystem; one loader's failure never stops the others.

Order is the order a user sees: GRUB first (its menu is what the machine would show), then standalone Boot Loader
Spec entries not already expanded by GRUB's `blscfg`, then syslinux/extlinux/isolinux.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from discovery.budget import Budget, Clock, current_deadline
from discovery.dmi import Sysappend
from discovery.entry import Diagnostic, LoadResult, Severity
from discovery.fs import Filesystem, Platform, Resolver, StaticResolver

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadContext:
    """What a loader may know beyond its own filesystem."""

    resolver: Resolver = field(default_factory=lambda: StaticResolver(()))
    platform: Platform = field(default_factory=Platform)
    # This machine's syslinux SYSAPPEND words (Sysappend.detect() where the real machine is scanned; none by default).
    sysappend: Sysappend = field(default_factory=Sysappend)
    # When this loader must be done (`clock` time); None: only the step budgets bound it. See discovery.budget.
    deadline: float | None = None
    clock: Clock = time.monotonic

    def budget(self, steps: int) -> Budget:
        """A fresh budget of `steps` for one config, ending at this context's deadline; half the time left again as
        grace for turning what was read into entries."""
        grace = max(0.0, (self.deadline - self.clock()) / 2) if self.deadline is not None else 0.0
        return Budget(limit=steps, deadline=self.deadline, grace=grace, clock=self.clock)


# Paths quoted in diagnostics are cut to this many characters: a 4 KB path helps no one on a status line.
SHOWN_PATH = 96


def shown(path: str) -> str:
    """A config-supplied path as quoted in a diagnostic, shortened when it is absurdly long."""
    return path if len(path) <= SHOWN_PATH else f"{path[: SHOWN_PATH - 24]}...{path[-20:]}"


def os_problem(exc: OSError) -> str:
    """What a failed lookup says in a diagnostic: the error text and errno name, `File name too long (ENAMETOOLONG)`."""
    name = errno.errorcode.get(exc.errno or 0)
    text = exc.strerror or str(exc)
    return f"{text} ({name})" if name else text


def file_problem(fs: Filesystem, path: str) -> str | None:
    """None when `path` is a regular file of `fs`; else why not: "not found", or the OSError of the lookup (a
    component over 255 bytes, an I/O error). Never raises: one bad path costs only the entry naming it."""
    try:
        return None if fs.is_file(path) else "not found"
    except OSError as exc:
        return os_problem(exc)


def missing(what: str, path: str, problem: str) -> str:
    """`kernel /vmlinuz not found`, `initrd /x...: File name too long (ENAMETOOLONG)`."""
    return f"{what} {shown(path)} {problem}" if problem == "not found" else f"{what} {shown(path)}: {problem}"


# No real config comes near this (a big grub.cfg is 100 KiB); reading and lexing stays bounded in time and memory.
MAX_CONFIG_BYTES = 8 * 1024 * 1024


def read_config(fs: Filesystem, path: str) -> str:
    """The text of config `path` of `fs`; OSError (EFBIG) for a file over MAX_CONFIG_BYTES, which is not read."""
    found = fs.host_path(path)
    if found is not None and found.is_file():
        size = found.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise OSError(errno.EFBIG, f"larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB ({size} bytes); not read")
    return fs.read_text(path)


LoaderFn = Callable[[Filesystem, LoadContext], LoadResult]


def _loaders() -> list[tuple[str, LoaderFn]]:
    from discovery import bls, syslinux, uki
    from discovery.grub import loader as grub

    return [
        ("grub", grub.load),
        ("bls", functools.partial(bls.load, type2=uki.read_type2)),
        ("syslinux", syslinux.load),
    ]


def load_filesystem(fs: Filesystem, ctx: LoadContext | None = None) -> LoadResult:
    """All boot entries of `fs`, in menu order, with every diagnostic; never raises for bad configs."""
    ctx = ctx or LoadContext()
    deadline = ctx.deadline if ctx.deadline is not None else current_deadline()
    total = LoadResult()
    loaders = _loaders()
    for index, (name, fn) in enumerate(loaders):
        share = ctx
        if deadline is not None:
            # Each loader gets an equal part of the time left, so one slow format never costs the others' entries.
            now = ctx.clock()
            share = dataclasses.replace(ctx, deadline=now + max(0.0, deadline - now) / (len(loaders) - index))
        try:
            result = fn(fs, share)
        except Exception as exc:  # a loader bug must not hide the other formats' entries
            log.exception("%s loader failed on %s", name, fs.name)
            result = LoadResult(diagnostics=(Diagnostic(fs.name, 0, f"{name} loader failed: {exc!r}", Severity.ERROR),))
        if name == "bls" and total.consumed:
            consumed = set(total.consumed)
            result = LoadResult(
                entries=tuple(e for e in result.entries if e.config not in consumed),
                # GRUB's blscfg already reported what it found in these files.
                diagnostics=tuple(d for d in result.diagnostics if d.file not in consumed),
                timeout=result.timeout,
                configs=result.configs,
                unresolved=result.unresolved,
            )
        total = total + result
    return total
