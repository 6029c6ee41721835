"""Shared-library dependencies of ELF programs, found the way the dynamic loader finds them (ld.so(8)).

For each object: the PT_INTERP program interpreter, then each DT_NEEDED name searched in DT_RPATH (only when there is
no DT_RUNPATH), DT_RUNPATH, then the system directories (/etc/ld.so.conf and the multiarch defaults). `$ORIGIN` in a
path is the directory of the object that names it. LD_LIBRARY_PATH is ignored on purpose: the payload has none.
Only objects of the same ELF class and machine as the one needing them match, as in the loader.

The result maps each library to the path the loader would open (the path to copy it to in the payload) and the real
file behind it (the content to copy).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import InterpSegment

# glibc's trusted directories on Debian x86_64 (besides those in ld.so.conf), in the loader's order.
DEFAULT_LIB_DIRS = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
)


class ElfDependencyError(Exception):
    """An ELF file cannot be read, or a library it needs cannot be found."""


@dataclass(frozen=True)
class ElfInfo:
    """What the dynamic loader reads from one ELF file."""

    path: Path
    elf_class: int
    machine: str
    interpreter: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]

    @classmethod
    def read(cls, path: Path) -> ElfInfo:
        try:
            with path.open("rb") as f:
                elf = ELFFile(f)
                interpreter = None
                for segment in elf.iter_segments():
                    if isinstance(segment, InterpSegment):
                        interpreter = segment.get_interp_name()
                needed: list[str] = []
                rpath: list[str] = []
                runpath: list[str] = []
                for section in elf.iter_sections():
                    if not isinstance(section, DynamicSection):
                        continue
                    for dyn in section.iter_tags():
                        # The string-valued attributes are set per tag type at parse time; typeshed cannot know them.
                        tag: Any = dyn
                        kind = tag.entry.d_tag
                        if kind == "DT_NEEDED":
                            needed.append(tag.needed)
                        elif kind == "DT_RPATH":
                            rpath.extend(p for p in tag.rpath.split(":") if p)
                        elif kind == "DT_RUNPATH":
                            runpath.extend(p for p in tag.runpath.split(":") if p)
                return cls(
                    path, elf.elfclass, elf["e_machine"], interpreter, tuple(needed), tuple(rpath), tuple(runpath)
                )
        except OSError as e:
            raise ElfDependencyError(f"{path}: cannot read: {e.strerror}") from None
        except ELFError as e:
            raise ElfDependencyError(f"{path}: not a valid ELF file: {e}") from None

    def search_dirs(self) -> list[str]:
        """DT_RPATH (ignored when DT_RUNPATH exists, as ld.so does) then DT_RUNPATH, with $ORIGIN expanded."""
        origin = str(self.path.parent)
        dirs = self.runpath if self.runpath else self.rpath + self.runpath
        return [d.replace("${ORIGIN}", origin).replace("$ORIGIN", origin) for d in dirs]


@dataclass(frozen=True)
class Library:
    """A library as the loader finds it: `path` is what it opens (maybe a symlink), `real` the file behind it."""

    name: str
    path: Path
    real: Path
    needed_by: Path


def system_lib_dirs(ld_so_conf: Path = Path("/etc/ld.so.conf")) -> list[str]:
    """The directories of ld.so.conf (following `include` globs), then glibc's defaults."""
    dirs: list[str] = []

    def parse(conf: Path, depth: int) -> None:
        if depth > 8:
            return
        try:
            lines = conf.read_text().splitlines()
        except OSError:
            return
        for raw in lines:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("include"):
                pattern = line.split(None, 1)[1] if len(line.split(None, 1)) == 2 else ""
                if not os.path.isabs(pattern):
                    pattern = str(conf.parent / pattern)
                for inc in sorted(glob.glob(pattern)):
                    parse(Path(inc), depth + 1)
            elif line.startswith("hwcap"):
                continue
            elif line not in dirs:
                dirs.append(line)

    parse(ld_so_conf, 0)
    return dirs + [d for d in DEFAULT_LIB_DIRS if d not in dirs]


class DependencyWalker:
    """Finds the closure of shared libraries needed by a set of ELF files (programs, libraries, extension modules)."""

    def __init__(self, lib_dirs: Iterable[str] | None = None, *, sysroot: Path | None = None) -> None:
        self.lib_dirs = list(lib_dirs) if lib_dirs is not None else system_lib_dirs()
        # Another architecture's tree (the arm64 payload): PT_INTERP names a path inside it, not on this machine.
        self.sysroot = sysroot
        self._infos: dict[Path, ElfInfo] = {}

    def info(self, path: Path) -> ElfInfo:
        real = path.resolve()
        if real not in self._infos:
            self._infos[real] = ElfInfo.read(real)
        info = self._infos[real]
        # $ORIGIN is the directory of the path used to load the object, not of its symlink target.
        return info if info.path == path else ElfInfo(path, *_fields_after_path(info))

    def _find(self, name: str, needer: ElfInfo, extra_dirs: list[str]) -> Path | None:
        if "/" in name:
            candidate = Path(name)
            return candidate if candidate.is_file() else None
        for d in [*needer.search_dirs(), *extra_dirs, *self.lib_dirs]:
            candidate = Path(d) / name
            if not candidate.is_file():
                continue
            try:
                found = self.info(candidate)
            except ElfDependencyError:
                continue
            if (found.elf_class, found.machine) == (needer.elf_class, needer.machine):
                return candidate
        return None

    def walk(self, roots: Iterable[Path]) -> dict[Path, Library]:
        """Every library (and program interpreter) the roots need, directly or not, keyed by the loader's path."""
        found: dict[Path, Library] = {}
        seen_names: dict[str, Path] = {}
        queue: list[tuple[Path, list[str]]] = [(Path(r), []) for r in roots]
        while queue:
            path, inherited_rpath = queue.pop(0)
            info = self.info(path)
            if info.interpreter and Path(info.interpreter) not in found:
                interp = Path(info.interpreter)
                real = self.sysroot / info.interpreter.lstrip("/") if self.sysroot else interp
                if not real.exists():
                    raise ElfDependencyError(f"{path}: program interpreter {real} not found")
                found[interp] = Library(interp.name, interp, real.resolve(), path)
            # DT_RPATH of the loading chain also applies to what the loaded objects need (when no RUNPATH).
            chain_rpath = inherited_rpath + ([] if info.runpath else list(info.search_dirs()))
            for name in info.needed:
                if name in seen_names:
                    continue
                lib = self._find(name, info, [] if info.runpath else inherited_rpath)
                if lib is None:
                    dirs = ", ".join([*info.search_dirs(), *self.lib_dirs])
                    raise ElfDependencyError(f"{path}: needs {name}, not found in {dirs}")
                seen_names[name] = lib
                if lib not in found:
                    found[lib] = Library(name, lib, lib.resolve(), path)
                    queue.append((lib, chain_rpath))
        return found


def _fields_after_path(info: ElfInfo) -> tuple[int, str, str | None, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    return info.elf_class, info.machine, info.interpreter, info.needed, info.rpath, info.runpath


def is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False
