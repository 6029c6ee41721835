"""Unified kernel images built the way ukify and the older `objcopy --add-section` recipes build them.

A UKI (UAPI Group "Unified Kernel Image") is systemd's EFI stub with the kernel, initrd, command line and os-release
added as PE sections. Tests and the sample disks use it to give the menu a real Type #2 entry: the stub comes from
Debian's systemd-boot-efi package, unpacked into a cache by tools/fetch-deb (`make kernel`), never installed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from initramfs.run import run

STUB_CACHE = Path(".cache/systemd-boot-efi")
STUB_PATH = "usr/lib/systemd/boot/efi/linuxx64.efi.stub"
# Section addresses above anything the stub itself occupies, in ukify's order; each section is given room to grow
# (the kernel at 32 MiB so a bzImage of up to 16 MiB fits below the initrd at 48 MiB).
_SECTIONS: Sequence[tuple[str, int]] = (
    (".osrel", 0x20000),
    (".cmdline", 0x30000),
    (".uname", 0x40000),
    (".linux", 0x2000000),
    (".initrd", 0x3000000),
)


class UkiError(Exception):
    """The stub is missing or objcopy failed."""


def stub(cache: Path = STUB_CACHE) -> Path:
    found = cache / "root" / STUB_PATH
    if not found.is_file():
        raise UkiError(f"no systemd EFI stub at {found}: run `make kernel` (tools/fetch-deb systemd-boot-efi {cache})")
    return found


def build_uki(
    output: Path,
    *,
    linux: Path,
    osrel: str,
    cmdline: str = "",
    initrd: Path | None = None,
    uname: str = "",
    stub_file: Path | None = None,
) -> Path:
    """Writes the UKI to `output` with `objcopy` (binutils) and returns it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        texts = {".osrel": osrel, ".cmdline": cmdline, ".uname": uname}
        contents: dict[str, Path] = {".linux": linux}
        if initrd is not None:
            contents[".initrd"] = initrd
        for name, text in texts.items():
            if text:
                path = Path(scratch) / name.lstrip(".")
                path.write_text(text)
                contents[name] = path
        argv: list[str] = ["objcopy"]
        for name, vma in _SECTIONS:
            if name in contents:
                argv += ["--add-section", f"{name}={contents[name]}", "--change-section-vma", f"{name}={vma:#x}"]
        argv += [str(stub_file or stub()), str(output)]
        run(argv)
    return output
