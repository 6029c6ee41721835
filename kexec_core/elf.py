"""ELF kernels (vmlinux) and objects, read with pyelftools: class, machine, type, entry and PT_LOAD segments.

Follows the System V ABI (ELF gABI): program headers (PT_LOAD, PT_INTERP, PT_NOTE) and the section header table.
A program (PT_INTERP, or ET_DYN) is told from a kernel by the notes and sections only a Linux kernel has.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from kexec_core.arch import Arch
from kexec_core.errors import ImageError
from kexec_core.fileio import open_regular, size_of

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


# What only a kernel has: the owners of the ELF notes every vmlinux carries (LINUX_ELFNOTE build salt, Xen entry
# notes) and section names from the kernel's linker script (include/asm-generic/vmlinux.lds.h).
KERNEL_NOTE_OWNERS = frozenset({"Linux", "Xen"})
KERNEL_SECTIONS = frozenset({".head.text", ".init.text", "__ksymtab", "__ksymtab_gpl", "__param", "__ex_table"})
MAX_NOTES = 256  # bound on the notes looked at: a kernel has about twenty


@dataclass(frozen=True)
class ElfInfo:
    elfclass: int
    machine: str
    arch: Arch
    type: str  # ET_EXEC, ET_DYN, ET_REL (a .ko module), ...
    entry: int
    segments: tuple[LoadSegment, ...]
    interpreter: str | None = None  # PT_INTERP: the dynamic loader a program asks for
    kernel_markers: tuple[str, ...] = ()  # which of a kernel's notes and sections it has

    @property
    def memsz(self) -> int:
        return sum(s.memsz for s in self.segments)

    @property
    def is_program(self) -> bool:
        """A user-space program: it asks for a dynamic loader or is position-independent, and has no kernel marker.

        A relocatable arm64 or RISC-V vmlinux is ET_DYN too, hence the markers; ET_EXEC without PT_INTERP (a static
        program, or a kernel of another system) cannot be told apart and is left to the loader.
        """
        return (self.interpreter is not None or self.type == "ET_DYN") and not self.kernel_markers

    def not_a_kernel(self) -> str | None:
        """Why this ELF file is not a kernel, or None when it may be one."""
        if self.is_program:
            why = "it is position-independent"
            if self.interpreter:
                why = f"it asks for the interpreter {self.interpreter}"
            return (
                f"a program, not a kernel: an {self.type} ELF file ({why}) with none of a Linux kernel's notes "
                f"or sections ({', '.join(sorted(KERNEL_SECTIONS))})"
            )
        if self.type == "ET_CORE":
            return "a core dump, not a kernel"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.elfclass,
            "machine": self.machine,
            "type": self.type,
            "entry": self.entry,
            "interpreter": self.interpreter,
            "kernel_markers": list(self.kernel_markers),
            "segments": [s.to_json() for s in self.segments],
        }


def parse(path: Path, f: BinaryIO | None = None) -> ElfInfo:
    """Describe the ELF file `path` (or the open file `f`, with `path` naming it in messages)."""
    if f is None:
        with open_regular(path) as opened:
            return parse(path, opened)
    try:
        return _parse(path, f, size_of(f))
    except ImageError:
        raise
    except OSError as err:
        raise ImageError(path, f"cannot read: {err.strerror}") from None
    except Exception as err:
        # pyelftools reports corrupt input with several exception types (its own, struct's, construct's).
        raise ImageError(path, f"malformed ELF file: {err or type(err).__name__}") from None


def _parse(path: Path, f: BinaryIO, size: int) -> ElfInfo:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.segments import InterpSegment, NoteSegment

    elf = ELFFile(f)
    phend = elf["e_phoff"] + elf["e_phnum"] * elf["e_phentsize"]
    if elf["e_phnum"] and phend > size:
        raise ImageError(path, f"truncated ELF: the program headers end at byte {phend}, the file has {size}")
    segments = []
    interpreter = None
    notes = []
    for i, seg in enumerate(elf.iter_segments()):
        if seg["p_type"] == "PT_LOAD":
            s = LoadSegment(seg["p_offset"], seg["p_vaddr"], seg["p_paddr"], seg["p_filesz"], seg["p_memsz"])
            if s.offset + s.filesz > size:
                raise ImageError(
                    path,
                    f"truncated ELF: PT_LOAD segment {i} (file bytes {s.offset}..{s.offset + s.filesz}) ends "
                    f"past the end of the file, which has {size} bytes",
                )
            if s.filesz > s.memsz:
                raise ImageError(path, f"malformed ELF: PT_LOAD segment {i} has p_filesz {s.filesz} > p_memsz")
            segments.append(s)
        elif isinstance(seg, InterpSegment) and seg["p_offset"] + seg["p_filesz"] <= size:
            interpreter = seg.get_interp_name()
        elif isinstance(seg, NoteSegment) and seg["p_offset"] + seg["p_filesz"] <= size:
            notes += [n["n_name"] for _, n in zip(range(MAX_NOTES), seg.iter_notes(), strict=False)]
    markers = sorted({f"{name} note" for name in notes if name in KERNEL_NOTE_OWNERS})
    shend = elf["e_shoff"] + elf["e_shnum"] * elf["e_shentsize"]
    if elf["e_shnum"] and shend <= size:
        markers += sorted({s.name for s in elf.iter_sections()} & KERNEL_SECTIONS)
    machine = str(elf["e_machine"])
    return ElfInfo(
        elfclass=int(elf.elfclass),
        machine=machine,
        arch=Arch.from_elf_machine(machine),
        type=str(elf["e_type"]),
        entry=int(elf["e_entry"]),
        segments=tuple(segments),
        interpreter=interpreter,
        kernel_markers=tuple(markers),
    )
