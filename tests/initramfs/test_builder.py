"""The whole payload: what the archive holds, that its Python imports everything in a chroot, reproducibility."""

from __future__ import annotations

import contextlib
import json
import lzma
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.protocol import Hello
from initramfs.builder import BuildError, BuildOptions, BuildReport, build
from initramfs.cpio import Compression
from initramfs.elf import DependencyWalker
from initramfs.python_runtime import compile_pyc

pytestmark = pytest.mark.slow
PYVER = f"{sys.version_info.major}.{sys.version_info.minor}"


def listing(payload: BuildReport) -> dict[str, str]:
    """path -> the mode column of `cpio -tv`, read by GNU cpio from the decompressed archive."""
    raw = lzma.decompress(payload.output.read_bytes())
    out = subprocess.run(["cpio", "-t", "-v", "--quiet"], input=raw, capture_output=True, check=True).stdout.decode()
    entries: dict[str, str] = {}
    for line in out.splitlines():
        fields = line.split()
        name = fields[fields.index("->") - 1] if "->" in fields else fields[-1]
        entries[name] = fields[0]
    return entries


def test_archive_holds_the_runtime_the_tools_and_the_modules(payload: BuildReport, kernel_version: str) -> None:
    entries = listing(payload)
    for path in (
        "init",
        f"usr/bin/python{PYVER}",
        "usr/bin/busybox",
        "usr/bin/bootmenu",
        "usr/lib/x86_64-linux-gnu/libc.so.6",
        f"usr/lib/x86_64-linux-gnu/libpython{PYVER}.so.1.0",
        "usr/lib/x86_64-linux-gnu/libudev.so.1",
        "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "etc/ld.so.cache",
        "etc/bootmenu-payload",
        "etc/mdev.conf",
        f"usr/lib/python{PYVER}/bootmenu/cli.pyc",
        f"usr/lib/python{PYVER}/urwid/__init__.pyc",
        f"usr/lib/python{PYVER}/encodings/utf_8.pyc",
        f"usr/lib/modules/{kernel_version}/kernel/drivers/block/virtio_blk.ko.xz",
        f"usr/lib/modules/{kernel_version}/modules.dep",
        f"usr/lib/modules/{kernel_version}/modules.alias",
    ):
        assert path in entries, path
    assert entries["init"].startswith("-rwx")
    assert entries["dev/console"].startswith("c")
    for link in ("bin", "lib", "usr/bin/sh", "usr/sbin/modprobe", "usr/bin/python3", "lib64/ld-linux-x86-64.so.2"):
        assert entries[link].startswith("l"), link
    # Bytecode only: no source, no __pycache__, so start-up never compiles.
    assert not [p for p in entries if p.endswith(".py") or "__pycache__" in p]


def test_bytecode_is_unchecked_hash_and_matches_the_interpreter(payload_stage: Path) -> None:
    import importlib.util

    pycs = list((payload_stage / f"usr/lib/python{PYVER}").rglob("*.pyc"))
    assert len(pycs) > 300
    for pyc in pycs:
        head = pyc.read_bytes()[:8]
        assert head[:4] == importlib.util.MAGIC_NUMBER, pyc
        assert int.from_bytes(head[4:8], "little") == 0b01, pyc  # hash-based, source not checked


def test_ldconfig_listing_names_libudev_for_ctypes(payload_stage: Path) -> None:
    text = (payload_stage / "etc/ld.so.cache.txt").read_text()
    assert "libudev.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libudev.so.1" in text


@contextlib.contextmanager
def dev_bound(root: Path) -> Iterator[None]:
    subprocess.run(["mount", "--bind", "/dev", str(root / "dev")], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(root / "dev")], check=True)


def payload_python(stage: Path, code: str) -> subprocess.CompletedProcess[str]:
    """`code` run by the payload's own interpreter in a chroot of the staged tree, with the flags /init gives it."""
    with dev_bound(stage):
        return subprocess.run(
            ["chroot", str(stage), "/usr/bin/python3", "-I", "-S", "-X", "utf8", "-c", code],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/usr/sbin"},
            check=False,
        )


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_python_in_a_chroot_of_the_payload_imports_everything(payload_stage: Path) -> None:
    code = (
        "import bootmenu.cli, discovery.protocol, kexec_core, kexec_core._kexec, urwid, pyudev, elftools\n"
        "import _cffi_backend\n"
        "import ctypes.util, importlib.util, sys\n"
        # Build-time only (python_runtime.BUILD_TIME_DISTRIBUTIONS) and left out to save space (EXCLUDED_PREFIXES).
        "assert not [m for m in ('cffi', 'pycparser', 'decimal', 'xml', 'pyexpat') if importlib.util.find_spec(m)]\n"
        "print(ctypes.util.find_library('udev'))\n"
        "pyudev.Context()\n"
        "print(sys.prefix, sys.flags.isolated, sys.flags.no_site)\n"
    )
    proc = payload_python(payload_stage, code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["libudev.so.1", "/usr", "1", "1"]
    # The launcher the init scripts use.
    helped = subprocess.run(
        ["chroot", str(payload_stage), "/usr/bin/bootmenu", "initramfs", "--help"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/usr/sbin"},
        check=False,
    )
    assert helped.returncode == 0, helped.stderr
    assert "build" in helped.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_the_payloads_interpreter_takes_its_stored_dataclass_code(payload_stage: Path) -> None:
    # bootmenu/dataclass_code.py: the table the builder wrote is this interpreter's, and the classes work with it.
    code = (
        "from bootmenu import dataclass_code\n"
        "print(dataclass_code.install())\n"
        "from discovery.protocol import Hello\n"
        "from bootmenu import widgets\n"
        "print(Hello.__init__.__code__.co_filename)\n"
    )
    proc = payload_python(payload_stage, code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "<string>"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_every_module_the_payload_runs_imports_in_its_trimmed_stdlib(payload_stage: Path) -> None:
    # A stdlib module trimmed away surfaces only when the code path runs: in the field, at boot time (a missing
    # bz2 once made every boot fail). Import every module of the packages that run in the payload, and touch the
    # lazy imports modulefinder cannot see.
    lib = payload_stage / "usr" / "lib" / f"python{PYVER}"
    names = sorted(
        ".".join(pyc.relative_to(lib).with_suffix("").parts).removesuffix(".__init__")
        for pkg in ("bootmenu", "discovery", "kexec_core")
        for pyc in (lib / pkg).rglob("*.pyc")
        # The cffi build script runs on the build machine only; __main__ would run the command.
        if pyc.stem not in ("_build", "__main__")
    )
    assert len(names) >= 40, f"bytecode of our packages not found under {lib}"
    code = (
        "import importlib\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        # The product's third-party packages too (pyelftools imports pdb through its construct package).
        "import elftools.elf.elffile, pyudev, urwid\n"
        "import concurrent.futures\n"
        "concurrent.futures.ThreadPoolExecutor\n"
        "from kexec_core.compress import Compression\n"
        "assert Compression.XZ.peekable and Compression.GZIP.peekable\n"
        f"print('imported', {len(names)})\n"
    )
    proc = payload_python(payload_stage, code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["imported", str(len(names))]


def test_init_script_is_valid_busybox_sh(payload_stage: Path) -> None:
    subprocess.run(["busybox", "sh", "-n", str(payload_stage / "init")], check=True)


def test_size_report_names_the_largest_parts(payload: BuildReport) -> None:
    report = payload
    assert report.compressed == payload.output.stat().st_size
    assert report.compressed < report.uncompressed
    text = report.format()
    assert "MiB (xz)" in text
    assert "libpython" in text
    names = [p.name for p in report.parts]
    assert "shared libraries" in names
    assert any(n.startswith("kernel modules") for n in names)


def test_two_builds_are_byte_identical(payload: BuildReport, kernel_root: Path, tmp_path: Path) -> None:
    (modules,) = sorted((kernel_root / "lib/modules").iterdir())
    again = build(BuildOptions(output=tmp_path / "again.cpio.xz", kernel_modules=modules, compression=Compression.XZ))
    assert again.output.read_bytes() == payload.output.read_bytes()


def test_docstrings_are_dropped_but_asserts_stay(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text('"""module doc"""\ndef f():\n    """f doc"""\n    assert False, "kept"\n')
    code = compile_pyc(src, "/m.py", strip_docstrings=True)
    namespace: dict[str, object] = {}
    import marshal

    exec(marshal.loads(code[16:]), namespace)
    assert namespace.get("__doc__") is None
    func = namespace["f"]
    assert callable(func)
    assert func.__doc__ is None
    with pytest.raises(AssertionError, match="kept"):
        func()


def test_bad_extra_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="does not exist"):
        build(BuildOptions(output=tmp_path / "x", compression=Compression.NONE, extra=(("etc/x", tmp_path / "nope"),)))


def test_bad_settings_file_fails_the_build_at_once_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "settings.toml"
    bad.write_text("timeout = 5\ntimeout = = 6\n")
    with pytest.raises(BuildError, match=r"--settings .*settings\.toml: .*line 2"):
        build(BuildOptions(output=tmp_path / "x", compression=Compression.NONE, settings=bad))
    with pytest.raises(BuildError, match="No such file"):
        build(BuildOptions(output=tmp_path / "x", compression=Compression.NONE, settings=tmp_path / "nope.toml"))
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_settings_file_in_the_payload_is_what_its_daemon_reads(tmp_path: Path) -> None:
    """`--settings FILE` lands at /etc/bootmenu/settings.toml; the payload's own `bootmenu daemon`, run in a chroot
    of the staged tree, reads it without being told, kernel parameters win, an unknown key is a warning."""
    settings = tmp_path / "settings.toml"
    settings.write_text('timeout = 4\nboot_order = ["label:root", "type:usb"]\nconsole = "100x30"\ncolour = "red"\n')
    stage_dir = tmp_path / "stage"
    cmd = [sys.executable, "-m", "bootmenu", "initramfs", "build", "--output", str(tmp_path / "payload.cpio")]
    cmd += ["--compress", "none", "--settings", str(settings), "--stage-dir", str(stage_dir)]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "unknown setting 'colour'" in proc.stdout, "the build reports what the menu will warn about"
    assert (stage_dir / "etc/bootmenu/settings.toml").read_bytes() == settings.read_bytes()
    names = cpio_names(tmp_path / "payload.cpio")
    assert "etc/bootmenu/settings.toml" in names

    (stage_dir / "run").mkdir(exist_ok=True)
    (stage_dir / "srv" / "disk" / "loader" / "entries").mkdir(parents=True)
    sock = stage_dir / "run" / "bootmenu.sock"
    daemon = ["chroot", str(stage_dir), "/usr/bin/bootmenu", "daemon", "--no-udev", "--dry-run"]
    daemon += ["--cmdline", "quiet bootmenu.timeout=2", "--root", "/srv/disk"]
    with dev_bound(stage_dir):
        child = subprocess.Popen(daemon, env={"PATH": "/usr/bin:/usr/sbin"}, stderr=subprocess.PIPE, text=True)
        try:
            hello = _first_message(sock, child)
        finally:
            child.terminate()
            _, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert isinstance(hello, Hello)
    assert hello.settings["timeout"] == 2, "the kernel parameter wins over the file's 4"
    assert hello.settings["boot_order"] == ["label:root", "type:usb"]
    assert hello.settings["console"] == "100x30"
    assert any("unknown setting 'colour'" in w for w in hello.settings["warnings"])


def cpio_names(path: Path) -> set[str]:
    """Names in an uncompressed newc archive."""
    data = path.read_bytes()
    names: set[str] = set()
    at = 0
    while data[at : at + 6] == b"070701":
        namesize = int(data[at + 94 : at + 102], 16)
        filesize = int(data[at + 54 : at + 62], 16)
        name = data[at + 110 : at + 110 + namesize - 1].decode()
        if name == "TRAILER!!!":
            break
        names.add(name)
        at += (110 + namesize + 3) & ~3
        at += (filesize + 3) & ~3
    return names


def _first_message(sock: Path, child: subprocess.Popen[str]) -> object:
    import socket
    import time

    from discovery import protocol

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise AssertionError(f"the payload's daemon exited {child.returncode}")
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)
            s.connect(str(sock))
        except OSError:
            s.close()
            time.sleep(0.1)
            continue
        with s, s.makefile("rb") as stream:
            return protocol.decode(stream.readline())
    raise AssertionError("the payload's daemon never listened")


def test_stdlib_only_our_code_imports_found_without_our_tree_on_sys_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `bootmenu initramfs build` from an editable install: our packages are found through an import hook, not
    # sys.path. modulefinder must still walk them (mmap is imported by discovery/blockmap.py and nothing else).
    from initramfs import python_runtime

    repo = str(Path(__file__).resolve().parents[2])
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", repo)])
    dests = [f.dest for f in python_runtime.collect().files]
    assert any("/lib-dynload/mmap." in d for d in dests)


DECOMPRESSORS = {"zstd": ["zstd", "-q", "-1", "-c"], "lz4": ["lz4", "-q", "-l", "-c"]}  # -l: the kernel's lz4 frame


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
@pytest.mark.parametrize("program", list(DECOMPRESSORS))
def test_payload_decompresses_zstd_and_lz4_kernels_with_its_own_programs(
    payload: BuildReport, payload_stage: Path, kernel_image: Path, program: str
) -> None:
    """zstd and lz4 (legacy frame, as the kernel's own lz4 writes) kernels: the payload carries Debian's programs and
    the libraries they need, and its kexec_core runs them (inspect in a chroot says which program did)."""
    entries = listing(payload)
    assert entries[f"usr/bin/{program}"].startswith("-rwx")
    assert program in payload.decompressors
    host = Path(shutil.which(program) or program)
    for lib in DependencyWalker().walk([host]).values():
        assert f"usr/lib/x86_64-linux-gnu/{lib.path.name}" in entries, lib.path.name
    work = payload_stage / "tmp" / f"kernel-{program}"
    work.mkdir(parents=True, exist_ok=True)
    packed = work / f"vmlinuz.{program}"
    try:
        with packed.open("wb") as out:
            subprocess.run([*DECOMPRESSORS[program], str(kernel_image)], stdout=out, check=True)
        inside = f"/{packed.relative_to(payload_stage)}"
        proc = subprocess.run(
            ["chroot", str(payload_stage), "/usr/bin/bootmenu", "kexec", "inspect", "--json", inside],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/usr/sbin"},
            check=False,
        )
    finally:
        shutil.rmtree(work)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    kernel = info.get("kernel", info)
    assert kernel["compression"] == program
    assert kernel["decompressed_size"] == kernel_image.stat().st_size
    assert kernel["decompressed_by"] == f"/usr/bin/{program}"
    sizes = {p.name: p.size for p in payload.parts}
    print(f"\ndecompressor programs in the payload: {sizes.get('decompressors', 0) / (1 << 20):.2f} MiB uncompressed")
