"""The menu's palette as data, in colour and in monochrome, checked at start-up.

Nothing in the menu depends on colour: the selection is also marked with `>` and the default with `*`, so the
monochrome palette (reverse video only, for vt100 serial lines and NO_COLOR) loses nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class PaletteError(ValueError):
    """A palette entry urwid cannot draw, or a widget attribute without an entry."""


class Attr(enum.StrEnum):
    """Every attribute name a widget uses."""

    BODY = "body"
    TITLE = "title"
    HEADER = "header"
    ENTRY = "entry"
    FOCUS = "focus"
    DEFAULT = "default-entry"
    STATUS = "status"
    ERROR = "error"
    WARNING = "warning"
    HINT = "hint"
    POPUP = "popup"
    EDIT = "edit"


@dataclass(frozen=True)
class PaletteEntry:
    attr: Attr
    foreground: str
    background: str
    mono: str

    def as_urwid(self) -> tuple[str, str, str, str]:
        return (self.attr.value, self.foreground, self.background, self.mono)


COLOUR: tuple[PaletteEntry, ...] = (
    PaletteEntry(Attr.BODY, "default", "default", "default"),
    PaletteEntry(Attr.TITLE, "white,bold", "dark blue", "bold"),
    PaletteEntry(Attr.HEADER, "light cyan", "default", "bold"),
    PaletteEntry(Attr.ENTRY, "default", "default", "default"),
    PaletteEntry(Attr.FOCUS, "black", "light gray", "standout"),
    PaletteEntry(Attr.DEFAULT, "yellow", "default", "bold"),
    PaletteEntry(Attr.STATUS, "default", "default", "default"),
    PaletteEntry(Attr.ERROR, "light red,bold", "default", "bold"),
    PaletteEntry(Attr.WARNING, "yellow", "default", "bold"),
    PaletteEntry(Attr.HINT, "dark gray", "default", "default"),
    PaletteEntry(Attr.POPUP, "default", "default", "default"),
    PaletteEntry(Attr.EDIT, "default", "default", "underline"),
)

# Monochrome: only attributes a vt100 has (bold, underline, reverse).
MONO: tuple[PaletteEntry, ...] = tuple(
    PaletteEntry(e.attr, "default", "default", e.mono) if e.attr is not Attr.FOCUS else
    PaletteEntry(e.attr, "standout", "default", "standout")
    for e in COLOUR
)  # fmt: skip


def check(palette: tuple[PaletteEntry, ...]) -> list[tuple[str, str, str, str]]:
    """The palette in urwid's form, after checking every attribute exists once and urwid accepts every colour."""
    import urwid

    names = [e.attr for e in palette]
    missing = set(Attr) - set(names)
    if missing:
        raise PaletteError(f"palette lacks {', '.join(sorted(missing))}")
    if len(set(names)) != len(names):
        raise PaletteError("palette names an attribute twice")
    for e in palette:
        try:
            urwid.AttrSpec(e.foreground, e.background, 16)
            urwid.AttrSpec(e.mono, "default", 1)
        except urwid.AttrSpecError as exc:
            raise PaletteError(f"palette entry {e.attr}: {exc}") from exc
    return [e.as_urwid() for e in palette]
