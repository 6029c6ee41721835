"""The ELF dependency walker on real system binaries: it must find what the dynamic loader would load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from initramfs.elf import DependencyWalker, ElfDependencyError, ElfInfo, system_lib_dirs

PYTHON = Path(sys.executable).resolve()
LIBUDEV = next(
    (p for p in (Path("/lib/x86_64-linux-gnu/libudev.so.1"), Path("/usr/lib/libudev.so.1")) if p.exists()), None
)


def ldd(path: Path) -> dict[str, Path]:
    """What glibc's loader itself resolves (ldd runs it in trace mode), name -> path."""
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=True).stdout
    found: dict[str, Path] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "=>":
            found[parts[0]] = Path(parts[2]).resolve()
    return found


def test_python_needs_what_ldd_says() -> None:
    libs = DependencyWalker().walk([PYTHON])
    found = {lib.name: lib.real for lib in libs.values()}
    expected = ldd(PYTHON)
    assert {n: found.get(n) for n in expected} == expected


def test_python_interpreter_is_the_loader() -> None:
    info = ElfInfo.read(PYTHON)
    assert info.interpreter is not None
    libs = DependencyWalker().walk([PYTHON])
    assert Path(info.interpreter) in libs


@pytest.mark.skipif(LIBUDEV is None, reason="libudev1 is not installed")
def test_libudev_closure_matches_ldd() -> None:
    assert LIBUDEV is not None
    libs = DependencyWalker().walk([LIBUDEV])
    assert {lib.name: lib.real for lib in libs.values() if lib.name in ldd(LIBUDEV)} == ldd(LIBUDEV)


def test_runpath_with_origin_is_followed(tmp_path: Path) -> None:
    # A program whose library sits in $ORIGIN/../private, found only through its RUNPATH.
    (tmp_path / "private").mkdir()
    (tmp_path / "bin").mkdir()
    lib_c = tmp_path / "priv.c"
    lib_c.write_text("int priv(void) { return 42; }\n")
    main_c = tmp_path / "main.c"
    main_c.write_text("int priv(void);\nint main(void) { return priv() == 42 ? 0 : 1; }\n")
    lib = tmp_path / "private" / "libpriv.so.1"
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libpriv.so.1", "-o", str(lib), str(lib_c)], check=True)
    prog = tmp_path / "bin" / "prog"
    subprocess.run(
        ["gcc", "-o", str(prog), str(main_c), str(lib), "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../private"],
        check=True,
    )
    assert subprocess.run([str(prog)], check=False).returncode == 0  # the loader agrees the RUNPATH works
    libs = DependencyWalker().walk([prog])
    assert libs[tmp_path / "bin/../private/libpriv.so.1"].real == lib.resolve()


def test_missing_library_names_the_needer(tmp_path: Path) -> None:
    lib_c = tmp_path / "a.c"
    lib_c.write_text("int a(void) { return 1; }\n")
    missing = tmp_path / "libmissing.so.7"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-Wl,-soname,libmissing.so.7", "-o", str(missing), str(lib_c)], check=True
    )
    user = tmp_path / "libuser.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-Wl,--no-as-needed", "-o", str(user), str(lib_c), str(missing)], check=True
    )
    missing.unlink()
    with pytest.raises(ElfDependencyError, match=r"libuser\.so: needs libmissing\.so\.7"):
        DependencyWalker().walk([user])


def test_not_an_elf_file_is_a_clear_error(tmp_path: Path) -> None:
    text = tmp_path / "script"
    text.write_text("#!/bin/sh\n")
    with pytest.raises(ElfDependencyError, match="not a valid ELF"):
        ElfInfo.read(text)


def test_system_lib_dirs_follow_ld_so_conf_includes(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text("/opt/b/lib\n")
    (tmp_path / "conf.d" / "a.conf").write_text("# comment\n/opt/a/lib\n")
    conf = tmp_path / "ld.so.conf"
    conf.write_text(f"include {tmp_path}/conf.d/*.conf\n/opt/top\n")
    dirs = system_lib_dirs(conf)
    assert dirs[:3] == ["/opt/a/lib", "/opt/b/lib", "/opt/top"]
    assert "/usr/lib/x86_64-linux-gnu" in dirs
