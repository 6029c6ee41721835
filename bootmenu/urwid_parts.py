"""urwid with only the modules the menu draws with: `import urwid` runs urwid/__init__.py, which imports every widget,
display and event loop (asyncio among them); in the payload that is about 3 MiB of each menu's peak memory (issue 15).

`install()` puts placeholder package modules for `urwid`, `urwid.widget`, `urwid.display` and `urwid.event_loop` in
sys.modules (Python's import system then finds their submodules through `__path__` without running the packages'
`__init__`), imports the submodules in PARTS and sets the names they define on the placeholders, as urwid's own
`__init__` re-exports them. A name not set (a widget the menu does not use) runs the real `__init__` in the
placeholder on first access, so it is `import urwid` from then on: never an AttributeError, only the memory back.
The leaf modules import each other by module path (`from urwid.canvas import ...`, `from urwid import signals`),
which is why the placeholders suffice; `tests/bootmenu/test_urwid_parts.py` draws the menu after `install()` in a
fresh interpreter and checks that the full package was not needed.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

# The first name asked for outside PARTS (which ran the real urwid/__init__), for the tests' messages.
full_for: str | None = None
PACKAGES = ("urwid", "urwid.widget", "urwid.display", "urwid.event_loop")
# Submodule -> the package whose namespace re-exports its public names (as the real __init__ files do), in import
# order: urwid.widget.popup before main_loop, which imports PopUpTarget from the urwid.widget namespace.
PARTS = (
    ("urwid.signals", "urwid"),
    ("urwid.canvas", "urwid"),
    ("urwid.command_map", "urwid"),
    ("urwid.util", "urwid"),
    ("urwid.str_util", "urwid"),
    ("urwid.text_layout", "urwid"),
    ("urwid.widget.constants", "urwid.widget"),
    ("urwid.widget.widget", "urwid.widget"),
    ("urwid.widget.widget_decoration", "urwid.widget"),
    ("urwid.widget.text", "urwid.widget"),
    ("urwid.widget.edit", "urwid.widget"),
    ("urwid.widget.divider", "urwid.widget"),
    ("urwid.widget.attr_map", "urwid.widget"),
    ("urwid.widget.filler", "urwid.widget"),
    ("urwid.widget.padding", "urwid.widget"),
    ("urwid.widget.pile", "urwid.widget"),
    ("urwid.widget.columns", "urwid.widget"),
    ("urwid.widget.frame", "urwid.widget"),
    ("urwid.widget.overlay", "urwid.widget"),
    ("urwid.widget.line_box", "urwid.widget"),
    ("urwid.widget.solid_fill", "urwid.widget"),
    ("urwid.widget.list_walker", "urwid.widget"),
    ("urwid.widget.listbox", "urwid.widget"),
    ("urwid.widget.popup", "urwid.widget"),
    ("urwid.display.common", "urwid.display"),
    ("urwid.display.escape", "urwid.display"),
    ("urwid.display.raw", "urwid.display"),
    ("urwid.event_loop.abstract_loop", "urwid.event_loop"),
    ("urwid.event_loop.select_loop", "urwid.event_loop"),
    ("urwid.event_loop.main_loop", "urwid.event_loop"),
)
# urwid.widget's aliases of enum members (urwid.FLOW is Sizing.FLOW...), which its __init__ defines itself.
ENUM_ALIASES = {
    "Sizing": ("FLOW", "BOX", "FIXED"),
    "Align": ("LEFT", "RIGHT", "CENTER"),
    "VAlign": ("TOP", "MIDDLE", "BOTTOM"),
    "WrapMode": ("SPACE", "ANY", "CLIP", "ELLIPSIS"),
    "WHSettings": ("PACK", "GIVEN", "RELATIVE", "WEIGHT"),
}
# Package namespaces whose names urwid/__init__ also re-exports at the top (urwid.Text, urwid.MainLoop...).
REEXPORTED = ("urwid.widget", "urwid.display", "urwid.event_loop")


class _Placeholder(types.ModuleType):
    """A package module whose real `__init__` runs only when a name it lacks is asked for."""

    _loading = False

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or self._loading or self.__dict__.get("_bootmenu_full"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        # `from urwid import signals` asks for the attribute first, then imports the submodule: a submodule is
        # imported alone.
        if importlib.util.find_spec(f"{self.__name__}.{name}") is not None:
            return importlib.import_module(f"{self.__name__}.{name}")
        # urwid's API has no private names; probes such as pytest's (`_mock_name`) must not load everything.
        if name.startswith("_"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        self._loading = True
        try:
            spec = self.__spec__
            assert spec is not None
            assert spec.loader is not None
            spec.loader.exec_module(self)
        finally:
            self._loading = False
        self.__dict__["_bootmenu_full"] = True
        global full_for
        full_for = full_for or f"{self.__name__}.{name}"
        return getattr(self, name)


def _public(module: types.ModuleType) -> dict[str, Any]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    # Not the modules a part imported (typing, wcwidth...): only what it defines or re-exports.
    return {
        n: v for n in names if not isinstance(v := getattr(module, n, None), types.ModuleType) and hasattr(module, n)
    }


def install() -> bool:
    """Placeholders for urwid's packages plus the parts the menu uses; False (nothing done) when urwid is already
    imported or cannot be found."""
    if "urwid" in sys.modules:
        return False
    placeholders: dict[str, _Placeholder] = {}
    for name in PACKAGES:
        parent, _, leaf = name.rpartition(".")
        # A submodule's spec comes from its parent's __path__: the placeholder already in sys.modules.
        spec = importlib.util.find_spec(name)
        if spec is None or spec.submodule_search_locations is None:
            for done in placeholders:
                del sys.modules[done]
            return False
        module = _Placeholder(name)
        module.__spec__ = spec
        module.__file__ = spec.origin
        module.__path__ = list(spec.submodule_search_locations)
        module.__package__ = name
        module.__loader__ = spec.loader
        sys.modules[name] = module
        placeholders[name] = module
        if parent:
            setattr(placeholders[parent], leaf, module)
    for part, package in PARTS:
        names = _public(importlib.import_module(part))
        if part == "urwid.widget.constants":
            names |= {alias: names[enum][alias] for enum, aliases in ENUM_ALIASES.items() for alias in aliases}
        placeholders[package].__dict__.update(names)
        if package in REEXPORTED:
            placeholders["urwid"].__dict__.update(names)
    return True


def is_full() -> bool:
    """Whether the real urwid/__init__ ran (urwid imported normally, or a name outside PARTS was asked for)."""
    module = sys.modules.get("urwid")
    return module is not None and (not isinstance(module, _Placeholder) or bool(module.__dict__.get("_bootmenu_full")))
