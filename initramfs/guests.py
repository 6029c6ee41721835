"""Small busybox initramfs images for QEMU runs: the second kernel's initrd and the bare baseline.

- The *second-stage* initrd is what a sample entry boots into after kexec: its /init prints the kernel command line
  on the serial port and powers off, so a test can tell which entry (and which edited command line) was booted.
- The *baseline* initrd is the least a LinuxBoot payload can be: busybox /init that mounts /proc, loads the virtio
  storage modules and prints a marker; optionally it carries kexec-tools and a kernel+initrd to `kexec -s -l` and
  `kexec -e`, the yardstick for the menu's own boot time in `make bench`.

Both are written with our cpio writer (kernel: Documentation/driver-api/early-userspace/buffer-format.rst). They
include /dev/console, without which the kernel cannot give /init a console.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from initramfs.cpio import Compression, CpioEntry, write_cpio
from initramfs.elf import DependencyWalker, ElfDependencyError, system_lib_dirs

# Markers the host looks for on the serial console. A value is framed by a start marker and an end marker line that
# carries its length, so a kernel message printed into the middle of the line can be cut out again (parse_framed).
SECOND_STAGE_MARKER = "BOOTMENU-SECOND-STAGE cmdline="
SECOND_STAGE_END = "BOOTMENU-SECOND-STAGE-END"
SECOND_STAGE_DISKS_MARKER = "BOOTMENU-SECOND-STAGE-DISKS"
SECOND_STAGE_HANG_MARKER = "BOOTMENU-SECOND-STAGE-HANGING"
SECOND_STAGE_PANIC_MARKER = "BOOTMENU-SECOND-STAGE-PANICKING"
# With `modules_dir`, for e2e.panic: ramoops and what it needs (modules.dep of the Debian 6.1 kernel).
PSTORE_MODULES = ("kernel/lib/reed_solomon/reed_solomon.ko", "kernel/fs/pstore/ramoops.ko")
BASELINE_MARKER = "BOOTMENU-BASELINE-INIT"
BASELINE_READY = "BOOTMENU-BASELINE-READY"
BASELINE_READY_END = "BOOTMENU-BASELINE-READY-END"
BASELINE_KEXEC = "BOOTMENU-BASELINE-KEXEC-NOW"
# Storage modules the baseline loads, dependencies first (modules.dep of the Debian 6.1 kernel).
VIRTIO_MODULES = (
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/drivers/block/virtio_blk.ko",
)
GUEST_KEXEC_APPEND = "console=ttyS0,115200 panic=-1 quiet"


class GuestError(Exception):
    """A guest image cannot be built (missing busybox, kexec-tools, module...)."""


def find_busybox() -> Path:
    """The static busybox (Debian busybox-static): a dynamic one would need its libraries in the image."""
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(candidate)
        if path.is_file():
            return path
    found = shutil.which("busybox")
    if found is None:
        raise GuestError("busybox not found: install busybox-static (`make setup`)")
    return Path(found)


def _base(busybox: Path) -> list[CpioEntry]:
    return [
        CpioEntry.directory("dev"),
        CpioEntry.char_device("dev/console", 5, 1),
        CpioEntry.directory("proc"),
        CpioEntry.directory("sys"),
        CpioEntry.directory("tmp"),
        CpioEntry.file("bin/busybox", source=busybox, perm=0o755),
        CpioEntry.symlink("bin/sh", "busybox"),
    ]


def _write(entries: Iterable[CpioEntry], output: Path, compression: Compression) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    with tmp.open("wb") as f:
        write_cpio(entries, f)
    data = tmp.read_bytes()
    tmp.unlink()
    output.write_bytes(compression.compress(data))
    return output


SECOND_STAGE_INIT = f"""#!/bin/sh
# The second kernel's /init: say which command line we were booted with, then power off.
# With `e2e.hang` on the command line it hangs instead (a kernel that never comes up, for the watchdog tests); with
# modules in /lib/modules it first loads them and reports the disks it can read.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null
/bin/busybox mount -t sysfs sys /sys 2>/dev/null
words=" $(/bin/busybox cat /proc/cmdline) "
case "$words" in *" e2e.hang "*)
    echo "{SECOND_STAGE_HANG_MARKER}" > /dev/ttyS0
    while :; do /bin/busybox sleep 1000; done ;;
esac
case "$words" in *" e2e.panic "*)
    # A kernel that panics, with ramoops keeping its last words in reserved RAM for the menu to show.
    params=""
    for arg in $(/bin/busybox cat /proc/cmdline); do
        case "$arg" in ramoops.*=*) params="$params ${{arg#ramoops.}}" ;; esac
    done
    /bin/busybox insmod /lib/modules/reed_solomon.ko
    /bin/busybox insmod /lib/modules/ramoops.ko $params
    echo "{SECOND_STAGE_PANIC_MARKER}" > /dev/ttyS0
    echo c > /proc/sysrq-trigger ;;
esac
if [ -e /lib/modules/order ]; then
    /bin/busybox dmesg -n 1 2>/dev/null
    for m in $(/bin/busybox cat /lib/modules/order); do /bin/busybox insmod "/lib/modules/$m"; done
    tries=0
    while [ ! -e /sys/block/vda ] && [ $tries -lt 100 ]; do /bin/busybox usleep 100000; tries=$((tries + 1)); done
    disks=""
    for d in /sys/block/vd*; do
        n=${{d##*/}}
        disks="$disks $n:$(/bin/busybox dd if=/dev/$n bs=65536 count=16 2>/dev/null | /bin/busybox wc -c)"
    done
    echo "{SECOND_STAGE_DISKS_MARKER}$disks" > /dev/ttyS0
fi
# Kernel messages off the console from here on (they could cut the line), and the value framed anyway.
/bin/busybox dmesg -n 1 2>/dev/null
cmdline=$(/bin/busybox cat /proc/cmdline)
line="{SECOND_STAGE_MARKER}$cmdline
{SECOND_STAGE_END} length=${{#cmdline}}"
echo "$line"
# Also straight to the first serial port, for an entry whose command line has no console=ttyS0.
/bin/busybox grep -q console=ttyS0 /proc/cmdline || echo "$line" > /dev/ttyS0
/bin/busybox poweroff -f
"""


# A kernel log line on the console (CONFIG_PRINTK_TIME: "[   12.345678] text"), wherever it starts.
_KERNEL_LINE = re.compile(rb"\[ *\d+\.\d+\][^\n]*\n")


class FramedValueError(ValueError):
    """The text between a start and an end marker is not the value the guest printed (its length differs)."""


def parse_framed(between: bytes, length: int) -> str:
    """The value a guest printed between a start marker and an end marker `... length=N`, from the console bytes
    between the two: kernel log lines that interleaved are removed, then line breaks; the length must match."""
    text = _KERNEL_LINE.sub(b"", between).replace(b"\r", b"").replace(b"\n", b"")
    value = text.decode("utf-8", "replace")
    if len(text) != length:
        raise FramedValueError(f"expected {length} bytes between the markers, got {len(text)}: {between!r}")
    return value


def second_stage_initrd(output: Path, *, busybox: Path | None = None, modules_dir: Path | None = None) -> Path:
    """The initrd of the kernel a menu entry kexecs into (gzip, a few hundred KiB). With `modules_dir` (a
    `lib/modules/<version>` tree) it carries the virtio storage modules and reports the disks it can read."""
    entries = [*_base(busybox or find_busybox()), CpioEntry.file("init", SECOND_STAGE_INIT.encode(), perm=0o755)]
    if modules_dir is not None:
        for module in VIRTIO_MODULES:
            source = modules_dir / module
            if not source.is_file():
                raise GuestError(f"{source}: no such module (run `make kernel`)")
            entries.append(CpioEntry.file(f"lib/modules/{source.name}", source=source))
        for module in PSTORE_MODULES:
            source = modules_dir / module
            if source.is_file():
                entries.append(CpioEntry.file(f"lib/modules/{source.name}", source=source))
        order = "".join(f"{Path(m).name}\n" for m in VIRTIO_MODULES)
        entries.append(CpioEntry.file("lib/modules/order", order.encode()))
    return _write(entries, output, Compression.GZIP)


def _baseline_init(modules: Sequence[str], kexec: bool) -> str:
    lines = [
        "#!/bin/sh",
        "# The bare baseline payload: what a LinuxBoot /init does before any menu.",
        "/bin/busybox --install -s /bin",
        "mount -t proc proc /proc",
        "mount -t sysfs sys /sys",
        "mount -t devtmpfs dev /dev",
        f'echo "{BASELINE_MARKER} uptime=$(cut -d" " -f1 /proc/uptime)"',
    ]
    lines += [f"insmod /lib/modules/{Path(m).name}" for m in modules]
    lines.append('disks="$(ls /sys/block | tr "\\n" " ")"')
    lines.append(f'echo "{BASELINE_READY} disks=$disks"; echo "{BASELINE_READY_END} length=${{#disks}}"')
    if kexec:
        lines += [
            # The marker comes before the load, as the menu's clock starts before its own kexec_file_load.
            f'echo "{BASELINE_KEXEC}"',
            f'/sbin/kexec -s -l /boot/vmlinuz --initrd=/boot/second.img --append="{GUEST_KEXEC_APPEND} baseline"',
            "/sbin/kexec -e",
            'echo "kexec -e failed"',
        ]
    lines += ["exec sh"]
    return "\n".join(lines) + "\n"


def _library_entries(binary: Path, library_roots: Sequence[Path]) -> list[CpioEntry]:
    """The libraries `binary` needs (DT_NEEDED, recursively, initramfs.elf), searched first in the unpacked packages
    `library_roots` (lib/, usr/lib/ and their multiarch directories), then on the host. Each keeps the path the loader
    opens (relative to its package root for unpacked ones: /usr/lib/x86_64-linux-gnu/... is a default directory)."""
    roots = [r.resolve() for r in library_roots]
    extra = [str(r / d) for r in roots for d in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib")]
    try:
        found = DependencyWalker([*extra, *system_lib_dirs()]).walk([binary])
    except ElfDependencyError as e:
        raise GuestError(str(e)) from None
    entries = []
    for lib in found.values():
        guest = next((str(lib.path.relative_to(r)) for r in roots if lib.path.is_relative_to(r)), str(lib.path))
        entries.append(CpioEntry.file(guest.lstrip("/"), source=lib.real, perm=0o755))
    return entries


def baseline_initrd(
    output: Path,
    *,
    modules_dir: Path,
    kexec_binary: Path | None = None,
    second_kernel: Path | None = None,
    second_initrd: Path | None = None,
    busybox: Path | None = None,
    library_roots: Sequence[Path] = (),
) -> Path:
    """The bare busybox payload; with `kexec_binary` it also kexecs `second_kernel` with `second_initrd`, its
    libraries taken from the unpacked packages `library_roots` first, then from the host."""
    entries = _base(busybox or find_busybox())
    for module in VIRTIO_MODULES:
        source = modules_dir / module
        if not source.is_file():
            raise GuestError(f"{source}: no such module (run `make kernel`)")
        entries.append(CpioEntry.file(f"lib/modules/{source.name}", source=source))
    kexec = kexec_binary is not None
    if kexec_binary is not None:
        if second_kernel is None or second_initrd is None:
            raise GuestError("a kexec baseline needs the second kernel and initrd")
        entries.append(CpioEntry.file("sbin/kexec", source=kexec_binary, perm=0o755))
        # Keep the path the binary asks for (/lib64/ld-linux-x86-64.so.2 is the interpreter), content resolved.
        entries += _library_entries(kexec_binary, library_roots)
        entries.append(CpioEntry.file("boot/vmlinuz", source=second_kernel))
        entries.append(CpioEntry.file("boot/second.img", source=second_initrd))
    entries.append(CpioEntry.file("init", _baseline_init(VIRTIO_MODULES, kexec).encode(), perm=0o755))
    return _write(entries, output, Compression.GZIP)
