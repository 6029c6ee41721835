"""The Python runtime of the payload: the interpreter, the standard library trimmed to what is used, our packages and
their dependencies, all as bytecode.

Layout in the image (what CPython's getpath finds from /usr/bin/python3 with no environment, PEP 3147 "legacy" .pyc
placement so sourceless imports work):

    /usr/bin/python3                      the interpreter (its real binary, not a venv shim)
    /usr/lib/python3.X/NAME.pyc           stdlib, our packages and their dependencies, side by side
    /usr/lib/python3.X/lib-dynload/*.so   the extension modules that are used

Everything lives in the stdlib directory so `python3 -I -S` (isolated, no site: the fastest start-up) sees it all
without PYTHONPATH. Bytecode is compiled by this interpreter (the one that will run it) with unchecked-hash
invalidation (PEP 552): no timestamps, so builds are reproducible and start-up never stats or compiles a source.

Which stdlib modules are "used": modulefinder over every module of our packages and their dependencies, plus the
modules imported dynamically at run time (RUNTIME_MODULES), minus what can never be needed in the payload.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import marshal
import modulefinder
import re
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from initramfs.run import RunError, run

# Our top-level packages shipped into the payload.
OUR_PACKAGES = ("bootmenu", "discovery", "kexec_core", "initramfs")
# The distribution whose requirements (recursively) are shipped whole.
OUR_DISTRIBUTION = "bootmenu"

# Imported by name at run time (codecs lookup, importlib.import_module, lazy imports modulefinder cannot see).
RUNTIME_MODULES = (
    "encodings.aliases",
    "encodings.ascii",
    "encodings.latin_1",
    "encodings.utf_8",
    "encodings.utf_8_sig",
    "encodings.utf_16",
    "encodings.utf_16_le",
    "encodings.utf_16_be",
    "encodings.utf_32",
    "encodings.cp437",
    "encodings.idna",
    "encodings.raw_unicode_escape",
    "encodings.unicode_escape",
    "encodings.punycode",
    "encodings.charmap",
    "json",
    "asyncio",
    "selectors",
    "tomllib",
    "ctypes.util",
    "subprocess",
    "signal",
    "socket",
    "logging.handlers",
    "argparse",
    "shlex",
    "zlib",
    "_posixsubprocess",
    "termios",
    "fcntl",
    "tty",
    "traceback",
    "linecache",
    "tokenize",
    "struct",
    "hashlib",
    "uuid",
    # xz initrds are common: kexec_core checks that they hold a cpio archive.
    "lzma",
    # Imported lazily by concurrent.futures.__getattr__, which asyncio's run_in_executor reaches.
    "concurrent.futures.thread",
)

# Never in the payload even if something mentions them (GUI, tests, packaging, docs, network servers). Not pdb:
# pyelftools' construct package imports it at import time, so without it no ELF kernel can be read in the payload.
EXCLUDED_PREFIXES = (
    "tkinter",
    "turtle",
    "idlelib",
    "test",
    "unittest",
    "lib2to3",
    "ensurepip",
    "distutils",
    "pydoc",
    "pydoc_data",
    "sqlite3",
    "_sqlite3",
    "_tkinter",
    "xmlrpc",
    "http.server",
    "venv",
    "doctest",
    "_testcapi",
    "_testinternalcapi",
    "_ctypes_test",
    "setuptools",
    "pip",
    "_distutils_hack",
    "pkg_resources",
    "ssl",
    "_ssl",
    "_hashlib",
    "multiprocessing",
    "concurrent.futures.process",
    "dbm",
    "mailbox",
    "imaplib",
    "smtplib",
    "ftplib",
    "nntplib",
    "poplib",
    "telnetlib",
    # bz2 kernels and initrds are rare; without it kexec_core only cannot look inside them (compress.py).
    "bz2",
    "_bz2",
    "readline",
    # The menu draws with urwid's raw display, never its curses one: _curses and the ncurses/tinfo libraries it
    # pulls in are 0.55 MiB.
    "curses",
    "_curses",
    "_curses_panel",
    "nis",
    "_crypt",
    "crypt",
    # Issue 15 (payload size), each proven unneeded by tests/initramfs/test_builder.py's chroot import of every module
    # we run: decimal (its C and Python versions, 0.2 MiB xz; nothing we run does decimal arithmetic), XML (pyexpat
    # and xml.*), and pickle's C accelerator (logging.handlers imports pickle; the pure-Python pickler is the same
    # module and nothing pickles).
    "decimal",
    "_decimal",
    "_pydecimal",
    "xml",
    "pyexpat",
    "_pickle",
)

# Distributions needed only to build, shipped only in part: cffi's compiler front end and pycparser generate
# kexec_core/_kexec at build time; the compiled module needs the _cffi_backend extension alone (0.2 MiB xz less).
BUILD_TIME_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {"cffi": ("_cffi_backend",), "pycparser": ()}

# Inside shipped third-party packages: tests and build-time parts, and optional accelerators whose pure-Python
# fallback is good enough for a menu (wcwidth's C extension alone is 1.3 MiB, a tenth of the payload budget).
# wcwidth's per-terminal grapheme tables (2.2 MiB of bytecode) are imported only when a caller asks for a named
# terminal program's overrides (kitty, wezterm...), which urwid never does; a missing one means "no overrides" by
# wcwidth's own design (table_grapheme_overrides.get catches the ImportError).
_PACKAGE_FILE_EXCLUDE = re.compile(
    r"(^|/)(tests?|testing|__pycache__)(/|$)|\.dist-info/|\.egg-info/|^wcwidth/_wcwidth_c\."
    r"|^wcwidth/table_grapheme_overrides/_known_"
)


_DocNode = TypeVar("_DocNode", ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


class PythonRuntimeError(Exception):
    """The runtime cannot be assembled (a module or distribution is missing, a file does not compile)."""


@dataclass(frozen=True)
class StagedFile:
    """A file of the runtime: where it goes in the image, and either bytecode compiled from `source` or a copy."""

    dest: str
    source: Path
    compile: bool
    strip_docs: bool = False


@dataclass
class PythonRuntime:
    """The files of the payload's Python, computed from the running interpreter."""

    interpreter: Path
    version: str
    files: list[StagedFile] = field(default_factory=list)

    @property
    def libdir(self) -> str:
        return f"usr/lib/python{self.version}"

    @property
    def extension_modules(self) -> list[Path]:
        """The ELF files whose shared libraries the payload needs too."""
        return [self.interpreter, *(f.source for f in self.files if f.source.suffix == ".so")]

    def stage(self, root: Path) -> None:
        """Writes the runtime under `root` (a staging directory)."""
        binary = root / "usr/bin" / f"python{self.version}"
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.write_bytes(self.interpreter.read_bytes())
        binary.chmod(0o755)
        (root / "usr/bin/python3").symlink_to(f"python{self.version}")
        jobs = []
        for f in self.files:
            dest = root / f.dest
            dest.parent.mkdir(parents=True, exist_ok=True)
            if f.compile:
                jobs.append((str(f.source), "/" + f.dest.removesuffix("c"), f.strip_docs, str(dest)))
            else:
                dest.write_bytes(f.source.read_bytes())
                dest.chmod(0o755 if f.source.suffix == ".so" else 0o644)
        compile_all(jobs)
        # The table is used only by the interpreter that wrote it: not in a foreign runtime (initramfs/arm64.py).
        ours = self.interpreter == Path(sys.executable).resolve()
        if ours and any(f.dest == f"{self.libdir}/bootmenu/dataclass_code.pyc" for f in self.files):
            write_dataclass_code(root / self.libdir / "bootmenu" / "dataclass_code.marshal")


# marshal marks an object for back-references when its reference count is above one, and an interned string's count
# depends on everything else the process holds, so the same source marshals differently in a test process than in a
# build process. Compiling every file in one fresh child interpreter, in a fixed order, makes the bytes reproducible.
_COMPILER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from initramfs.python_runtime import compile_pyc
for source, dfile, strip, dest in json.load(sys.stdin):
    Path(dest).write_bytes(compile_pyc(Path(source), dfile, strip_docstrings=strip))
"""


def compile_all(jobs: list[tuple[str, str, bool, str]]) -> None:
    """Writes each job's .pyc (source, path tracebacks show, strip docstrings, destination) from a fresh child."""
    repo = str(Path(__file__).resolve().parents[1])
    try:
        run([sys.executable, "-I", "-S", "-c", _COMPILER, repo], input=json.dumps(jobs).encode(), capture=True)
    except RunError as exc:
        raise PythonRuntimeError(f"compiling the payload's bytecode failed: {exc}") from None


# bootmenu/dataclass_code.py: the method sources `@dataclass` compiles while the menu's and the daemon's modules
# import (one child that imports them), then their code (a fresh child, as _COMPILER, for reproducible bytes).
_DATACLASS_SOURCES = """
import json, sys
from bootmenu import dataclass_code
json.dump(dataclass_code.sources(dataclass_code.modules()), sys.stdout)
"""
_DATACLASS_TABLE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from bootmenu import dataclass_code
sys.stdout.buffer.write(dataclass_code.table(json.load(sys.stdin)))
"""


def write_dataclass_code(dest: Path) -> None:
    """bootmenu/dataclass_code.py's table of compiled dataclass methods, at `dest` (issue 15: start-up time)."""
    repo = str(Path(__file__).resolve().parents[1])
    try:
        # Not -I -S here: the packages to import are found as the build finds them (an editable install's hook).
        found = run([sys.executable, "-c", _DATACLASS_SOURCES], capture=True)
        code = run([sys.executable, "-I", "-S", "-c", _DATACLASS_TABLE, repo], input=found.stdout, capture=True)
    except RunError as exc:
        raise PythonRuntimeError(f"compiling the payload's dataclass methods failed: {exc}") from None
    dest.write_bytes(code.stdout)


class _DropDocstrings(ast.NodeTransformer):
    """Removes docstrings (a third of some modules' bytecode) and keeps asserts, unlike `-OO`."""

    def _strip(self, node: _DocNode) -> _DocNode:
        self.generic_visit(node)
        body = node.body
        first = body[0] if body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    def visit_Module(self, node: ast.Module) -> ast.Module:
        return self._strip(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.ClassDef:
        return self._strip(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        return self._strip(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AsyncFunctionDef:
        return self._strip(node)


def compile_pyc(source: Path, dfile: str, *, strip_docstrings: bool = False) -> bytes:
    """A PEP 552 unchecked-hash .pyc of `source`, compiled by this interpreter; `dfile` is the path tracebacks show."""
    raw = source.read_bytes()
    try:
        tree = ast.parse(raw, filename=dfile)
        if strip_docstrings:
            tree = ast.fix_missing_locations(_DropDocstrings().visit(tree))
        code = compile(tree, dfile, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        raise PythonRuntimeError(f"{source}: does not compile: {e}") from None
    # Header: magic, flags (bit 0: hash-based, bit 1: check_source - off), the source hash, then the code object.
    flags = 0b01
    return (
        importlib.util.MAGIC_NUMBER
        + flags.to_bytes(4, "little")
        + importlib.util.source_hash(raw)
        + marshal.dumps(code)
    )


def real_interpreter() -> Path:
    """The interpreter binary behind sys.executable (a venv's python is a symlink to it)."""
    path = Path(sys.executable).resolve()
    if not path.is_file():
        raise PythonRuntimeError(f"cannot find the Python interpreter behind {sys.executable}")
    return path


def _excluded(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in EXCLUDED_PREFIXES)


def _requirement_names(dist_name: str) -> set[str]:
    """The distribution and everything it requires (recursively, without extras), as normalized names."""
    seen: set[str] = set()
    queue = [dist_name]
    while queue:
        name = re.sub(r"[-_.]+", "-", queue.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            raise PythonRuntimeError(f"the Python package {name!r} is not installed (needed by the payload)") from None
        for req in requires:
            marker = req.split(";", 1)[1] if ";" in req else ""
            if "extra" in marker:
                continue
            match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req.strip())
            if match is None:
                continue
            dep = match.group(0)
            # A requirement under an environment marker (python_version...) may not apply here; when it is not
            # installed it did not apply. Unconditional requirements must be installed.
            if marker and not _installed(dep):
                continue
            queue.append(dep)
    return seen


def _installed(dist_name: str) -> bool:
    try:
        importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _distribution_files(dist_name: str) -> list[tuple[str, Path]]:
    """(relative path, absolute path) of every module file a distribution installed."""
    dist = importlib.metadata.distribution(dist_name)
    out: list[tuple[str, Path]] = []
    for f in dist.files or []:
        rel = str(f)
        if rel.startswith("..") or _PACKAGE_FILE_EXCLUDE.search(rel):
            continue
        if rel.endswith((".py", ".so")):
            out.append((rel, Path(str(f.locate())).resolve()))
    return out


def _module_source(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return None
    return Path(spec.origin)


def _module_name(rel: str) -> str:
    name = rel.removesuffix(".py").replace("/", ".")
    return name.removesuffix(".__init__")


def _package_root(pkg: str) -> Path:
    source = _module_source(pkg)
    if source is None:
        raise PythonRuntimeError(f"cannot find our package {pkg!r}")
    return source.parent


def collect(extra_entry_modules: Iterable[str] = ()) -> PythonRuntime:
    """Computes the runtime's files from the running interpreter and installed packages."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    runtime = PythonRuntime(real_interpreter(), version)
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    dynload = stdlib / "lib-dynload"
    libdir = runtime.libdir

    modules: list[str] = []
    seen_dest: set[str] = set()

    def add(dest: str, source: Path, *, ours: bool = False) -> None:
        if dest in seen_dest:
            return
        seen_dest.add(dest)
        is_py = source.suffix == ".py"
        # Our own docstrings stay (argparse help and error texts may use them); others' go to save space.
        runtime.files.append(StagedFile(dest + ("c" if is_py else ""), source, is_py, strip_docs=is_py and not ours))

    # Our packages, whole (minus caches), from the source tree.
    for pkg in OUR_PACKAGES:
        root = _package_root(pkg)
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root.parent).as_posix()
            if "__pycache__" in rel or not path.is_file():
                continue
            if path.suffix == ".py":
                add(f"{libdir}/{rel}", path)
                modules.append(_module_name(rel))
            elif path.suffix == ".so" or "/data/" in f"/{rel}" or "/samples/" in f"/{rel}":
                add(f"{libdir}/{rel}", path)

    # Third-party dependencies, whole: their optional imports are decided at run time.
    for dist_name in sorted(_requirement_names(OUR_DISTRIBUTION) - {OUR_DISTRIBUTION}):
        keep = BUILD_TIME_DISTRIBUTIONS.get(dist_name)
        for rel, path in _distribution_files(dist_name):
            if keep is not None and rel.split("/", 1)[0].split(".", 1)[0] not in keep:
                continue
            add(f"{libdir}/{rel}", path)
            if path.suffix == ".py":
                modules.append(_module_name(rel))

    # The standard library modules reachable from all of the above.
    # Our packages' directories first: under an editable install they are found by an import hook, not on sys.path,
    # and modulefinder searches sys.path only (it then missed what only our code imports, such as mmap).
    ours = sorted({str(_package_root(pkg).parent) for pkg in OUR_PACKAGES})
    finder = modulefinder.ModuleFinder(path=[*ours, *sys.path], excludes=list(EXCLUDED_PREFIXES))
    for name in modules:
        # Optional parts of a package may fail to import here (a backend for another platform): not our concern.
        try:
            finder.import_hook(name)
        except (ImportError, SyntaxError):
            continue
    for name in [*RUNTIME_MODULES, *extra_entry_modules]:
        try:
            finder.import_hook(name)
        except ImportError as e:
            raise PythonRuntimeError(f"runtime module {name}: {e}") from None
    for name, module in sorted(finder.modules.items()):
        file = getattr(module, "__file__", None)
        if _excluded(name) or not file:
            continue
        path = Path(file).resolve()
        if path.is_relative_to(dynload):
            add(f"{libdir}/lib-dynload/{path.name}", path)
        elif path.is_relative_to(stdlib) and "site-packages" not in path.parts:
            add(f"{libdir}/{path.relative_to(stdlib).as_posix()}", path)
    # Packages need their __init__ even when only a submodule was found.
    for f in list(runtime.files):
        parts = Path(f.dest).relative_to(libdir).parts[:-1]
        for i in range(1, len(parts) + 1):
            init = stdlib.joinpath(*parts[:i], "__init__.py")
            if init.is_file():
                add(f"{libdir}/{'/'.join(parts[:i])}/__init__.py", init)
    runtime.files.sort(key=lambda f: f.dest)
    return runtime
