"""The methods `@dataclass` generates, compiled when the payload is built instead of at every start (issue 15).

`dataclasses` writes the source of each method it adds to a class (__init__, __repr__, __eq__, __hash__,
__setattr__...) and compiles it with exec() when the class is defined: in the daemon's start-up that compile() is a
third of the import time (66 classes, 386 methods), 1 s under QEMU TCG, and the menus pay it again for the protocol.

The payload builder runs `sources()` in one child interpreter that imports our packages and notes every source
`dataclasses` compiles, then `table()` in a fresh one that compiles each (in a fixed order, so the marshalled bytes
are reproducible) into TABLE beside this module: {source: code}, with the interpreter's version. `install()`, the
first thing `bootmenu` does in the payload, gives `dataclasses` an `exec` that runs the stored code of a source it
has and compiles any other as before. The code is what exec(source) compiles (same source, same "<string>" file
name, no inherited __future__ flags: `dataclasses` has none), so the classes are the same; the table is only used by
the interpreter that wrote it. Standard library only (marshal, sys): it runs before anything else is imported.
"""

from __future__ import annotations

import marshal
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (bootmenu/firstframe.py does the same)
if TYPE_CHECKING:
    from collections.abc import Iterable

TABLE = "dataclass_code.marshal"  # beside this module in the payload (initramfs/python_runtime.py writes it)
PACKAGES = ("kexec_core", "discovery", "bootmenu")
OTHERS = ("urwid",)  # what the menu imports of urwid (its other modules are displays the menu does not use)
MAX_INDEX_BYTES = 1 << 20  # one line per module, a few KiB in practice; a bigger index is not ours


def _table_path() -> str:
    return __file__.rpartition("/")[0] + "/" + TABLE


def install(path: str | None = None) -> bool:
    """Hooks `dataclasses` to the stored code, when TABLE is there and was written by this interpreter; False (and
    nothing changed) otherwise. Only TABLE's index is read here; a module's code is read when its first class is
    made, so a process holds the code of the modules it imports only."""
    where = path or _table_path()
    try:
        with open(where, "rb") as f:
            size = int.from_bytes(f.read(4), "little")
            index = f.read(size) if size <= MAX_INDEX_BYTES else b""
    except OSError:
        return False
    try:
        version, parts = marshal.loads(index)
    except (EOFError, ValueError, TypeError):
        return False
    if version != sys.version or not isinstance(parts, dict):
        return False
    import dataclasses

    if "exec" in vars(dataclasses):  # hooked already
        return False
    start = 4 + size
    read: dict[str, dict[str, object]] = {}
    builtin_exec = exec

    def module_code(module: str) -> dict[str, object]:
        if module not in read:
            read[module] = {}
            offset, length = parts.pop(module, (0, 0))
            try:
                with open(where, "rb") as f:
                    f.seek(start + offset)
                    codes = marshal.loads(f.read(length)) if length else {}
            except (OSError, EOFError, ValueError, TypeError):
                codes = {}  # compiled as without the table
            read[module] = codes if isinstance(codes, dict) else {}
        return read[module]

    def stored_exec(source: object, globals: dict[str, object] | None = None, locals: object = None, /) -> None:
        code = None
        if isinstance(source, str) and globals is not None:
            module = globals.get("__name__")  # dataclasses runs a method's source in its class's module's globals
            if isinstance(module, str):
                code = module_code(module).get(source)
        builtin_exec(source if code is None else code, globals, locals)  # type: ignore[arg-type]

    dataclasses.exec = stored_exec  # type: ignore[attr-defined]
    return True


def sources(modules: Iterable[str]) -> dict[str, list[str]]:
    """Every method source `dataclasses` compiles while `modules` are imported, sorted, by the module of the class
    (in a fresh interpreter: a module imported before is not seen)."""
    import dataclasses
    import importlib

    seen: dict[str, set[str]] = {}
    builtin_exec = exec

    def noting_exec(source: object, globals: dict[str, object] | None = None, locals: object = None, /) -> None:
        if isinstance(source, str) and globals is not None:
            module = globals.get("__name__")
            if isinstance(module, str):
                seen.setdefault(module, set()).add(source)
        builtin_exec(source, globals, locals)  # type: ignore[arg-type]

    dataclasses.exec = noting_exec  # type: ignore[attr-defined]
    try:
        for name in modules:
            try:
                importlib.import_module(name)
            except (ImportError, OSError):  # a part for another machine (a missing library): its classes not stored
                continue
    finally:
        del dataclasses.exec  # type: ignore[attr-defined]
    return {module: sorted(found) for module, found in sorted(seen.items())}


def table(found: dict[str, list[str]]) -> bytes:
    """TABLE's bytes: the index's length (4 bytes, little-endian), the index (marshal: the interpreter's version,
    {module: (offset, length)}), then each module's {source: code} (marshal), each source compiled as exec() in
    `dataclasses` compiles it."""
    blobs = []
    parts = {}
    offset = 0
    for module, texts in sorted(found.items()):
        blob = marshal.dumps({s: compile(s, "<string>", "exec", dont_inherit=True) for s in texts})
        parts[module] = (offset, len(blob))
        blobs.append(blob)
        offset += len(blob)
    index = marshal.dumps((sys.version, parts))
    return len(index).to_bytes(4, "little") + index + b"".join(blobs)


def modules() -> list[str]:
    """What `sources()` imports: every module of PACKAGES but their `__main__`s (which run a program), sorted, then
    OTHERS."""
    import importlib.util
    import os

    names = []
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        for directory in (spec.submodule_search_locations or []) if spec is not None else []:
            for parent, dirs, files in os.walk(directory):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__" and os.path.isfile(f"{parent}/{d}/__init__.py"))
                rel = os.path.relpath(parent, directory)
                prefix = package if rel == "." else f"{package}.{rel.replace(os.sep, '.')}"
                for name in sorted(files):
                    if name.endswith(".py") and name != "__main__.py":
                        stem = name.removesuffix(".py")
                        names.append(prefix if stem == "__init__" else f"{prefix}.{stem}")
    return [*sorted(names), *OTHERS]
