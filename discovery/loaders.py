"""Runs every config loader on a filesystem; one loader's failure never stops the others.

Order is the order a user sees: GRUB first (its menu is what the machine would show), then standalone Boot Loader
Spec entries not already expanded by GRUB's `blscfg`, then syslinux/extlinux/isolinux.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from discovery.entry import Diagnostic, LoadResult, Severity
from discovery.fs import Filesystem, Platform, Resolver, StaticResolver

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadContext:
    """What a loader may know beyond its own filesystem."""

    resolver: Resolver = field(default_factory=lambda: StaticResolver(()))
    platform: Platform = field(default_factory=Platform)


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
    total = LoadResult()
    for name, fn in _loaders():
        try:
            result = fn(fs, ctx)
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
