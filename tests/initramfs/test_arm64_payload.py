"""The arm64 payload built on this x86_64 machine (initramfs/arm64.py), checked without running it: binutils'
aarch64 readelf/objdump are the independent readers of the cross-built kexec_core._kexec, and every ELF file of the
staged tree must be aarch64 with its libraries and program interpreter inside the tree. The QEMU test
(tests/qemu/test_arm64_e2e.py) runs the same build. Needs `make arm64-payload` (the Debian arm64 sysroot) and
Debian's gcc-aarch64-linux-gnu.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from bootmenu.cli import main
from initramfs import arm64
from initramfs.builder import BuildError, BuildOptions, build
from initramfs.cpio import Compression
from initramfs.elf import ElfInfo, is_elf
from tests.shared import file_lock, session_dir

REPO = Path(__file__).resolve().parents[2]
SYSROOT = REPO / arm64.DEFAULT_SYSROOT
LIBDIR = f"usr/lib/{arm64.MULTIARCH}"


@pytest.fixture(scope="module")
def sysroot() -> Path:
    if not (SYSROOT / ".complete").exists():
        pytest.fail(f"{SYSROOT}: no arm64 sysroot: run `make arm64-payload`")
    if shutil.which(arm64.CROSS_CC) is None:
        pytest.fail(f"{arm64.CROSS_CC} missing: `make setup` installs gcc-aarch64-linux-gnu")
    return SYSROOT


@pytest.fixture(scope="module")
def stage(sysroot: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The staged arm64 tree (kernel modules left out: test_modules covers them), built once per run."""
    out = session_dir(tmp_path_factory.getbasetemp()) / "arm64-payload"
    with file_lock(out.with_name("arm64-payload.lock")):
        if not (out / "done").exists():
            build(
                BuildOptions(
                    output=out / "payload.cpio",
                    compression=Compression.NONE,
                    keep_stage=out / "stage",
                    arch="arm64",
                    sysroot=sysroot,
                )
            )
            (out / "done").touch()
    return out / "stage"


def _dynamic_symbols(path: Path) -> set[str]:
    with path.open("rb") as f:
        section = ELFFile(f).get_section_by_name(".dynsym")
        assert isinstance(section, SymbolTableSection)
        return {s.name for s in section.iter_symbols() if s.name and s["st_shndx"] != "SHN_UNDEF"}


def test_the_cross_built_kexec_module_is_aarch64_and_needs_only_what_the_sysroot_exports(
    sysroot: Path, tmp_path: Path
) -> None:
    module = arm64.cross_compile_kexec_module(sysroot, tmp_path)
    header = subprocess.run(["aarch64-linux-gnu-readelf", "-hd", module], capture_output=True, text=True, check=True)
    assert re.search(r"Machine:\s+AArch64", header.stdout)
    assert re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", header.stdout) == ["libc.so.6"]
    table = subprocess.run(["aarch64-linux-gnu-objdump", "-T", module], capture_output=True, text=True, check=True)
    defined = {line.split()[-1] for line in table.stdout.splitlines() if " .text" in line}
    undefined = {line.split()[-1] for line in table.stdout.splitlines() if "*UND*" in line}
    assert "PyInit__kexec" in defined
    assert {"syscall", "mount", "umount2", "sync"} <= undefined
    # The loader resolves every one from the interpreter (limited API) or libc, or the import fails in the payload.
    exported = _dynamic_symbols(sysroot / "usr/bin/python3.11") | _dynamic_symbols(
        sysroot / "lib" / arm64.MULTIARCH / "libc.so.6"
    )
    weak = {"__cxa_finalize", "_ITM_deregisterTMCloneTable", "_ITM_registerTMCloneTable", "__gmon_start__"}
    assert undefined - exported - weak == set()


def test_every_elf_file_of_the_payload_is_aarch64_with_its_libraries_in_the_tree(stage: Path) -> None:
    elves = [p for p in stage.rglob("*") if p.is_file() and not p.is_symlink() and is_elf(p)]
    assert len(elves) > 10
    libs = {p.name for p in (stage / LIBDIR).iterdir()}
    for path in elves:
        info = ElfInfo.read(path)
        assert info.machine == "EM_AARCH64", path
        assert set(info.needed) <= libs, f"{path}: needs {set(info.needed) - libs}"
        if info.interpreter is not None:
            assert info.interpreter == "/lib/ld-linux-aarch64.so.1"
    # /lib -> usr/lib, and the loader's PT_INTERP path leads to the staged loader.
    loader = stage / "usr/lib/ld-linux-aarch64.so.1"
    assert loader.is_symlink()
    assert (stage / LIBDIR / Path(str(loader.readlink())).name).is_file()
    assert ElfInfo.read(stage / "usr/bin/busybox").interpreter is None


def test_the_python_runtime_comes_from_the_sysroot(stage: Path) -> None:
    lib = stage / "usr/lib/python3.11"
    assert (lib / "kexec_core/_kexec.abi3.so").is_file()
    assert (lib / "_cffi_backend.cpython-311-aarch64-linux-gnu.so").is_file()
    # (x86_64 in other names: kexec_core/x86_64.py, the demo samples' kernel names.)
    assert not [p for p in lib.rglob("*.so") if "x86_64" in p.name]
    # Modules Debian links into the interpreter have no .so; the rest are the sysroot's aarch64 ones.
    builtin = arm64.exported_init_functions(stage / "usr/bin/python3.11")
    assert {"zlib", "_struct", "select", "_socket", "math"} <= builtin
    dynload = {p.name.split(".")[0] for p in (lib / "lib-dynload").iterdir()}
    assert {"_ctypes", "_lzma", "termios", "_asyncio"} <= dynload
    assert not dynload & builtin
    # Bytecode only.
    assert not list(lib.rglob("*.py"))
    assert (lib / "os.pyc").is_file()


def test_find_library_finds_libudev_through_the_ldconfig_stub_listing(stage: Path) -> None:
    listing = (stage / "etc/ld.so.cache.txt").read_bytes()
    # ctypes.util._findSoname_ldconfig's pattern for an aarch64 machine (its abi_type is plain "libc6").
    match = re.search(rb"\s+(libudev\.[^\s]+)\s+\(libc6", listing)
    assert match is not None
    assert match.group(1) == b"libudev.so.1"
    assert b"=> /usr/lib/aarch64-linux-gnu/libudev.so.1" in listing
    assert (stage / LIBDIR / "libudev.so.1").is_file()
    assert not (stage / "etc/ld.so.cache").exists()


def test_a_sysroot_without_the_python_headers_is_refused_with_the_package_named(sysroot: Path, tmp_path: Path) -> None:
    fake = tmp_path / "sysroot"
    (fake / "usr/bin").mkdir(parents=True)
    shutil.copyfile(sysroot / "usr/bin/python3.11", fake / "usr/bin/python3.11")
    (fake / "bin").mkdir()
    shutil.copyfile(sysroot / "bin/busybox", fake / "bin/busybox")
    with pytest.raises(
        BuildError, match=r"usr/include/python3\.11/Python\.h: missing \(Debian package libpython3\.11-dev"
    ):
        arm64.check_sysroot(fake, "3.11")
    with pytest.raises(BuildError, match=r"python3\.12: missing .*the sysroot has python3\.11"):
        arm64.check_sysroot(fake, "3.12")


def test_cli_names_a_missing_sysroot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    code = main(["initramfs", "build", "--arch", "arm64", "--sysroot", str(missing), "-o", str(tmp_path / "p.img")])
    assert code == 1
    err = capsys.readouterr().err
    assert f"{missing}: no such directory" in err
    assert "make arm64-payload" in err


def test_qemu_arm64_names_a_missing_kernel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "Image"
    assert main(["qemu", "--arch", "arm64", "--kernel", str(missing)]) == 2
    assert f"{missing}: no such file or directory" in capsys.readouterr().err
