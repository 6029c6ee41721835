"""CPU architectures as kernels name them, and how each image format spells them (ELF e_machine, PE Machine)."""

from __future__ import annotations

import enum
import platform


class Arch(enum.StrEnum):
    X86_64 = "x86_64"
    X86 = "i386"
    ARM64 = "aarch64"
    ARM = "arm"
    RISCV64 = "riscv64"
    UNKNOWN = "unknown"

    @classmethod
    def running(cls) -> Arch:
        return cls.from_uname(platform.machine())

    @classmethod
    def from_uname(cls, machine: str) -> Arch:
        aliases = {"amd64": cls.X86_64, "i686": cls.X86, "i586": cls.X86, "arm64": cls.ARM64, "armv7l": cls.ARM}
        try:
            return aliases.get(machine) or cls(machine)
        except ValueError:
            return cls.UNKNOWN

    @classmethod
    def from_elf_machine(cls, machine: str) -> Arch:
        """From pyelftools' e_machine name (EM_* in elf.h)."""
        return {
            "EM_X86_64": cls.X86_64,
            "EM_386": cls.X86,
            "EM_AARCH64": cls.ARM64,
            "EM_ARM": cls.ARM,
            "EM_RISCV": cls.RISCV64,
        }.get(machine, cls.UNKNOWN)

    @classmethod
    def from_pe_machine(cls, machine: int) -> Arch:
        """From the COFF header Machine field (IMAGE_FILE_MACHINE_* in the PE/COFF specification)."""
        return {
            0x8664: cls.X86_64,
            0x14C: cls.X86,
            0xAA64: cls.ARM64,
            0x1C2: cls.ARM,
            0x1C4: cls.ARM,
            0x5064: cls.RISCV64,
        }.get(machine, cls.UNKNOWN)
