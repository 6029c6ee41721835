"""Kernel module selection for the payload from an unpacked `lib/modules/<version>` tree.

With depmod output, modules.dep (depmod(8), modules.dep(5)) lists per module file every module it needs, already
transitively closed. A freshly unpacked kernel package (`apt-get download` + `dpkg -x`) has no depmod output: then
the same facts come from each module's `.modinfo` ELF section, the NUL-separated `key=value` strings modpost writes
(`name=`, `depends=` comma-separated module names, `alias=` patterns, `softdep=` "pre: a b post: c"), and the
closure is computed here, as depmod would.

Soft dependencies (modprobe.d(5) `softdep`: ext4 wants a crc32c implementation for metadata_csum) come along too:
from modules.softdep with depmod output, else from `.modinfo`. They name modules or aliases (crypto-crc32c), matched
like modprobe does: a module name first, else every module with an alias pattern (fnmatch) matching it; one that
matches nothing is skipped, as modprobe skips it. Names and aliases compare with "-" and "_" equal, as in kmod.
After copying, depmod runs again on the staged tree so modules.dep and modules.alias describe exactly what is in the
payload (busybox modprobe reads both to load by modalias).

Staged modules are xz-compressed (`.ko.xz`, issue 15): the payload's files stay in RAM for the whole boot (the
initramfs is a tmpfs), and the kernel modules were 23 of its 46 MiB; compressed they are 3.9 MiB. The test kernels
have no in-kernel module decompression (CONFIG_MODULE_DECOMPRESS unset), so busybox modprobe does it: its
finit_module of a compressed file fails, and it then reads the file through its xz decoder into memory and calls
init_module with the plain image (the module signature is inside it, untouched). Its decoder (xz-embedded) checks
CRC32 and allocates the dictionary size the stream header states, hence one dictionary no larger than the module.
"""

from __future__ import annotations

import fnmatch
import gzip
import lzma
import os
import shutil
import struct
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from initramfs.run import run

# Storage controllers, buses and filesystems a boot menu needs to find boot configs, and their helpers.
DEFAULT_MODULES = (
    # virtio (QEMU, clouds)
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "virtio_console",
    # network boot: the NICs of QEMU and common servers
    "virtio_net",
    "e1000",
    "e1000e",
    "igb",
    "ixgbe",
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
MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")
# A .modinfo section is a few hundred bytes to a few kB; a larger one means a damaged file.
MODINFO_LIMIT = 1 << 20


class ModuleError(Exception):
    """The module tree is unusable (no modules, a listed file missing, a module that cannot be read)."""


def module_name(path_or_name: str) -> str:
    """ "kernel/fs/ext4/ext4.ko.xz" or "crc32c-intel" -> "ext4" / "crc32c_intel"."""
    base = path_or_name.rsplit("/", 1)[-1]
    for suffix in (".xz", ".zst", ".gz"):
        base = base.removesuffix(suffix)
    return base.removesuffix(".ko").replace("-", "_")


def _normalize(name: str) -> str:
    return name.replace("-", "_")


def _module_bytes(path: Path) -> bytes:
    if path.name.endswith(".xz"):
        return lzma.decompress(path.read_bytes())
    if path.name.endswith(".gz"):
        return gzip.decompress(path.read_bytes())
    if path.name.endswith(".zst"):
        return run(["zstd", "-dc", "--", str(path)], capture=True).stdout
    return path.read_bytes()


def read_modinfo(path: Path) -> list[tuple[str, str]]:
    """The `key=value` strings of a module's .modinfo section (ELF(5) section headers, 32 or 64 bit, either byte
    order), in file order."""
    try:
        data = _module_bytes(path)
    except (OSError, lzma.LZMAError, EOFError, gzip.BadGzipFile) as e:
        raise ModuleError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    if data[:4] != b"\x7fELF" or len(data) < 64 or data[4] not in (1, 2) or data[5] not in (1, 2):
        raise ModuleError(f"{path}: not an ELF kernel module")
    order = "<" if data[5] == 1 else ">"
    if data[4] == 2:  # ELFCLASS64
        (shoff,) = struct.unpack_from(order + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 0x3A)
        header = order + "IIQQQQ"  # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size
    else:
        (shoff,) = struct.unpack_from(order + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 0x2E)
        header = order + "IIIIII"
    if shentsize < struct.calcsize(header) or shoff + shnum * shentsize > len(data) or shstrndx >= shnum:
        raise ModuleError(f"{path}: section headers outside the file")

    def section(index: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from(header, data, shoff + index * shentsize)
        if offset + size > len(data):
            raise ModuleError(f"{path}: section {index} outside the file")
        return name, offset, size

    _, str_offset, str_size = section(shstrndx)
    names = data[str_offset : str_offset + str_size]
    for index in range(shnum):
        name, offset, size = section(index)
        if names[name : names.find(b"\0", name)] == b".modinfo":
            if size > MODINFO_LIMIT:
                raise ModuleError(f"{path}: .modinfo of {size} bytes")
            pairs = []
            for raw in data[offset : offset + size].split(b"\0"):
                key, sep, value = raw.decode("utf-8", "replace").partition("=")
                if sep:
                    pairs.append((key, value))
            return pairs
    raise ModuleError(f"{path}: no .modinfo section (not a kernel module)")


def parse_softdep(text: str) -> tuple[str, ...]:
    """The module names of `pre: a b post: c` (words before any `pre:`/`post:` are ignored, as modprobe does)."""
    names: list[str] = []
    mode = None
    for word in text.split():
        if word in ("pre:", "post:"):
            mode = word
        elif mode is not None:
            names.append(word)
    return tuple(names)


@dataclass(frozen=True)
class ModuleTree:
    """An unpacked lib/modules/<version> directory: its modules and how they depend on each other."""

    root: Path
    deps: dict[str, tuple[str, ...]]  # module file (relative) -> the module files it needs (direct or closed)
    by_name: dict[str, str]  # module name -> module file
    builtin: frozenset[str]
    softdeps: dict[str, tuple[str, ...]] = field(default_factory=dict)  # module name -> soft dependency names
    aliases: tuple[tuple[str, str], ...] = ()  # (normalized alias pattern, module name)
    source: str = "modules.dep"  # where the dependencies came from: "modules.dep" or ".modinfo"

    @property
    def version(self) -> str:
        return self.root.name

    @classmethod
    def load(cls, root: Path) -> ModuleTree:
        """From depmod's modules.dep when there is one, else from every module's .modinfo (an unpacked package).

        `root` may also be the unpacked package itself, holding one lib/modules/<version>."""
        versions = sorted(p for p in (root / "lib" / "modules").glob("*") if p.is_dir())
        if len(versions) == 1 and not (root / "modules.order").exists():
            root = versions[0]
        if not root.is_dir():
            raise ModuleError(f"{root}: not a directory; expected a lib/modules/<version> tree")
        builtin: set[str] = set()
        builtin_file = root / "modules.builtin"
        if builtin_file.exists():
            builtin = {module_name(line) for line in builtin_file.read_text().split()}
        dep_file = root / "modules.dep"
        if dep_file.exists():
            return cls._from_depmod(root, frozenset(builtin))
        return cls.from_modinfo(root, frozenset(builtin))

    @classmethod
    def _from_depmod(cls, root: Path, builtin: frozenset[str]) -> ModuleTree:
        dep_file = root / "modules.dep"
        try:
            text = dep_file.read_text()
        except OSError as e:
            raise ModuleError(f"{dep_file}: cannot read ({e.strerror})") from None
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
        softdeps: dict[str, tuple[str, ...]] = {}
        for words in _index_lines(root / "modules.softdep", "softdep"):
            soft = parse_softdep(" ".join(words[1:]))
            if words and soft:
                name = module_name(words[0])
                softdeps[name] = softdeps.get(name, ()) + soft
        aliases = tuple(
            (_normalize(words[0]), module_name(words[1]))
            for words in _index_lines(root / "modules.alias", "alias")
            if len(words) == 2
        )
        return cls(root, deps, by_name, builtin, softdeps, aliases, "modules.dep")

    @classmethod
    def from_modinfo(cls, root: Path, builtin: frozenset[str] = frozenset()) -> ModuleTree:
        """Reads each module's .modinfo and resolves its `depends=` names to files, as depmod would."""
        files = sorted(_module_files(root))
        if not files:
            raise ModuleError(
                f"{root}: no modules.dep and no kernel modules (*.ko*); is it a lib/modules/<version> tree?"
            )
        by_name: dict[str, str] = {}
        depends: dict[str, list[str]] = {}
        softdeps: dict[str, tuple[str, ...]] = {}
        aliases: list[tuple[str, str]] = []
        for rel in files:
            info = read_modinfo(root / rel)
            name = module_name(next((v for k, v in info if k == "name"), rel))
            by_name[name] = rel
            depends[rel] = [d for k, v in info if k == "depends" for d in v.split(",") if d]
            soft = tuple(n for k, v in info if k == "softdep" for n in parse_softdep(v))
            if soft:
                softdeps[name] = soft
            aliases += [(_normalize(v), name) for k, v in info if k == "alias"]
        deps: dict[str, tuple[str, ...]] = {}
        for rel, names in depends.items():
            resolved = []
            for dep in names:
                target = by_name.get(module_name(dep))
                if target is None:
                    raise ModuleError(f"{root / rel}: depends on {dep}, which is not in {root}")
                resolved.append(target)
            deps[rel] = tuple(resolved)
        return cls(root, deps, by_name, builtin, softdeps, tuple(aliases), ".modinfo")

    def dependencies(self, mod: str) -> set[str]:
        """Every module file `mod` (a file) needs, transitively (what depmod writes on its modules.dep line)."""
        seen: set[str] = set()
        stack = list(self.deps.get(mod, ()))
        while stack:  # bounded: each file is pushed once per file that names it, and visited once
            dep = stack.pop()
            if dep in seen:
                continue
            seen.add(dep)
            stack.extend(self.deps.get(dep, ()))
        seen.discard(mod)
        return seen

    def resolve(self, name: str) -> list[str]:
        """The module names modprobe would load for `name`: the module itself, else the modules whose alias matches."""
        wanted = module_name(name)
        if wanted in self.by_name:
            return [wanted]
        pattern_name = _normalize(name)
        return sorted({mod for pattern, mod in self.aliases if fnmatch.fnmatchcase(pattern_name, pattern)})

    def closure(self, names: Iterable[str]) -> tuple[list[str], list[str]]:
        """(module files needed for `names` with their hard and soft dependencies, sorted; names neither module nor
        built in)."""
        files: set[str] = set()
        missing: list[str] = []
        pending = [(raw, True) for raw in names]
        done: set[str] = set()
        while pending:  # bounded: each module name is expanded once
            raw, requested = pending.pop(0)
            name = module_name(raw)
            mod = self.by_name.get(name)
            if mod is None:
                if requested and name not in self.builtin:
                    missing.append(name)
                continue
            if name in done:
                continue
            done.add(name)
            for needed in (mod, *sorted(self.dependencies(mod))):
                files.add(needed)
                for soft in self.softdeps.get(module_name(needed), ()):
                    # A soft dependency nothing provides (or a built-in one) is skipped, as modprobe skips it.
                    pending += [(m, False) for m in self.resolve(soft)]
        for f in files:
            if not (self.root / f).is_file():
                raise ModuleError(f"{self.root / f}: listed in {self.source} but missing")
        return sorted(files), missing


def _module_files(root: Path) -> Iterator[str]:
    for path in root.rglob("*.ko*"):
        if path.name.endswith(MODULE_SUFFIXES) and path.is_file():
            yield str(path.relative_to(root))


def _index_lines(path: Path, keyword: str) -> Iterator[list[str]]:
    """The words after `keyword` on each line of a depmod index (modules.alias, modules.softdep); none if absent."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return
    except OSError as e:
        raise ModuleError(f"{path}: cannot read ({e.strerror})") from None
    for line in text.splitlines():
        words = line.split()
        if words and words[0] == keyword:
            yield words[1:]


@dataclass(frozen=True)
class ModuleSelection:
    version: str
    files: tuple[str, ...]
    missing: tuple[str, ...]


def compress_module(data: bytes) -> bytes:
    """An .xz stream busybox's decoder reads: LZMA2 alone, CRC32, a dictionary no larger than the module (it
    allocates what the header says), deterministic."""
    dict_size = max(1 << 16, min(len(data), 8 << 20))
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": dict_size}]
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, filters=filters)


def _stage_one(source: Path, target: Path, compress: bool) -> str:
    """Copies (and compresses a plain .ko to .ko.xz); returns the staged file name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if compress and source.name.endswith(".ko"):
        target = target.with_name(target.name + ".xz")
        target.write_bytes(compress_module(source.read_bytes()))
    else:
        shutil.copyfile(source, target)
    return target.name


def stage_modules(tree: ModuleTree, names: Iterable[str], root: Path, *, compress: bool = True) -> ModuleSelection:
    """Copies the modules for `names` (and dependencies) to root/lib/modules/<version>, xz-compressed unless
    `compress` is False, and runs depmod there. The selection's files are the staged names (relative)."""
    files, missing = tree.closure(names)
    dest = root / "lib/modules" / tree.version
    dest.mkdir(parents=True, exist_ok=True)
    # lzma releases the GIL: one thread per CPU compresses in parallel; the output does not depend on the order.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        staged_names = list(pool.map(lambda f: _stage_one(tree.root / f, dest / f, compress), files))
    staged = tuple(str(Path(f).parent / n) if "/" in f else n for f, n in zip(files, staged_names, strict=True))
    for meta in METADATA_FILES:
        if (tree.root / meta).exists():
            shutil.copyfile(tree.root / meta, dest / meta)
    order = dest / "modules.order"
    if order.exists():  # the whole kernel's list (160 kB for 4000 modules): only what is staged, by its staged name
        renamed = dict(zip(files, staged, strict=True))
        kept = [renamed[line] for line in order.read_text().split() if line in renamed]
        order.write_text("".join(f"{line}\n" for line in kept))
    # depmod -b BASE looks in BASE/lib/modules/VERSION; regenerates modules.dep, modules.alias and their .bin forms.
    run(["depmod", "-b", str(root), tree.version], capture=True)
    return ModuleSelection(tree.version, staged, tuple(missing))
