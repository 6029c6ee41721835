"""Kernel image identification and description: which format a file is, for which CPU, and what its header says.

Formats: x86 bzImage (bzimage.py), ELF vmlinux (elf.py), arm64/RISC-V Image (arm64.py), PE files, unified kernel
images and EFI zboot (pe.py), and kernels compressed as a whole (compress.py).
"""

from __future__ import annotations

import enum
import os
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from kexec_core import arm64, bzimage, decompress, elf, pe
from kexec_core.arch import Arch
from kexec_core.arm64 import ImageHeader
from kexec_core.bzimage import SetupHeader
from kexec_core.compress import Compression
from kexec_core.decompress import Decompressed
from kexec_core.elf import ElfInfo
from kexec_core.errors import ImageError
from kexec_core.fileio import open_regular, size_of
from kexec_core.memory import MEMINFO
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
    # What a compressed kernel (or EFI zboot payload) decompresses to: the whole decompressed file described when
    # `decompressed` holds it, else what its first bytes say.
    inner: KernelInfo | None = None
    decompressed: Decompressed | None = field(default=None, compare=False)
    not_decompressed: str | None = None  # why a compressed kernel was not decompressed here
    embedded: KernelInfo | None = None  # a UKI's .linux section, described as a kernel of its own

    @property
    def loaded_kernel(self) -> KernelInfo:
        """The kernel that kexec would actually load: a UKI's .linux section, the decompressed kernel, or this."""
        if self.embedded:
            return self.embedded
        if self.decompressed and self.inner:
            return self.inner
        return self

    def close(self) -> None:
        """Release the decompressed copy, if any (tmpfs memory)."""
        if self.decompressed is not None:
            self.decompressed.close()

    @property
    def cmdline_size(self) -> int | None:
        """The longest command line the kernel takes, including its NUL, when its header says."""
        if self.loaded_kernel is not self:
            return self.loaded_kernel.cmdline_size
        return self.bzimage.cmdline_size if self.bzimage else None

    @property
    def memory_needed(self) -> int:
        """Bytes the running kernel occupies (init_size, image_size or PT_LOAD sizes), else the file size."""
        if self.loaded_kernel is not self:
            return self.loaded_kernel.memory_needed
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
        if self.compression and self.kind is ImageKind.COMPRESSED:
            what = f"{self.compression}-compressed {self.inner.kind if self.inner else 'file'}"
        version = f" {self.version}" if self.version else ""
        extra = []
        if self.bzimage:
            extra.append(f"boot protocol {self.bzimage.protocol_str}")
        if self.zboot:
            inside = f" {self.inner.kind}" if self.inner else ""
            extra.append(f"{self.zboot.compression}{inside} payload")
        if self.decompressed:
            extra.append(f"{self.decompressed.size} bytes decompressed")
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
            out["decompressed_size"] = self.decompressed.size if self.decompressed else None
            out["decompressed_cap"] = self.decompressed.cap.describe() if self.decompressed else None
            out["decompressed_by"] = self.decompressed.program if self.decompressed else None
            out["not_decompressed"] = self.not_decompressed
        return out


def _read_head(path: Path, size: int = HEAD) -> bytes:
    with open_regular(path) as f:
        return _read(path, f, size)


def _read(path: Path, f: BinaryIO, size: int, offset: int = 0) -> bytes:
    try:
        return os.pread(f.fileno(), size, offset)
    except OSError as err:
        raise ImageError(path, f"cannot read: {err.strerror}") from None


@dataclass(frozen=True)
class Options:
    """How far inspection goes: whether compressed kernels are decompressed (into a memfd), and up to what size."""

    decompress: bool = True
    limit: int | None = None  # None: decompress.DEFAULT_LIMIT (and never over half of MemAvailable)
    meminfo: Path = MEMINFO


def inspect_kernel(path: Path, options: Options | None = None) -> KernelInfo:
    """Identify and describe a kernel image. Raises ImageError for a missing, unreadable or malformed file.

    A compressed kernel (whole-file or EFI zboot) is decompressed into an anonymous tmpfs file held by the result's
    `decompressed` (closed with `close()`, or when the result is freed), and described as its `inner` kernel.
    """
    with open_regular(path) as f:
        head = _read(path, f, HEAD)
        size = size_of(f)
        if size == 0:
            raise ImageError(path, "empty file")
        return _describe(path, head, size, f, options or Options())


def _describe(path: Path, head: bytes, size: int, f: BinaryIO | None, options: Options) -> KernelInfo:
    """Describe the kernel whose first bytes are `head`; `f` holds it from offset 0 (None: a section, see UKI)."""
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
        return _zboot(path, head, size, f, options)
    if kind is ImageKind.PE:
        info = pe.parse(path, head, size, f)
        linux = info.section(pe.UKI_SECTION)
        if linux is not None:
            if f is None:
                raise ImageError(path, "a UKI inside a UKI section")
            try:
                section_head = _read(path, f, min(linux.size, HEAD), linux.offset)
                embedded = _describe(path, section_head, linux.size, None, options)
            except ImageError as err:
                raise ImageError(path, f"UKI .linux section: {err.problem}") from None
            version = info.uname or embedded.version
            return KernelInfo(path, ImageKind.UKI, info.arch, size, version=version, pe=info, embedded=embedded)
        return KernelInfo(path, kind, info.arch, size, pe=info)
    if kind is ImageKind.ELF:
        if f is None:
            raise ImageError(path, "an ELF kernel inside a UKI section is not supported (only bzImage and Image)")
        e = elf.parse(path, f)
        problem = e.not_a_kernel()
        if problem is not None:
            raise ImageError(path, problem)
        return KernelInfo(path, kind, e.arch, size, elf=e)
    if kind is ImageKind.COMPRESSED:
        comp = Compression.identify(head)
        assert comp is not None
        outer = KernelInfo(path, kind, Arch.UNKNOWN, size)
        source = None if f is None else decompress.Source(path, f, 0, size)
        return _compressed(outer, comp, head, source, None, options=options)
    raise ImageError(
        path,
        f"not a kernel image: unknown format (first bytes {head[:8].hex(' ')}); expected a bzImage, ELF, Image, PE",
    )


def _zboot(path: Path, head: bytes, size: int, f: BinaryIO | None, options: Options) -> KernelInfo:
    zb = pe.parse_zboot(path, head)
    end = zb.payload_offset + zb.payload_size
    if end > size:
        raise ImageError(
            path,
            f"truncated EFI zboot image: its payload (offset {zb.payload_offset} + size {zb.payload_size}) "
            f"ends past the end of the file, which has {size} bytes",
        )
    info = pe.parse(path, head, size, f)
    outer = KernelInfo(path, ImageKind.EFI_ZBOOT, info.arch, size, pe=info, zboot=zb)
    if f is None:
        return outer
    payload_head = _read(path, f, min(zb.payload_size, HEAD), zb.payload_offset)
    comp = Compression.identify(payload_head)
    if comp is None:
        raise ImageError(
            path,
            f"EFI zboot payload ({zb.compression!r}) at offset {zb.payload_offset} starts with "
            f"{payload_head[:6].hex(' ')}, no compression format kexec_core knows",
        )
    declared = None
    if comp is not Compression.GZIP and end + 4 <= size:
        # Makefile.zboot's *_with_size: the le32 uncompressed size right after the payload (gzip has ISIZE).
        (value,) = struct.unpack("<I", _read(path, f, 4, end))
        declared = (value, "the size after the EFI zboot payload")
    source = decompress.Source(path, f, zb.payload_offset, zb.payload_size)
    return _compressed(outer, comp, payload_head, source, declared, options=options)


def _compressed(
    outer: KernelInfo,
    comp: Compression,
    head: bytes,
    src: decompress.Source | None,
    declared: tuple[int, str] | None,
    *,
    options: Options,
) -> KernelInfo:
    """`outer` with what its compressed data (starting with `head`) holds: peeked, then decompressed if possible."""
    path, size = outer.path, outer.size
    inner = None
    why = decompress.available(comp)
    unpeekable = None
    if comp.peekable:
        try:
            inner = _peeked(path, comp.peek(path, head), size)
        except ImageError as err:
            # The start alone may not decompress (bzip2 blocks, lz4's legacy 8 MiB blocks): decompressing it all
            # tells. gzip, xz and lzma decode incrementally, so their word is final (decompress.peek_is_final).
            unpeekable = err
    will_decompress = src is not None and options.decompress and why is None
    if unpeekable is not None and (not will_decompress or decompress.peek_is_final(comp)):
        raise unpeekable
    if inner is not None and inner.kind is ImageKind.UNKNOWN:
        why = "it does not start like a kernel"
    elif will_decompress:
        assert src is not None
        bound = None
        if inner is not None and inner.image is not None:
            bound = (inner.image.image_size, "the image_size of the Image header")
        result = decompress.decompress(
            src, comp, declared=declared, bound=bound, limit=options.limit, meminfo=options.meminfo
        )
        try:
            data_head = _read(path, result.file, HEAD)
            inner = _describe(path, data_head, result.size, result.file, options)
            if inner.kind in (ImageKind.COMPRESSED, ImageKind.EFI_ZBOOT):
                raise ImageError(path, f"a kernel compressed twice ({comp}, then {inner.compression or inner.kind})")
        except ImageError as err:
            result.close()
            raise ImageError(path, f"decompressed {comp} data: {err.problem}") from None
        return replace(
            outer, arch=inner.arch, version=inner.version, compression=comp, inner=inner, decompressed=result
        )
    arch = inner.arch if inner else outer.arch
    version = inner.version if inner else None
    return replace(outer, arch=arch, version=version, compression=comp, inner=inner, not_decompressed=why)


def _peeked(path: Path, data: bytes, size: int) -> KernelInfo:
    """What the first decompressed bytes say (the whole size is not known yet, so nothing is checked against it)."""
    kind = ImageKind.from_head(data)
    if kind is ImageKind.BZIMAGE:
        hdr = bzimage.parse(path, data)
        arch = Arch.X86_64 if hdr.xloadflags & bzimage.XLoadFlag.KERNEL_64 else Arch.X86
        version = hdr.version_string.split()[0] if hdr.version_string else None
        return KernelInfo(path, kind, arch, size, version=version, bzimage=hdr)
    if kind is ImageKind.IMAGE:
        img = arm64.parse(path, data)
        return KernelInfo(path, kind, img.arch, size, image=img)
    if kind is ImageKind.ELF:
        # Only the ELF header is at hand: enough for class and machine.
        return KernelInfo(path, kind, _elf_arch(data), size)
    return KernelInfo(path, kind, Arch.UNKNOWN, size)


def _elf_arch(data: bytes) -> Arch:
    if len(data) < 20:
        return Arch.UNKNOWN
    little = data[5] == 1
    machine = int.from_bytes(data[18:20], "little" if little else "big")
    return {62: Arch.X86_64, 3: Arch.X86, 183: Arch.ARM64, 40: Arch.ARM, 243: Arch.RISCV64}.get(machine, Arch.UNKNOWN)
