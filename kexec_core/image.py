"""Kernel image identification and description: which format a file is, for which CPU, and what its header says.

Formats: x86 bzImage (bzimage.py), ELF vmlinux (elf.py), arm64/RISC-V Image (arm64.py), PE files, unified kernel
images and EFI zboot (pe.py), and kernels compressed as a whole (compress.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from kexec_core import arm64, bzimage, elf, pe
from kexec_core.arch import Arch
from kexec_core.arm64 import ImageHeader
from kexec_core.bzimage import SetupHeader
from kexec_core.compress import Compression
from kexec_core.elf import ElfInfo
from kexec_core.errors import ImageError
from kexec_core.fileio import open_regular, size_of
from kexec_core.pe import PeInfo, ZbootInfo

HEAD = 128 * 1024  # the bzImage setup code plus payload start, PE headers, ELF headers all fit in this


class ImageKind(enum.StrEnum):
    BZIMAGE = "bzImage"
    ELF = "ELF"
    IMAGE = "Image"  # arm64 / RISC-V flat Image
    EFI_ZBOOT = "EFI zboot"
    UKI = "UKI"
    PE = "PE"
    COMPRESSED = "compressed"
    UNKNOWN = "unknown"

    @classmethod
    def identify(cls, path: Path) -> ImageKind:
        """The kind of `path` from its magic numbers; ImageError when it cannot be read."""
        return cls.from_head(_read_head(path))

    @classmethod
    def from_head(cls, head: bytes) -> ImageKind:
        # Order matters: bzImages and arm64 Images with an EFI stub also start with "MZ".
        if bzimage.has_header(head):
            return cls.BZIMAGE
        if arm64.identify(head) is not None:
            return cls.IMAGE
        if pe.is_zboot(head):
            return cls.EFI_ZBOOT
        if pe.is_pe(head):
            return cls.PE  # refined to UKI once the section table is read
        if head.startswith(elf.MAGIC):
            return cls.ELF
        if Compression.identify(head) is not None:
            return cls.COMPRESSED
        return cls.UNKNOWN


@dataclass(frozen=True)
class KernelInfo:
    """What inspection found in a kernel file. Exactly one of the format fields is set (none for UNKNOWN)."""

    path: Path
    kind: ImageKind
    arch: Arch
    size: int
    version: str | None = None
    bzimage: SetupHeader | None = None
    elf: ElfInfo | None = None
    image: ImageHeader | None = None
    pe: PeInfo | None = None
    zboot: ZbootInfo | None = None
    compression: Compression | None = None
    inner: KernelInfo | None = None  # what a compressed kernel decompresses to (from its first bytes)
    embedded: KernelInfo | None = None  # a UKI's .linux section, described as a kernel of its own

    @property
    def loaded_kernel(self) -> KernelInfo:
        """The kernel that kexec would actually load: a UKI's .linux section, otherwise this file."""
        return self.embedded or self

    @property
    def cmdline_size(self) -> int | None:
        """The longest command line the kernel takes, including its NUL, when its header says."""
        if self.embedded:
            return self.embedded.cmdline_size
        return self.bzimage.cmdline_size if self.bzimage else None

    @property
    def memory_needed(self) -> int:
        """Bytes the running kernel occupies (init_size, image_size or PT_LOAD sizes), else the file size."""
        if self.embedded:
            return self.embedded.memory_needed
        if self.bzimage and self.bzimage.init_size:
            return self.bzimage.init_size
        if self.image:
            return self.image.image_size
        if self.elf:
            return self.elf.memsz
        return self.size

    def summary(self) -> str:
        """`bzImage 6.1.0-56-amd64 for x86_64 (boot protocol 2.15)`, `gzip-compressed Image for aarch64`, ..."""
        what = str(self.kind)
        if self.compression:
            what = f"{self.compression}-compressed {self.inner.kind if self.inner else 'file'}"
        version = f" {self.version}" if self.version else ""
        extra = []
        if self.bzimage:
            extra.append(f"boot protocol {self.bzimage.protocol_str}")
        if self.zboot:
            extra.append(f"{self.zboot.compression} payload")
        if self.pe and self.pe.is_uki:
            extra.append(f"sections {' '.join(s.name for s in self.pe.sections)}")
        tail = f" ({', '.join(extra)})" if extra else ""
        return f"{what}{version} for {self.arch}{tail}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": str(self.path),
            "kind": str(self.kind),
            "arch": str(self.arch),
            "size": self.size,
            "version": self.version,
        }
        for name in ("bzimage", "elf", "image", "pe", "zboot", "embedded"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.to_json()
        if self.compression:
            out["compression"] = str(self.compression)
            out["inner"] = self.inner.to_json() if self.inner else None
        return out


def _read_head(path: Path, size: int = HEAD) -> bytes:
    with open_regular(path) as f:
        return _read(path, f, size)


def _read(path: Path, f: BinaryIO, size: int) -> bytes:
    try:
        return f.read(size)
    except OSError as err:
        raise ImageError(path, f"cannot read: {err.strerror}") from None


def _read_at(path: Path, offset: int, size: int) -> bytes:
    with open_regular(path) as f:
        try:
            f.seek(offset)
        except OSError as err:
            raise ImageError(path, f"cannot read: {err.strerror}") from None
        return _read(path, f, size)


def inspect_kernel(path: Path) -> KernelInfo:
    """Identify and describe a kernel image. Raises ImageError for a missing, unreadable or malformed file."""
    with open_regular(path) as f:
        head = _read(path, f, HEAD)
        size = size_of(f)
    if size == 0:
        raise ImageError(path, "empty file")
    return _describe(path, head, size)


def _describe(path: Path, head: bytes, size: int) -> KernelInfo:
    kind = ImageKind.from_head(head)
    if kind is ImageKind.BZIMAGE:
        hdr = bzimage.parse(path, head)
        short = hdr.truncation(size)
        if short is not None:
            raise ImageError(path, f"truncated bzImage: {short}, but the file has only {size} bytes")
        arch = Arch.X86_64 if hdr.xloadflags & bzimage.XLoadFlag.KERNEL_64 else Arch.X86
        version = hdr.version_string.split()[0] if hdr.version_string else None
        return KernelInfo(path, kind, arch, size, version=version, bzimage=hdr)
    if kind is ImageKind.IMAGE:
        img = arm64.parse(path, head)
        return KernelInfo(path, kind, img.arch, size, image=img)
    if kind is ImageKind.EFI_ZBOOT:
        zb = pe.parse_zboot(path, head)
        if zb.payload_offset + zb.payload_size > size:
            raise ImageError(
                path,
                f"truncated EFI zboot image: its payload (offset {zb.payload_offset} + size {zb.payload_size}) "
                f"ends past the end of the file, which has {size} bytes",
            )
        info = pe.parse(path, head, size)
        return KernelInfo(path, kind, info.arch, size, pe=info, zboot=zb)
    if kind is ImageKind.PE:
        info = pe.parse(path, head, size)
        linux = info.section(pe.UKI_SECTION)
        if linux is not None:
            try:
                embedded = _describe(path, _read_at(path, linux.offset, min(linux.size, HEAD)), linux.size)
            except ImageError as err:
                raise ImageError(path, f"UKI .linux section: {err.problem}") from None
            version = info.uname or embedded.version
            return KernelInfo(path, ImageKind.UKI, info.arch, size, version=version, pe=info, embedded=embedded)
        return KernelInfo(path, kind, info.arch, size, pe=info)
    if kind is ImageKind.ELF:
        e = elf.parse(path)
        problem = e.not_a_kernel()
        if problem is not None:
            raise ImageError(path, problem)
        return KernelInfo(path, kind, e.arch, size, elf=e)
    if kind is ImageKind.COMPRESSED:
        comp = Compression.identify(head)
        assert comp is not None
        inner = None
        if comp.peekable:
            data = comp.peek(path, head)
            inner_kind = ImageKind.from_head(data)
            if inner_kind in (ImageKind.IMAGE, ImageKind.BZIMAGE):
                inner = _describe(path, data, size)
            elif inner_kind is ImageKind.ELF:
                # Only the ELF header is at hand: enough for class and machine.
                inner = KernelInfo(path, inner_kind, _elf_arch(data), size)
            else:
                inner = KernelInfo(path, inner_kind, Arch.UNKNOWN, size)
        arch = inner.arch if inner else Arch.UNKNOWN
        return KernelInfo(
            path, kind, arch, size, compression=comp, inner=inner, version=inner.version if inner else None
        )
    raise ImageError(
        path,
        f"not a kernel image: unknown format (first bytes {head[:8].hex(' ')}); expected a bzImage, ELF, Image, PE",
    )


def _elf_arch(data: bytes) -> Arch:
    if len(data) < 20:
        return Arch.UNKNOWN
    little = data[5] == 1
    machine = int.from_bytes(data[18:20], "little" if little else "big")
    return {62: Arch.X86_64, 3: Arch.X86, 183: Arch.ARM64, 40: Arch.ARM, 243: Arch.RISCV64}.get(machine, Arch.UNKNOWN)
