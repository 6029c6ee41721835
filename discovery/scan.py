"""Scanning directories as filesystems: what `bootmenu scan PATH...` and the golden tests read.

A directory stands for one filesystem (a mounted partition or a copy of one). GRUB identifies filesystems by UUID and
label (`search --fs-uuid`, `search --label`), which a plain directory does not have, so a directory may carry a
`.bootmenu-fs` file of `key=value` lines (`name=`, `uuid=`, `label=`, `fstype=`, `partuuid=`, `partlabel=`; `#`
comments) naming those. Several PATHs then act as several disks: the ESP's `search --fs-uuid` finds the root filesystem.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from discovery.dmi import Sysappend
from discovery.entry import LoadResult
from discovery.fs import Filesystem, Platform, StaticResolver
from discovery.loaders import LoadContext, load_filesystem

FS_FILE = ".bootmenu-fs"
FS_KEYS = frozenset({"name", "uuid", "label", "fstype", "partuuid", "partlabel"})


class ScanError(Exception):
    """A PATH that cannot be scanned, or a malformed `.bootmenu-fs`; the message names the file (and line)."""


@dataclass(frozen=True)
class ScannedFilesystem:
    """One PATH and everything the loaders found on it."""

    fs: Filesystem
    result: LoadResult


def read_fs_file(path: Path) -> dict[str, str]:
    """The identity fields of a `.bootmenu-fs` file; raises ScanError naming the file and line of a bad line."""
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise ScanError(f"{path}: cannot read: {exc.strerror}") from exc
    fields: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip().lower()
        if not sep or key not in FS_KEYS:
            raise ScanError(f"{path}:{number}: expected one of {', '.join(sorted(FS_KEYS))} as key=value, got {line!r}")
        fields[key] = value.strip()
    return fields


def filesystem_for(directory: Path) -> Filesystem:
    """The Filesystem a directory stands for: named after its basename unless `.bootmenu-fs` says otherwise."""
    if not directory.exists():
        raise ScanError(f"{directory}: no such directory")
    if not directory.is_dir():
        raise ScanError(f"{directory}: not a directory")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise ScanError(f"{directory}: permission denied")
    root = directory.resolve()
    fields = read_fs_file(root / FS_FILE) if (root / FS_FILE).is_file() else {}
    return Filesystem(
        root=root,
        name=fields.get("name") or root.name or str(root),
        uuid=fields.get("uuid", ""),
        label=fields.get("label", ""),
        fstype=fields.get("fstype", ""),
        partuuid=fields.get("partuuid", ""),
        partlabel=fields.get("partlabel", ""),
    )


def scan(
    directories: Sequence[Path], platform: Platform | None = None, sysappend: Sysappend | None = None
) -> list[ScannedFilesystem]:
    """Every directory's boot entries, each able to `search` the others; raises ScanError before loading anything.
    `sysappend`: the syslinux SYSAPPEND words (default: none; `bootmenu scan` passes this machine's)."""
    filesystems = [filesystem_for(d) for d in directories]
    ctx = LoadContext(
        resolver=StaticResolver(tuple(filesystems)),
        platform=platform or Platform.detect(),
        sysappend=sysappend or Sysappend(),
    )
    return [ScannedFilesystem(fs, load_filesystem(fs, ctx)) for fs in filesystems]
