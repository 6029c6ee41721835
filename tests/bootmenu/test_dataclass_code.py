"""The dataclass methods compiled at build time (bootmenu/dataclass_code.py): the table is used for the sources it
has, the classes behave as without it, other sources still compile, and a table from another interpreter is left
alone. Each case runs in a child interpreter: the hook changes the `dataclasses` module of the process."""

from __future__ import annotations

import json
import marshal
import subprocess
import sys
from pathlib import Path
from types import CodeType

from bootmenu import dataclass_code

REPO = Path(__file__).resolve().parents[2]
MODULE = """
from dataclasses import dataclass, field

@dataclass(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = field(default=())
"""
# In the child: the table (argv[1]) installed, then the module (argv[2]'s directory) imported; prints what it saw.
CHILD = """
import dataclasses, json, sys
sys.path[:0] = [sys.argv[3], sys.argv[2]]
from bootmenu import dataclass_code
installed = dataclass_code.install(sys.argv[1])
from points import Point
p = Point(1, tags=("a",))
try:
    p.x = 2
    frozen = False
except dataclasses.FrozenInstanceError:
    frozen = True
print(json.dumps({"installed": installed, "repr": repr(p), "eq": p == Point(1, 0, ("a",)), "hash": hash(p) ==
    hash(Point(1, 0, ("a",))), "frozen": frozen, "file": Point.__init__.__code__.co_filename,
    "names": list(Point.__init__.__code__.co_varnames)}))
"""


def _sources(tmp_path: Path) -> dict[str, list[str]]:
    (tmp_path / "points.py").write_text(MODULE)
    script = f"import json, sys; sys.path[:0] = [{str(REPO)!r}, {str(tmp_path)!r}]; from bootmenu import " + (
        "dataclass_code as d; print(json.dumps(d.sources(['points'])))"
    )
    found: dict[str, list[str]] = json.loads(subprocess.check_output([sys.executable, "-I", "-c", script]))
    return found


def _child(tmp_path: Path, table: bytes) -> dict[str, object]:
    (tmp_path / "points.py").write_text(MODULE)
    (tmp_path / "table").write_bytes(table)
    out = subprocess.check_output(
        [sys.executable, "-I", "-c", CHILD, str(tmp_path / "table"), str(tmp_path), str(REPO)]
    )
    answer: dict[str, object] = json.loads(out)
    return answer


def test_the_sources_are_noted_by_the_module_of_their_class(tmp_path: Path) -> None:
    found = _sources(tmp_path)
    assert list(found) == ["points"]
    assert any("def __init__(self,x:" in s for s in found["points"])
    assert any("def __repr__" in s for s in found["points"])


def test_the_classes_are_the_same_with_the_table(tmp_path: Path) -> None:
    without = _child(tmp_path, b"")
    with_table = _child(tmp_path, dataclass_code.table(_sources(tmp_path)))
    assert without["installed"] is False
    assert with_table["installed"] is True
    assert with_table == {**without, "installed": True}
    assert with_table["frozen"] is True
    assert with_table["eq"] is True
    assert with_table["hash"] is True
    assert with_table["file"] == "<string>"  # as exec(source) names it


def _raw_table(version: str, parts: dict[str, dict[str, CodeType]]) -> bytes:
    """A table in dataclass_code.table()'s layout with the code given (table() compiles the sources themselves)."""
    blobs = [marshal.dumps(codes) for codes in parts.values()]
    offsets = [sum(len(b) for b in blobs[:i]) for i in range(len(blobs))]
    index = marshal.dumps((version, {m: (o, len(b)) for m, o, b in zip(parts, offsets, blobs, strict=True)}))
    return len(index).to_bytes(4, "little") + index + b"".join(blobs)


def test_the_stored_code_is_what_runs(tmp_path: Path) -> None:
    # The real __init__ source as the key, another function's code as the value: the class gets the stored one.
    (init,) = [s for s in _sources(tmp_path)["points"] if "def __init__" in s]
    marked = init.replace(")->_return_type:", ", stored_code_ran=True)->_return_type:", 1)
    assert marked != init
    forged = _raw_table(sys.version, {"points": {init: compile(marked, "<string>", "exec", dont_inherit=True)}})
    answer = _child(tmp_path, forged)
    assert answer["installed"] is True
    names = answer["names"]
    assert isinstance(names, list)
    assert "stored_code_ran" in names


def test_a_table_of_another_interpreter_or_garbage_is_not_used(tmp_path: Path) -> None:
    assert _child(tmp_path, _raw_table("2.7.18 (other)", {}))["installed"] is False
    assert _child(tmp_path, b"\x0a\x00\x00\x00garbage!!!")["installed"] is False


def test_every_module_of_our_packages_is_imported_for_the_table_but_no_main() -> None:
    names = dataclass_code.modules()
    for name in ("discovery.protocol", "discovery.grub.parser", "kexec_core.guard", "bootmenu.widgets"):
        assert name in names
    assert not any(n.endswith("__main__") for n in names)
    assert names[-len(dataclass_code.OTHERS) :] == list(dataclass_code.OTHERS)
