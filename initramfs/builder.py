"""Assembles the payload initramfs: stages a root tree, then archives it as a deterministic compressed newc cpio.

Layout (merged /usr, as Debian):
    /init                          data/init, the supervisor (busybox sh)
    /usr/bin/busybox + applets     static busybox: the shell, mount, modprobe, mdev, setsid...
    /usr/bin/zstd, /usr/bin/lz4    the build machine's (Debian zstd, lz4), when it has them: kexec_core/decompress.py
                                   runs them for zstd and lz4 kernels, which Python's standard library cannot read
    /usr/bin/python3               the interpreter; /usr/lib/python3.X its bytecode-only library (python_runtime)
    /usr/bin/bootmenu              launcher: python3 -I -S -m bootmenu
    /usr/lib/<multiarch>/*.so*     every shared library needed (elf), named by soname; /lib64/ld-linux... the loader
    /etc/ld.so.cache               built by `ldconfig -r` on the staged tree; /etc/ld.so.cache.txt its `-p` listing,
                                   printed by the /sbin/ldconfig stub for ctypes.util.find_library (pyudev -> libudev)
    /lib/modules/<version>         the selected kernel modules, xz-compressed, depmod run on them (modules)
    /etc/bootmenu-payload          marker: kexec_core refuses to kexec outside the payload
    /etc/bootmenu/settings.toml    --settings FILE: the daemon's settings (discovery.settings.PAYLOAD_SETTINGS)
    /etc/mdev.conf, passwd, group  hotplug module loading, a root user for the shell
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import sysconfig
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from initramfs import python_runtime
from initramfs.cpio import Compression, CpioEntry, write_cpio
from initramfs.elf import DependencyWalker, Library, is_elf
from initramfs.modules import DEFAULT_MODULES, ModuleSelection, ModuleTree, stage_modules
from initramfs.run import run

DEFAULT_BUSYBOX = Path("/bin/busybox")
MARKER = "etc/bootmenu-payload"
# Optional: shipped with its rules when the build machine has it (otherwise the kernel's uevents are all there is).
UDEVD_CANDIDATES = (Path("/lib/systemd/systemd-udevd"), Path("/usr/lib/systemd/systemd-udevd"))
UDEV_RULES_DIRS = (Path("/lib/udev/rules.d"), Path("/usr/lib/udev/rules.d"))
# Libraries loaded with dlopen, which no DT_NEEDED names, with the Debian package that has them: pyudev's libudev
# (ctypes); libgcc_s, which glibc loads to unwind a thread in pthread_exit (Python ends daemon threads so at exit;
# without it: abort, status -6); libsodium for the menu password's scrypt (discovery/password.py: the payload's
# Python has no OpenSSL).
DLOPEN_LIBRARIES = {"libudev.so.1": "libudev1", "libgcc_s.so.1": "libgcc-s1", "libsodium.so.23": "libsodium23"}
# Decompressor programs for kernels compressed with what the standard library lacks (kexec_core/decompress.py TOOLS).
DECOMPRESSORS = ("zstd", "lz4")


class BuildError(Exception):
    """The payload cannot be built; the message names the missing input."""


@dataclass(frozen=True)
class BuildOptions:
    output: Path
    kernel_modules: Path | None = None
    # zstd from `make bench`'s figures: kernel start -> /init 3.6 s under QEMU TCG against 5.4 s gzip and 8.7 s xz,
    # for 11.6 MiB against 14.8 and 10.6 (a flash-size-bound build passes xz).
    compression: Compression = Compression.ZSTD
    busybox: Path = DEFAULT_BUSYBOX
    extra: tuple[tuple[str, Path], ...] = ()  # (path in the image, source file or directory)
    modules: tuple[str, ...] = DEFAULT_MODULES
    compress_modules: bool = True  # .ko.xz: busybox modprobe decompresses them (initramfs/modules.py)
    strip: bool = True
    keep_stage: Path | None = None  # stage into this directory (kept) instead of a temporary one
    settings: Path | None = None  # a TOML settings file for the daemon, checked and put at PAYLOAD_SETTINGS
    decompressors: tuple[str, ...] = DECOMPRESSORS  # programs staged when the build machine has them
    # "arm64": the payload for aarch64 from Debian arm64 packages unpacked in `sysroot` (initramfs/arm64.py).
    arch: str = "x86_64"
    sysroot: Path | None = None


@dataclass(frozen=True)
class SizePart:
    name: str
    size: int


@dataclass(frozen=True)
class BuildReport:
    output: Path
    compression: Compression
    uncompressed: int
    compressed: int
    files: int
    parts: tuple[SizePart, ...]
    largest: tuple[SizePart, ...]
    modules: ModuleSelection | None
    seconds: float
    settings_warnings: tuple[str, ...] = ()
    decompressors: tuple[str, ...] = ()  # staged, by name
    decompressors_missing: tuple[str, ...] = ()  # asked for, not on the build machine

    def format(self) -> str:
        mib = 1 << 20
        lines = [
            f"{self.output}: {self.compressed / mib:.2f} MiB ({self.compression}), "
            f"{self.uncompressed / mib:.2f} MiB uncompressed, {self.files} files, built in {self.seconds:.1f} s",
            "largest parts (uncompressed):",
        ]
        lines += [f"  {p.size / mib:7.2f} MiB  {p.name}" for p in self.parts[:10]]
        lines.append("largest files:")
        lines += [f"  {p.size / mib:7.2f} MiB  /{p.name}" for p in self.largest[:8]]
        if self.modules is not None:
            lines.append(f"kernel modules: {len(self.modules.files)} for {self.modules.version}")
            if self.modules.missing:
                lines.append(f"  not in this kernel: {', '.join(self.modules.missing)}")
        if self.decompressors or self.decompressors_missing:
            lines.append(f"decompressors: {', '.join(self.decompressors) or 'none'}")
            if self.decompressors_missing:
                missing = ", ".join(self.decompressors_missing)
                lines.append(f"  not on this machine (kernels compressed so will not boot): {missing}")
        if self.settings_warnings:
            lines.append("settings warnings (the menu will show them too):")
            lines += [f"  {w}" for w in self.settings_warnings]
        return "\n".join(lines)


def _multiarch() -> str:
    return str(sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu")


def _data(name: str) -> bytes:
    return resources.files("initramfs").joinpath("data", name).read_bytes()


def _write(root: Path, rel: str, data: bytes, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def _symlink(root: Path, rel: str, target: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_symlink() and not path.exists():
        path.symlink_to(target)


def _strip(paths: Iterable[Path]) -> None:
    """Drops symbols and debug info from staged ELF files (deterministic; the originals are untouched)."""
    targets = [str(p) for p in paths if is_elf(p) and not p.is_symlink()]
    if targets and shutil.which("strip"):
        run(["strip", "--strip-unneeded", "--remove-section=.comment", *targets], capture=True)


def stage_layout(root: Path, multiarch: str | None = None) -> None:
    """The merged-/usr skeleton and the small configuration files."""
    multiarch = multiarch or _multiarch()
    for d in ("usr/bin", "usr/sbin", f"usr/lib/{multiarch}", "etc", "proc", "sys", "dev", "run", "tmp", "root"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "root").chmod(0o700)
    for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")):
        _symlink(root, link, target)
    _write(root, "init", _data("init"), 0o755)
    _write(root, "usr/bin/bootmenu", _data("bootmenu"), 0o755)
    _write(root, "usr/sbin/ldconfig", _data("ldconfig"), 0o755)
    _write(root, "etc/mdev.conf", _data("mdev.conf"))
    _write(root, MARKER, b"bootmenu payload: kexec is allowed here\n")
    _write(root, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    _write(root, "etc/group", b"root:x:0:\ntty:x:5:\ndisk:x:6:\n")
    _write(root, "etc/shadow", b"root::0:0:99999:7:::\n", 0o600)
    _write(root, "etc/profile", b'export PATH=/usr/sbin:/usr/bin\nexport PS1="bootmenu# "\n')
    _write(root, "etc/hostname", b"bootmenu\n")
    _write(root, "etc/ld.so.conf", f"/usr/lib/{multiarch}\n".encode())


def stage_busybox(root: Path, busybox: Path, applets_from: Path | None = None) -> int:
    """Copies a static busybox and links its applets; returns the number of applets. `applets_from`: a busybox
    of the same version that runs here, to list the applets of one for another architecture."""
    if not busybox.is_file():
        raise BuildError(f"{busybox}: no busybox (install busybox-static or pass --busybox)")
    info = DependencyWalker(lib_dirs=[]).info(busybox)
    if info.interpreter or info.needed:
        raise BuildError(f"{busybox}: not statically linked (needs {info.interpreter or ', '.join(info.needed)})")
    _write(root, "usr/bin/busybox", busybox.read_bytes(), 0o755)
    listing = run([str(applets_from or busybox), "--list-full"], capture=True).stdout.decode().split()
    count = 0
    for applet in listing:
        name = applet.rsplit("/", 1)[-1]
        sub = "usr/sbin" if "sbin/" in applet else "usr/bin"
        if name in ("busybox", "ldconfig") or (root / sub / name).exists() or (root / sub / name).is_symlink():
            continue
        _symlink(root, f"{sub}/{name}", "../bin/busybox" if sub == "usr/sbin" else "busybox")
        count += 1
    return count


def stage_decompressors(root: Path, names: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Copies each program found on PATH to /usr/bin; returns the build machine's paths (for their libraries) and
    the names not found."""
    found, missing = [], []
    for name in names:
        where = shutil.which(name)
        if where is None:
            missing.append(name)
            continue
        path = Path(where).resolve()
        dest = root / "usr/bin" / name
        if dest.is_symlink():  # a busybox applet of that name: the real program decodes more
            dest.unlink()
        _write(root, f"usr/bin/{name}", path.read_bytes(), 0o755)
        found.append(path)
    return found, missing


def stage_libraries(
    root: Path,
    elves: Sequence[Path],
    lib_dirs: Sequence[str] | None = None,
    *,
    multiarch: str | None = None,
    sysroot: Path | None = None,
) -> list[Path]:
    """Every shared library `elves` need (plus dlopen'ed ones), copied to /usr/lib/<multiarch>/<soname>; with
    `sysroot` (another architecture's tree) the libraries and the program interpreter come from there."""
    walker = DependencyWalker(lib_dirs, sysroot=sysroot)
    roots = list(elves)
    dlopened: list[Library] = []
    for name in DLOPEN_LIBRARIES:
        for d in walker.lib_dirs:
            if (Path(d) / name).is_file():
                roots.append(Path(d) / name)
                dlopened.append(Library(name, Path(d) / name, (Path(d) / name).resolve(), Path(d) / name))
                break
    libdir = f"usr/lib/{multiarch or _multiarch()}"
    staged: list[Path] = []
    for lib in [*dlopened, *walker.walk(roots).values()]:
        dest = root / libdir / lib.path.name
        if not dest.exists():
            shutil.copyfile(lib.real, dest)
            dest.chmod(0o755)
            staged.append(dest)
        # The program interpreter is opened by its absolute PT_INTERP path (/lib64/ld-linux-x86-64.so.2,
        # /lib/ld-linux-aarch64.so.1).
        if lib.path.parent.as_posix() in ("/lib64", "/usr/lib64", "/lib"):
            _symlink(root, lib.path.as_posix().lstrip("/"), f"/{libdir}/{lib.path.name}")
    for name, package in DLOPEN_LIBRARIES.items():
        if not (root / libdir / name).exists():
            raise BuildError(f"{name} not found on the build machine (Debian package {package})")
    return staged


def stage_udev(root: Path) -> Path | None:
    """systemd-udevd and its rules, when the build machine has them; returns the build machine's udevd."""
    udevd = next((p for p in UDEVD_CANDIDATES if p.is_file()), None)
    if udevd is None:
        return None
    _write(root, "usr/lib/systemd/systemd-udevd", udevd.read_bytes(), 0o755)
    for rules in UDEV_RULES_DIRS:
        if rules.is_dir():
            for f in sorted(rules.glob("*.rules")):
                _write(root, f"usr/lib/udev/rules.d/{f.name}", f.read_bytes())
            break
    return udevd


def build_ld_cache(root: Path) -> None:
    """/etc/ld.so.cache for the staged tree, and its `ldconfig -p` listing for the /sbin/ldconfig stub."""
    run(["ldconfig", "-X", "-r", str(root)], capture=True)
    listing = run(["ldconfig", "-r", str(root), "-p"], capture=True).stdout
    _write(root, "etc/ld.so.cache.txt", listing)
    shutil.rmtree(root / "var/cache/ldconfig", ignore_errors=True)
    with contextlib.suppress(OSError):
        (root / "var/cache").rmdir()
        (root / "var").rmdir()


def stage_extra(root: Path, extra: Iterable[tuple[str, Path]]) -> None:
    for dest, src in extra:
        rel = dest.lstrip("/")
        if src.is_dir():
            shutil.copytree(src, root / rel, symlinks=True, dirs_exist_ok=True)
        elif src.is_file():
            _write(root, rel, src.read_bytes(), stat.S_IMODE(src.stat().st_mode))
        else:
            raise BuildError(f"--extra {dest}={src}: {src} does not exist")


def stage_settings(root: Path, path: Path) -> tuple[str, ...]:
    """Puts the settings file at PAYLOAD_SETTINGS; a file that cannot be read or parsed is an error here (at boot it
    would only be a warning), unknown keys and bad values are returned as warnings."""
    import tomllib

    from discovery.settings import MAX_FILE_BYTES, PAYLOAD_SETTINGS, Settings

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BuildError(f"--settings {path}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise BuildError(f"--settings {path}: larger than {MAX_FILE_BYTES // 1024} KiB, which the daemon refuses")
    try:
        tomllib.loads(data.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BuildError(f"--settings {path}: {exc}") from None
    _write(root, PAYLOAD_SETTINGS.relative_to("/").as_posix(), data)
    return Settings().with_file(path).warnings


def stage(options: BuildOptions, root: Path) -> ModuleSelection | None:
    """Builds the whole payload tree under `root`."""
    stage_layout(root)
    stage_busybox(root, options.busybox)
    runtime = python_runtime.collect()
    runtime.stage(root)
    staged_so = [root / f.dest for f in runtime.files if f.dest.endswith(".so")]
    udevd = stage_udev(root)
    tools, _ = stage_decompressors(root, options.decompressors)
    libs = stage_libraries(root, [*runtime.extension_modules, *([udevd] if udevd else []), *tools])
    if options.strip:
        staged_tools = [p for n in options.decompressors if (p := root / "usr/bin" / n).is_file()]
        _strip([root / "usr/bin" / f"python{runtime.version}", *staged_so, *libs, *staged_tools])
    selection = None
    if options.kernel_modules is not None:
        tree = ModuleTree.load(options.kernel_modules)
        selection = stage_modules(tree, options.modules, root, compress=options.compress_modules)
    stage_extra(root, options.extra)
    build_ld_cache(root)
    return selection


def tree_entries(root: Path) -> Iterator[CpioEntry]:
    """Archive entries for everything under `root` (files, directories, symlinks), plus /dev/console."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            perm = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                yield CpioEntry.symlink(rel, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                yield CpioEntry.directory(rel, perm)
            elif stat.S_ISREG(st.st_mode):
                yield CpioEntry.file(rel, source=path, perm=perm)
    # The kernel opens /dev/console for init's stdio before /init can mount devtmpfs.
    yield CpioEntry.char_device("dev/console", 5, 1, 0o600)


def _part_of(rel: str) -> str:
    parts = rel.split("/")
    if rel.startswith("usr/lib/python3"):
        if len(parts) >= 4 and parts[3] == "lib-dynload":
            return "python: lib-dynload"
        if len(parts) >= 5:
            return f"python: {parts[3]}"
        return "python: stdlib modules"
    if rel.startswith("usr/lib/modules/"):
        return "kernel modules" if len(parts) < 7 else f"kernel modules: {parts[5]}/{parts[6]}"
    if rel.startswith("usr/bin/python"):
        return "python: interpreter"
    if rel.startswith("usr/lib/") and ".so" in rel:
        return "shared libraries"
    if rel == "usr/bin/busybox":
        return "busybox"
    if rel.startswith("usr/bin/") and parts[-1] in DECOMPRESSORS:
        return "decompressors"
    return "other"


def size_parts(entries: Iterable[CpioEntry]) -> tuple[list[SizePart], list[SizePart]]:
    parts: Counter[str] = Counter()
    files: list[SizePart] = []
    for e in entries:
        if stat.S_ISREG(e.mode):
            parts[_part_of(e.path)] += e.size
            files.append(SizePart(e.path, e.size))
    files.sort(key=lambda p: (-p.size, p.name))
    return [SizePart(n, s) for n, s in parts.most_common()], files


def build(options: BuildOptions) -> BuildReport:
    """Stages, archives and compresses the payload; writes `options.output`."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bootmenu-initramfs-") as tmp:
        root = options.keep_stage or Path(tmp) / "root"
        if root.exists() and any(root.iterdir()):
            shutil.rmtree(root)
        root.mkdir(parents=True, exist_ok=True)
        # First: a bad file fails the build at once, not after staging.
        warnings = stage_settings(root, options.settings) if options.settings is not None else ()
        if options.arch == "x86_64":
            selection = stage(options, root)
        else:
            from initramfs import arm64

            selection = arm64.stage(options, root)
        entries = list(tree_entries(root))
        buf = io.BytesIO()
        write_cpio(entries, buf)
        raw = buf.getvalue()
        data = options.compression.compress(raw)
        options.output.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = options.output.with_name(options.output.name + ".tmp")
        tmp_out.write_bytes(data)
        tmp_out.replace(options.output)
        parts, largest = size_parts(entries)
    return BuildReport(
        output=options.output,
        compression=options.compression,
        uncompressed=len(raw),
        compressed=len(data),
        files=sum(1 for e in entries if stat.S_ISREG(e.mode)),
        parts=tuple(parts),
        largest=tuple(largest[:20]),
        modules=selection,
        seconds=time.monotonic() - started,
        settings_warnings=warnings,
        decompressors=tuple(n for n in options.decompressors if shutil.which(n)),
        decompressors_missing=tuple(n for n in options.decompressors if not shutil.which(n)),
    )
