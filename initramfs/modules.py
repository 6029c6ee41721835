"""Kernel module selection for the payload from an unpacked `lib/modules/<version>` tree with depmod output.

modules.dep (depmod(8), modules.dep(5)) lists, per module file, every module it needs, already transitively closed;
modules.softdep lists "pre:"/"post:" soft dependencies (ext4 wants a crc32c implementation for metadata_csum), which we
resolve ourselves since they name aliases (crypto-crc32c) rather than files. Names compare with "-" and "_" equal, as
the kernel does. After copying, depmod runs again on the staged tree so modules.dep and modules.alias describe
exactly what is in the payload (busybox modprobe reads both to load by modalias).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from initramfs.run import run

# Storage controllers, buses and filesystems a boot menu needs to find boot configs, and their helpers.
DEFAULT_MODULES = (
    # virtio (QEMU, clouds)
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "virtio_console",
    # SATA / PATA / SCSI disks and CD-ROMs
    "ahci",
    "ata_piix",
    "ata_generic",
    "pata_acpi",
    "sd_mod",
    "sr_mod",
    "cdrom",
    # NVMe, USB storage, MMC/SD
    "nvme",
    "xhci_pci",
    "ehci_pci",
    "uhci_hcd",
    "ohci_pci",
    "usb_storage",
    "uas",
    "sdhci_pci",
    "mmc_block",
    # partition tables and filesystems
    "ext4",
    "vfat",
    "msdos",
    "xfs",
    "btrfs",
    "isofs",
    "squashfs",
    "nls_cp437",
    "nls_ascii",
    "nls_iso8859_1",
    "nls_utf8",
    # ext4 metadata_csum and btrfs use crc32c through the crypto API: a soft dependency, not in modules.dep
    "crc32c_generic",
    "crc32c_intel",
    # keyboards on USB
    "hid_generic",
    "usbhid",
    # hardware watchdogs for the guarded jump (discovery/watchdog.py): QEMU's i6300esb, Intel chipsets' TCO
    "i6300esb",
    "iTCO_wdt",
    # pstore backend in reserved RAM, loaded by /init when the command line has ramoops.* (discovery/pstore.py)
    "ramoops",
    # EFI variables (the boot attempt record on UEFI machines, discovery/attempts.py), mounted by /init
    "efivarfs",
)

METADATA_FILES = ("modules.order", "modules.builtin", "modules.builtin.modinfo")


class ModuleError(Exception):
    """The module tree is unusable (no modules.dep, a listed file missing)."""


def module_name(path_or_name: str) -> str:
    """ "kernel/fs/ext4/ext4.ko.xz" or "crc32c-intel" -> "ext4" / "crc32c_intel"."""
    base = path_or_name.rsplit("/", 1)[-1]
    for suffix in (".xz", ".zst", ".gz"):
        base = base.removesuffix(suffix)
    return base.removesuffix(".ko").replace("-", "_")


@dataclass(frozen=True)
class ModuleTree:
    """An unpacked lib/modules/<version> directory and its depmod index."""

    root: Path
    deps: dict[str, tuple[str, ...]]  # module file (relative) -> the module files it needs
    by_name: dict[str, str]  # module name -> module file
    builtin: frozenset[str]

    @property
    def version(self) -> str:
        return self.root.name

    @classmethod
    def load(cls, root: Path) -> ModuleTree:
        dep_file = root / "modules.dep"
        try:
            text = dep_file.read_text()
        except OSError as e:
            raise ModuleError(
                f"{dep_file}: cannot read ({e.strerror}); is {root} a lib/modules/<version> tree?"
            ) from None
        deps: dict[str, tuple[str, ...]] = {}
        by_name: dict[str, str] = {}
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            if ":" not in line:
                raise ModuleError(f"{dep_file}:{lineno}: expected 'module: deps...'")
            mod, rest = line.split(":", 1)
            deps[mod] = tuple(rest.split())
            by_name[module_name(mod)] = mod
        builtin: set[str] = set()
        builtin_file = root / "modules.builtin"
        if builtin_file.exists():
            builtin = {module_name(line) for line in builtin_file.read_text().split()}
        return cls(root, deps, by_name, frozenset(builtin))

    def closure(self, names: Iterable[str]) -> tuple[list[str], list[str]]:
        """(module files needed for `names` with their dependencies, sorted; names neither module nor built in)."""
        files: set[str] = set()
        missing: list[str] = []
        for raw in names:
            name = module_name(raw)
            mod = self.by_name.get(name)
            if mod is None:
                if name not in self.builtin:
                    missing.append(name)
                continue
            files.add(mod)
            files.update(self.deps[mod])
        for f in files:
            if not (self.root / f).is_file():
                raise ModuleError(f"{self.root / f}: listed in modules.dep but missing")
        return sorted(files), missing


@dataclass(frozen=True)
class ModuleSelection:
    version: str
    files: tuple[str, ...]
    missing: tuple[str, ...]


def stage_modules(tree: ModuleTree, names: Iterable[str], root: Path) -> ModuleSelection:
    """Copies the modules for `names` (and dependencies) to root/lib/modules/<version> and runs depmod there."""
    files, missing = tree.closure(names)
    dest = root / "lib/modules" / tree.version
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        target = dest / f
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tree.root / f, target)
    for meta in METADATA_FILES:
        if (tree.root / meta).exists():
            shutil.copyfile(tree.root / meta, dest / meta)
    # depmod -b BASE looks in BASE/lib/modules/VERSION; regenerates modules.dep, modules.alias and their .bin forms.
    run(["depmod", "-b", str(root), tree.version], capture=True)
    return ModuleSelection(tree.version, tuple(files), tuple(missing))
