"""ELF kernels (vmlinux) and objects, read with pyelftools: class, machine, type, entry and PT_LOAD segments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kexec_core.arch import Arch
from kexec_core.errors import ImageError

MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class LoadSegment:
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int

    def to_json(self) -> dict[str, int]:
        return {
            "offset": self.offset,
            "vaddr": self.vaddr,
            "paddr": self.paddr,
            "filesz": self.filesz,
            "memsz": self.memsz,
        }


@dataclass(frozen=True)
class ElfInfo:
    elfclass: int
    machine: str
    arch: Arch
    type: str  # ET_EXEC, ET_DYN, ET_REL (a .ko module), ...
    entry: int
    segments: tuple[LoadSegment, ...]

    @property
    def memsz(self) -> int:
        return sum(s.memsz for s in self.segments)

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.elfclass,
            "machine": self.machine,
            "type": self.type,
            "entry": self.entry,
            "segments": [s.to_json() for s in self.segments],
        }


def parse(path: Path) -> ElfInfo:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with path.open("rb") as f:
            elf = ELFFile(f)
            segments = tuple(
                LoadSegment(s["p_offset"], s["p_vaddr"], s["p_paddr"], s["p_filesz"], s["p_memsz"])
                for s in elf.iter_segments()
                if s["p_type"] == "PT_LOAD"
            )
            size = path.stat().st_size
            for s in segments:
                if s.offset + s.filesz > size:
                    raise ImageError(
                        path, f"truncated ELF: a PT_LOAD segment ends at {s.offset + s.filesz}, file is {size}"
                    )
            machine = str(elf["e_machine"])
            return ElfInfo(
                elfclass=int(elf.elfclass),
                machine=machine,
                arch=Arch.from_elf_machine(machine),
                type=str(elf["e_type"]),
                entry=int(elf["e_entry"]),
                segments=segments,
            )
    except ImageError:
        raise
    except OSError as err:
        raise ImageError(path, f"cannot read: {err.strerror}") from None
    except (ELFError, Exception) as err:
        # pyelftools reports corrupt input with several exception types (its own, struct's, construct's).
        raise ImageError(path, f"malformed ELF file: {err or type(err).__name__}") from None
