"""The arm64 payload (issue 13): the same tree as the x86_64 one (builder.py), built on an x86_64 machine for aarch64.

Inputs, none of them installed on the build machine:
  - a sysroot of Debian arm64 packages unpacked with `dpkg -x` (tools/fetch-debs-arm64, the Makefile's ARM64_PAYLOAD
    list): busybox-static, python3.11-minimal and libpython3.11-stdlib (the interpreter, its stdlib and extension
    modules), libudev1 (pyudev's libudev, dlopen'ed), python3-cffi-backend (_cffi_backend), libgcc-s1, libsodium23,
    libpython3.11-dev (Python.h and the aarch64 pyconfig.h), and the kernel package for its modules;
  - kexec_core's cffi module, cross-compiled here: kexec_core/_build.py's C source (cffi `emit_c_code`, the same
    source the host build compiles) through aarch64-linux-gnu-gcc (Debian's gcc-aarch64-linux-gnu, with
    libc6-dev-arm64-cross and linux-libc-dev-arm64-cross for the libc and <linux/kexec.h> headers);
  - the pure-Python parts from the build machine: our packages and urwid, pyudev, pyelftools, wcwidth (their only
    compiled parts, wcwidth's optional accelerator and cffi's _cffi_backend, are excluded or replaced by Debian's).

Which stdlib modules go in is computed by python_runtime.collect() on the build machine's interpreter (same
major.minor, so the same bytecode magic); each file then comes from the sysroot: its .py source, or its
lib-dynload module renamed for aarch64. A module that Debian builds into the interpreter has no .so there: the
interpreter's dynamic symbol table exports its PyInit_ function (python3.11 is linked with --export-dynamic).

No /etc/ld.so.cache: the host's ldconfig cannot tag aarch64 libraries (it would mark them for no architecture, and
the aarch64 loader skips such entries), and Debian's loader searches /lib/aarch64-linux-gnu and
/usr/lib/aarch64-linux-gnu by default. /etc/ld.so.cache.txt (what the /sbin/ldconfig stub prints for
ctypes.util.find_library) is written from the staged libraries in `ldconfig -p`'s format.

`--busybox` and `--no-strip` do not apply: busybox is the sysroot's (its applet list comes from the build machine's
busybox-static of the same Debian release, which can run here); Debian's files are stripped already and the
cross-built module is linked with `-s`. No systemd-udevd either: the kernel's uevents and mdev are all there is.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import shutil
import sys
import sysconfig
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from initramfs import builder, python_runtime
from initramfs.modules import ModuleSelection, ModuleTree, stage_modules
from initramfs.python_runtime import PythonRuntime, StagedFile
from initramfs.run import run

if TYPE_CHECKING:
    from initramfs.builder import BuildOptions
    from initramfs.qemu import VmConfig

MULTIARCH = "aarch64-linux-gnu"
CROSS_CC = "aarch64-linux-gnu-gcc"
DEFAULT_SYSROOT = Path(".cache/arm64-payload/root")
CFFI_BACKEND = "usr/lib/python3/dist-packages/_cffi_backend.cpython-311-aarch64-linux-gnu.so"
KEXEC_MODULE = "kexec_core/_kexec.abi3.so"
# Besides builder's DEFAULT_MODULES (whose x86-only names the size report lists as not in this kernel): the
# memory-mapped virtio transport of QEMU's virt board and of arm64 cloud machines (`-device virtio-blk-device`).
EXTRA_MODULES = ("virtio_mmio",)
# The packages behind each input, for the messages (tools/fetch-debs-arm64 fetches them; `make arm64-payload`).
_INPUTS = {
    "bin/busybox": "busybox-static",
    "usr/include/python3.11/Python.h": "libpython3.11-dev",
    CFFI_BACKEND: "python3-cffi-backend",
}


def _fail(message: str) -> builder.BuildError:
    return builder.BuildError(f"arm64 payload: {message}")


def lib_dirs(sysroot: Path) -> list[str]:
    """Where the aarch64 loader looks, inside the sysroot (Debian's packages are not /usr-merged)."""
    return [str(sysroot / "lib" / MULTIARCH), str(sysroot / "usr/lib" / MULTIARCH)]


def check_sysroot(sysroot: Path, version: str) -> Path:
    """The sysroot's interpreter, after checking the tree has every input; the message names the missing one."""
    if not sysroot.is_dir():
        raise _fail(f"{sysroot}: no such directory (`make arm64-payload` unpacks the Debian arm64 packages there)")
    python = sysroot / "usr/bin" / f"python{version}"
    if not python.is_file():
        found = sorted(p.name for p in (sysroot / "usr/bin").glob("python3.*"))
        raise _fail(
            f"{python}: missing (python{version}-minimal:arm64; the build machine's Python is {version}, the "
            f"sysroot has {', '.join(found) or 'none'}: the bytecode is compiled here, so they must match)"
        )
    for rel, package in _INPUTS.items():
        if not (sysroot / rel).exists():
            raise _fail(f"{sysroot / rel}: missing (Debian package {package}:arm64)")
    return python


def exported_init_functions(elf: Path) -> frozenset[str]:
    """The extension modules built into an interpreter: the names of the PyInit_* symbols it exports."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with elf.open("rb") as f:
        section = ELFFile(f).get_section_by_name(".dynsym")
        if not isinstance(section, SymbolTableSection):
            return frozenset()
        return frozenset(s.name.removeprefix("PyInit_") for s in section.iter_symbols() if s.name.startswith("PyInit_"))


def cross_compile_kexec_module(sysroot: Path, out_dir: Path) -> Path:
    """kexec_core._kexec for aarch64: the C source cffi generates from kexec_core/_build.py, compiled with the cross
    compiler against the sysroot's Python headers (the limited API: one abi3 module, as on the host)."""
    if shutil.which(CROSS_CC) is None:
        raise _fail(f"{CROSS_CC} not found (Debian packages gcc-aarch64-linux-gnu libc6-dev-arm64-cross)")
    spec = importlib.util.spec_from_file_location(
        "_bootmenu_kexec_build", Path(python_runtime.__file__).resolve().parents[1] / "kexec_core" / "_build.py"
    )
    if spec is None or spec.loader is None:
        raise _fail("kexec_core/_build.py not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = out_dir / "_kexec.c"
    with contextlib.redirect_stdout(io.StringIO()):  # cffi prints "generating FILE"
        module.ffibuilder.emit_c_code(str(source))
    output = out_dir / "_kexec.abi3.so"
    include = sysroot / "usr/include"
    run(
        [
            CROSS_CC,
            "-shared",
            "-fPIC",
            "-O2",
            "-s",
            f"-I{include / 'python3.11'}",
            f"-I{include}",
            source,
            "-o",
            output,
        ],
        capture=True,
    )
    return output


def foreign_runtime(host: PythonRuntime, sysroot: Path, kexec_module: Path) -> PythonRuntime:
    """The host's runtime selection with every file taken from the sysroot (see the module docstring)."""
    interpreter = sysroot / "usr/bin" / f"python{host.version}"
    builtins = exported_init_functions(interpreter)
    host_multiarch = str(sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu")
    stdlib = sysroot / host.libdir
    files: list[StagedFile] = []
    unknown: list[str] = []
    for f in host.files:
        rel = f.dest.removeprefix(host.libdir + "/")
        if rel == KEXEC_MODULE:
            files.append(replace(f, source=kexec_module))
        elif rel.startswith("_cffi_backend."):
            files.append(replace(f, dest=f"{host.libdir}/{Path(CFFI_BACKEND).name}", source=sysroot / CFFI_BACKEND))
        elif rel.startswith("lib-dynload/"):
            name = Path(rel).name.split(".", 1)[0]
            target = f"lib-dynload/{name}.cpython-{host.version.replace('.', '')}-{MULTIARCH}.so"
            if (stdlib / target).is_file():
                files.append(replace(f, dest=f"{host.libdir}/{target}", source=stdlib / target))
            elif name not in builtins:
                unknown.append(f"{rel} (neither {stdlib / target} nor built into {interpreter})")
        elif f.source.suffix == ".so":
            unknown.append(f"{rel} (a compiled module with no aarch64 build here)")
        elif f.compile and f.source.is_relative_to(Path(sysconfig.get_paths()["stdlib"]).resolve()):
            # The sysroot's stdlib source when it has the file (same major.minor), named for aarch64.
            arm = stdlib / rel.removesuffix("c").replace(host_multiarch, MULTIARCH)
            files.append(
                replace(f, dest=f"{host.libdir}/{arm.relative_to(stdlib)}c", source=arm) if arm.is_file() else f
            )
        else:
            files.append(f)
    if unknown:
        raise _fail("no aarch64 build of: " + "; ".join(unknown))
    return PythonRuntime(interpreter, host.version, sorted(files, key=lambda f: f.dest))


def write_library_listing(root: Path) -> None:
    """/etc/ld.so.cache.txt in `ldconfig -p`'s format for the staged aarch64 libraries."""
    libdir = root / "usr/lib" / MULTIARCH
    names = sorted(p.name for p in libdir.iterdir() if ".so" in p.name)
    lines = [f"{len(names)} libs found in cache `/etc/ld.so.cache'"]
    lines += [f"\t{n} (libc6,AArch64) => /usr/lib/{MULTIARCH}/{n}" for n in names]
    builder._write(root, "etc/ld.so.cache.txt", ("\n".join(lines) + "\n").encode())


def stage(options: BuildOptions, root: Path) -> ModuleSelection | None:
    """Builds the arm64 payload tree under `root` from options.sysroot."""
    sysroot = (options.sysroot or DEFAULT_SYSROOT).resolve()
    check_sysroot(sysroot, f"{sys.version_info.major}.{sys.version_info.minor}")
    host = python_runtime.collect()
    if not builder.DEFAULT_BUSYBOX.is_file():
        raise _fail(f"{builder.DEFAULT_BUSYBOX}: missing (busybox-static: it lists the applets to link)")
    builder.stage_layout(root, MULTIARCH)
    builder.stage_busybox(root, sysroot / "bin/busybox", applets_from=builder.DEFAULT_BUSYBOX)
    with tempfile.TemporaryDirectory(prefix="bootmenu-arm64-cffi-") as tmp:
        runtime = foreign_runtime(host, sysroot, cross_compile_kexec_module(sysroot, Path(tmp)))
        runtime.stage(root)
        builder.stage_libraries(
            root, runtime.extension_modules, lib_dirs(sysroot), multiarch=MULTIARCH, sysroot=sysroot
        )
    selection = None
    if options.kernel_modules is not None:
        names = (*options.modules, *EXTRA_MODULES)
        tree = ModuleTree.load(options.kernel_modules)
        selection = stage_modules(tree, names, root, compress=options.compress_modules)
    builder.stage_extra(root, options.extra)
    write_library_listing(root)
    return selection


EXTLINUX_TITLE = "arm64 Linux with FDT"


def extlinux_disk(
    work: Path, config: VmConfig, *, append: str, title: str = EXTLINUX_TITLE, sysroot: Path = DEFAULT_SYSROOT
) -> Path:
    """A one-partition vfat disk whose /boot/extlinux/extlinux.conf boots config.kernel with an `FDT`: the
    devicetree QEMU generates for `config`'s machine (`-machine dumpdtb=`, so its /memory node matches the VM's) and
    the second-stage initrd, which prints the command line it got. For `bootmenu qemu --arch arm64` and the tests."""
    from initramfs import disks, guests

    dtb = work / "virt.dtb"
    run([*config.argv(), "-machine", f"dumpdtb={dtb}"], capture=True)
    tree = work / "arm64-disk"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "boot" / "extlinux").mkdir(parents=True)
    conf = f"MENU TITLE arm64\nDEFAULT arm64\nLABEL arm64\n  MENU LABEL {title}\n  KERNEL /boot/Image\n"
    conf += f"  INITRD /boot/second.img\n  FDT /boot/virt.dtb\n  APPEND {append}\n"
    (tree / "boot" / "extlinux" / "extlinux.conf").write_text(conf)
    (tree / disks.FS_FILE).write_text("label=ARM64\nfstype=vfat\n")
    second = guests.second_stage_initrd(work / "second-arm64.img", busybox=sysroot / "bin" / "busybox")
    files = {"boot/Image": config.kernel, "boot/second.img": second, "boot/virt.dtb": dtb}
    return disks.disk_from_directory(tree, work / "arm64.img", files)
