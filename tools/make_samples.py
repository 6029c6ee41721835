"""Generates the kernels and initrds of the bundled sample filesystems (bootmenu/samples/), reproducibly.

The kernels are tiny x86 bzImage-shaped files that follow the Linux x86 boot protocol
(Documentation/arch/x86/boot.rst): a setup header at 0x1f1 with "HdrS", protocol 2.15, a relocatable 64-bit kernel
(xloadflags), a kernel version string, a kernel_info block and a sane init_size. They pass kexec_core's preflight in
dry run but contain no code: they must never be executed. The initrds are gzip'd newc cpio archives
(Documentation/driver-api/early-userspace/buffer-format.rst).

Usage: python -m tools.make_samples [--check]   (--check: exit 1 when the committed files differ)
"""

from __future__ import annotations

import argparse
import gzip
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "bootmenu" / "samples"

SETUP_SECTS = 4  # the real-mode setup is (SETUP_SECTS + 1) * 512 bytes
PROTOCOL = 0x020F  # 2.15: the last protocol revision adding fields (kernel_info_offset)
LOADED_HIGH = 0x01  # loadflags: protected-mode code at 0x100000
XLF_KERNEL_64 = 0x01  # xloadflags: has the 64-bit entry point at 0x200
XLF_CAN_BE_LOADED_ABOVE_4G = 0x02
KERNEL_ALIGNMENT = 0x200000
MIN_ALIGNMENT = 21  # log2 of the minimum alignment
CMDLINE_SIZE = 2047
INIT_SIZE = 32 * 1024 * 1024  # bytes of linear memory the kernel needs to decompress itself
PROTECTED_SIZE = 4096
MTIME = 1_700_000_000  # fixed, so the files are reproducible


def bzimage(version_string: str) -> bytes:
    """A bzImage-shaped file: setup header, version string, a gzip "payload" and a kernel_info block."""
    setup_len = (SETUP_SECTS + 1) * 512
    setup = bytearray(setup_len)
    version_offset = 0x400  # inside the setup, after the header
    encoded = version_string.encode() + b"\0"
    setup[version_offset : version_offset + len(encoded)] = encoded

    protected = bytearray(PROTECTED_SIZE)
    kernel_info_offset = 0x100
    # kernel_info: "LToP", size, size_total, setup_type_max (boot.rst, "The kernel_info").
    protected[kernel_info_offset : kernel_info_offset + 16] = b"LToP" + struct.pack("<III", 16, 16, 7)
    payload = gzip.compress(b"\x7fELF" + bytes(60), mtime=0)
    payload_offset = 0x200
    protected[payload_offset : payload_offset + len(payload)] = payload
    syssize = len(protected) // 16

    struct.pack_into("<BHIHHHH", setup, 0x1F1, SETUP_SECTS, 1, syssize, 0, 0xFFFF, 0, 0xAA55)
    setup[0x200:0x202] = b"\xeb\x66"  # jmp over the header, as real kernels do
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<HIHH", setup, 0x206, PROTOCOL, 0, 0x1000, version_offset - 0x200)
    struct.pack_into("<BBHI", setup, 0x210, 0, LOADED_HIGH, 0x8000, 0x100000)
    struct.pack_into("<IIIHBBII", setup, 0x218, 0, 0, 0, 0xFE00, 0, 0, 0, 0x7FFFFFFF)
    struct.pack_into(
        "<IBBHIIQIIQQIII",
        setup,
        0x230,
        KERNEL_ALIGNMENT,
        1,  # relocatable_kernel
        MIN_ALIGNMENT,
        XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G,
        CMDLINE_SIZE,
        0,  # hardware_subarch: PC
        0,
        payload_offset,
        len(payload),
        0,  # setup_data
        0x1000000,  # pref_address
        INIT_SIZE,
        0,  # handover_offset: no EFI handover
        kernel_info_offset,
    )
    return bytes(setup) + bytes(protected)


def _cpio_entry(name: str, mode: int, data: bytes, ino: int) -> bytes:
    fields = (ino, mode, 0, 0, 1, MTIME, len(data), 0, 0, 0, 0, len(name) + 1, 0)
    header = b"070701" + b"".join(f"{v:08X}".encode() for v in fields)
    out = header + name.encode() + b"\0"
    out += bytes(-len(out) % 4)
    out += data + bytes(-len(data) % 4)
    return out


def initrd(files: dict[str, bytes]) -> bytes:
    """A gzip'd newc archive with the parent directories of `files` and a trailer."""
    body = b""
    ino = 1
    dirs = sorted({str(Path(n).parent) for n in files if str(Path(n).parent) != "."})
    for d in dirs:
        body += _cpio_entry(d, 0o040755, b"", ino)
        ino += 1
    for name, data in sorted(files.items()):
        mode = 0o100755 if name in ("init",) or name.startswith("bin/") else 0o100644
        body += _cpio_entry(name, mode, data, ino)
        ino += 1
    body += _cpio_entry("TRAILER!!!", 0, b"", 0)
    body += bytes(-len(body) % 512)
    return gzip.compress(body, mtime=0)


def _init_script(distro: str) -> bytes:
    return f"#!/bin/sh\n# bootmenu sample initrd ({distro}): never meant to run\necho {distro}\nexec /bin/sh\n".encode()


@dataclass(frozen=True)
class Kernel:
    """One kernel/initrd pair of a sample filesystem."""

    sample: str
    kernel: str
    initrd: str
    version: str
    distro: str

    def files(self) -> dict[Path, bytes]:
        root = SAMPLES / self.sample
        return {
            root / self.kernel: bzimage(self.version),
            root / self.initrd: initrd({"init": _init_script(self.distro), "etc/os-release": self._os_release()}),
        }

    def _os_release(self) -> bytes:
        return f'NAME="{self.distro}"\nPRETTY_NAME="{self.distro} (bootmenu sample)"\n'.encode()


_UBUNTU_BUILD = "(buildd@lcy02-amd64-080) (x86_64-linux-gnu-gcc-13 (Ubuntu 13.2.0-23ubuntu4) 13.2.0) #31-Ubuntu SMP"
_FEDORA_BUILD = "(mockbuild@fedoraproject.org) (gcc (GCC) 14.2.1) #1 SMP PREEMPT_DYNAMIC"
_ALPINE_BUILD = "(buildozer@build-3-20-x86_64) (gcc (Alpine 13.2.1_git20240309) 13.2.1) #1-Alpine SMP PREEMPT_DYNAMIC"

KERNELS: tuple[Kernel, ...] = (
    Kernel(
        "ubuntu", "boot/vmlinuz-6.8.0-31-generic", "boot/initrd.img-6.8.0-31-generic",
        f"6.8.0-31-generic {_UBUNTU_BUILD}", "Ubuntu",
    ),
    Kernel(
        "ubuntu", "boot/vmlinuz-6.8.0-28-generic", "boot/initrd.img-6.8.0-28-generic",
        f"6.8.0-28-generic {_UBUNTU_BUILD}", "Ubuntu",
    ),
    Kernel(
        "fedora", "vmlinuz-6.11.4-301.fc41.x86_64", "initramfs-6.11.4-301.fc41.x86_64.img",
        f"6.11.4-301.fc41.x86_64 {_FEDORA_BUILD}", "Fedora Linux",
    ),
    Kernel(
        "fedora", "vmlinuz-0-rescue-4f1c2a9be1d84d3c9b6e0b4c7a8d2e11",
        "initramfs-0-rescue-4f1c2a9be1d84d3c9b6e0b4c7a8d2e11.img",
        f"6.11.4-301.fc41.x86_64 {_FEDORA_BUILD}", "Fedora Linux",
    ),
    Kernel("alpine", "boot/vmlinuz-lts", "boot/initramfs-lts", f"6.6.58-0-lts {_ALPINE_BUILD}", "Alpine Linux"),
)  # fmt: skip


def expected_files() -> dict[Path, bytes]:
    out: dict[Path, bytes] = {}
    for k in KERNELS:
        out.update(k.files())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only compare with the committed files")
    args = parser.parse_args(argv)
    stale = []
    for path, data in expected_files().items():
        current = path.read_bytes() if path.exists() else None
        if current == data:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"wrote {path.relative_to(SAMPLES.parent.parent)} ({len(data)} bytes)")
    if args.check and stale:
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
