"""The menu's urwid widgets: the entry list under device headers, the status area, the editor and text windows.

Widgets only draw and map keys to commands (bootmenu/keys.py); the controller decides what a command does. Nothing
depends on colour: the selected row starts with `>`, the default entry with `*`, submenus end with an arrow glyph.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Sequence

import urwid

from bootmenu import keys
from bootmenu.console import Glyphs
from bootmenu.edit import EntryEdit
from bootmenu.model import ActionRow, EntryRow, HeaderRow, MenuModel, NoteRow, Row, SubmenuRow, TitleRow
from bootmenu.palette import Attr
from discovery import protocol as p

# urwid's size argument: () for fixed, (cols,) for flow, (cols, rows) for box widgets.
Size = tuple[()] | tuple[int] | tuple[int, int]

_LISTBOX_KEYS = {
    keys.Command.UP: "up",
    keys.Command.DOWN: "down",
    keys.Command.PAGE_UP: "page up",
    keys.Command.PAGE_DOWN: "page down",
}


class MenuItem(urwid.Widget):
    """One selectable row: an entry or a submenu. Drawn as `> * Title` (selection, default)."""

    _selectable = True
    _sizing = frozenset([urwid.FLOW])

    def __init__(self, row: EntryRow | SubmenuRow | ActionRow, glyphs: Glyphs) -> None:
        super().__init__()
        self.row = row
        self.glyphs = glyphs

    @property
    def is_action(self) -> bool:
        return isinstance(self.row, ActionRow)

    def rows(self, size: tuple[int], focus: bool = False) -> int:
        return 1

    def text(self, focus: bool) -> str:
        mark = "*" if self.row.is_default else " "
        title = self.row.text()
        if isinstance(self.row, SubmenuRow):
            title += " " + self.glyphs.submenu
        return f"{'>' if focus else ' '} {mark} {title}"

    def render(self, size: Size, focus: bool = False) -> urwid.Canvas:
        cols = size[0] if size else 80
        text = self.text(focus)
        if len(text) > cols:
            text = text[: max(0, cols - len(self.glyphs.ellipsis))] + self.glyphs.ellipsis
        attr = Attr.FOCUS if focus else (Attr.DEFAULT if self.row.is_default else Attr.ENTRY)
        return urwid.Text((attr.value, text), wrap="clip").render((cols,))

    def keypress(self, size: Size, key: str) -> str | None:
        return key


def row_widget(row: Row, glyphs: Glyphs) -> urwid.Widget:
    if isinstance(row, HeaderRow | TitleRow):
        return urwid.Text((Attr.HEADER.value, row.text()), wrap="clip")
    if isinstance(row, NoteRow):
        return urwid.Text((Attr.HINT.value, "     " + row.text()), wrap="clip")
    return MenuItem(row, glyphs)


class MenuList(urwid.ListBox):  # type: ignore[type-arg]
    """The rows of one menu level; keeps the selection on the same entry across updates."""

    def __init__(self, glyphs: Glyphs) -> None:
        self.glyphs = glyphs
        self.keys_: list[str] = []
        self.walker: urwid.SimpleFocusListWalker[urwid.Widget] = urwid.SimpleFocusListWalker([])
        super().__init__(self.walker)  # type: ignore[arg-type]

    def set_rows(self, rows: Sequence[Row], select: str | None = None) -> None:
        """Shows `rows`; selects the row keyed `select`, else the one selected before, else the nearest one."""
        previous = self.selected_key()
        old_index = self.focus_position if self.keys_ else 0
        self.keys_ = [r.key for r in rows]
        walker = self.walker
        walker[:] = [row_widget(r, self.glyphs) for r in rows]
        for wanted in (select, previous):
            if wanted is not None and wanted in self.keys_ and walker[self.keys_.index(wanted)].selectable():
                self.set_focus(self.keys_.index(wanted))
                return
        self._focus_near(min(old_index, len(rows) - 1))

    def _focus_near(self, index: int) -> None:
        walker = self.walker
        if not len(walker):
            return
        candidates = sorted(range(len(walker)), key=lambda i: (abs(i - index), i))
        for i in candidates:
            if walker[i].selectable():
                self.set_focus(i)
                return
        self.set_focus(max(0, index))

    def selected(self) -> MenuItem | None:
        if not self.keys_:
            return None
        widget = self.focus
        return widget if isinstance(widget, MenuItem) and widget.selectable() else None

    def selected_key(self) -> str | None:
        item = self.selected()
        return item.row.key if item else None

    def keypress(self, size: tuple[int] | tuple[int, int], key: str) -> str | None:  # type: ignore[override]
        command = keys.command_for(key)
        if command in _LISTBOX_KEYS:
            key = _LISTBOX_KEYS[command]
        elif command is keys.Command.HOME:
            self._focus_near(0)
            return None
        elif command is keys.Command.END:
            # The last boot entry, not the action rows below the entries.
            entries = [i for i, w in enumerate(self.walker) if isinstance(w, MenuItem) and not w.is_action]
            self._focus_near(entries[-1] if entries else len(self.walker) - 1)
            return None
        else:
            return key
        result: str | None = super().keypress(size, key)
        # Do not let a scroll leave the selection on a header.
        if result is None and self.selected() is None:
            self._focus_near(self.focus_position)
        return result


def wrap_lines(messages: Iterable[str], cols: int) -> list[str]:
    out: list[str] = []
    for message in messages:
        out.extend(textwrap.wrap(message, max(10, cols), subsequent_indent="  ", break_on_hyphens=False) or [""])
    return out


class StatusArea(urwid.Widget):
    """The last status messages, newest at the bottom, wrapped and clipped to `max_rows` lines; a pinned message
    (the daemon's settings warnings) keeps the first line, cut to the width."""

    _sizing = frozenset([urwid.FLOW])

    def __init__(self, max_rows: int = 3) -> None:
        super().__init__()
        self.max_rows = max_rows
        self.lines: list[p.StatusLine] = []
        self.pinned: p.StatusLine | None = None

    def set_status(self, lines: Sequence[p.StatusLine], pinned: p.StatusLine | None = None) -> None:
        self.lines = list(lines)
        self.pinned = pinned
        self._invalidate()

    def _text(self, cols: int) -> list[str]:
        messages = [("! " if s.level is not p.Level.INFO else "") + s.message for s in self.lines]
        if self.pinned is None:
            return wrap_lines(messages, cols)[-self.max_rows :]
        first = "! " + self.pinned.message
        if len(first) > cols:
            first = first[: max(0, cols - 3)] + "..."
        rest = wrap_lines(messages, cols)[-(self.max_rows - 1) :] if self.max_rows > 1 else []
        return [first, *rest]

    def rows(self, size: tuple[int], focus: bool = False) -> int:
        return max(1, len(self._text(size[0])))

    def render(self, size: Size, focus: bool = False) -> urwid.Canvas:
        cols = size[0] if size else 80
        lines = self._text(cols) or [""]
        shown = [*self.lines, *([self.pinned] if self.pinned else [])]
        worst = max((s.level for s in shown), key=_LEVEL_ORDER.index, default=p.Level.INFO)
        attr = {p.Level.ERROR: Attr.ERROR, p.Level.WARNING: Attr.WARNING}.get(worst, Attr.STATUS)
        return urwid.Text((attr.value, "\n".join(lines)), wrap="clip").render((cols,))


_LEVEL_ORDER = [p.Level.INFO, p.Level.WARNING, p.Level.ERROR]


class MenuView(urwid.Frame[urwid.Widget, urwid.Widget, urwid.Widget]):  # type: ignore[type-var]
    """Title line, the entry list, and a footer: countdown, status area and a key hint."""

    HINT = keys.hint(
        keys.Command.BOOT, keys.Command.EDIT, keys.Command.INFO, keys.Command.SYSINFO, keys.Command.RESCAN,
        keys.Command.LOG, keys.Command.SHELL, keys.Command.HELP, keys.Command.BACK,
    )  # fmt: skip

    def __init__(self, glyphs: Glyphs, title: str = "bootmenu") -> None:
        self.glyphs = glyphs
        self.menu = MenuList(glyphs)
        self.title = urwid.Text((Attr.TITLE.value, title), wrap="clip")
        self.countdown = urwid.Text("", wrap="clip")
        self.status = StatusArea()
        self.hint = urwid.Text((Attr.HINT.value, self.HINT), wrap="clip")
        self.rule_top = urwid.Divider(glyphs.hline)
        footer = urwid.Pile([urwid.Divider(glyphs.hline), self.countdown, self.status, self.hint])
        super().__init__(self.menu, header=urwid.Pile([self.title, self.rule_top]), footer=footer)

    def show(self, model: MenuModel, rows: Sequence[Row], select: str | None = None) -> None:
        self.menu.set_rows(rows, select)
        self.show_status(model)
        self.show_countdown(model)

    def show_status(self, model: MenuModel) -> None:
        pinned = model.pinned()
        if not pinned:
            self.status.set_status(model.status[-2:])
            return
        # Settings warnings stay on the first status line; the newest messages below it.
        more = f" (+{len(pinned) - 1} more: l)" if len(pinned) > 1 else ""
        warning = p.StatusLine(p.Level.WARNING, f"settings{more}: {pinned[0]}")
        self.status.set_status(model.status[-2:], pinned=warning)

    def show_countdown(self, model: MenuModel) -> None:
        text = model.countdown_text()
        if not model.connected:
            # Before the first hello the daemon is starting (the payload draws the menu before it listens).
            text = "Waiting for the boot daemon..." if model.ever_connected else "Looking for devices..."
        if text != self.countdown.text:
            self.countdown.set_text(text)


class TextWindow(urwid.WidgetWrap[urwid.Widget]):
    """A scrollable window of text lines (details, log, help); `q`, Esc or Enter closes it."""

    def __init__(self, title: str, lines: Iterable[str], glyphs: Glyphs, on_close: Callable[[], None]) -> None:
        self.on_close = on_close
        self.walker = urwid.SimpleFocusListWalker([urwid.Text(line) for line in lines] or [urwid.Text("")])
        self.listbox = urwid.ListBox(self.walker)
        box = linebox(self.listbox, title, glyphs)
        super().__init__(box)

    def set_lines(self, lines: Iterable[str], *, follow: bool = False) -> None:
        """Replaces the text; with `follow`, scrolls to the end so the newest line is in view (a boot's progress)."""
        self.walker[:] = [urwid.Text(line) for line in lines] or [urwid.Text("")]
        if follow:
            self.listbox.set_focus(len(self.walker) - 1, coming_from="above")

    def selectable(self) -> bool:
        return True

    def keypress(self, size: Size, key: str) -> str | None:
        command = keys.command_for(key)
        if command in (keys.Command.BACK, keys.Command.BOOT) or key in ("h", "?", "i", "l"):
            self.on_close()
            return None
        if command in _LISTBOX_KEYS:
            if len(size) == 2:
                self.listbox.keypress((size[0] - 2, size[1] - 2), _LISTBOX_KEYS[command])
        elif command is keys.Command.HOME:
            self.listbox.set_focus(0)
        elif command is keys.Command.END:
            self.listbox.set_focus(len(self.walker) - 1)
        return None


class Question(urwid.WidgetWrap[urwid.Widget]):
    """A yes/no question (reboot, power off): `y` does it, `n`, `q` or Esc goes back; every other key is ignored."""

    def __init__(
        self, title: str, text: str, glyphs: Glyphs, on_yes: Callable[[], None], on_no: Callable[[], None]
    ) -> None:
        self.on_yes = on_yes
        self.on_no = on_no
        yes, no = keys.binding(keys.Command.YES), keys.binding(keys.Command.NO)
        rows: list[urwid.Widget] = [
            urwid.Text(text),
            urwid.Divider(),
            urwid.Text((Attr.HINT.value, f"{yes.label()}: yes.  {no.label()}: no, back to the menu.")),
        ]
        super().__init__(linebox(urwid.Filler(urwid.Pile(rows), valign="top"), title, glyphs))

    def selectable(self) -> bool:
        return True

    def keypress(self, size: Size, key: str) -> str | None:
        command = keys.command_for(key, dialog=True)
        if command is keys.Command.YES:
            self.on_yes()
        elif command is keys.Command.NO:
            self.on_no()
        return None  # modal: an unbound key must not reach the menu (a stray Enter must not boot)


class PasswordPrompt(urwid.WidgetWrap[urwid.Widget]):
    """Asks for the menu password (typed as `*`); Enter sends it to the daemon, which checks it, Esc gives up."""

    def __init__(
        self, title: str, glyphs: Glyphs, on_submit: Callable[[str], None], on_cancel: Callable[[], None]
    ) -> None:
        self.on_submit = on_submit
        self.on_cancel = on_cancel
        self.edit = urwid.Edit("Password: ", mask="*")
        ok, cancel = keys.binding(keys.Command.PROMPT_OK), keys.binding(keys.Command.PROMPT_CANCEL)
        rows: list[urwid.Widget] = [
            urwid.AttrMap(self.edit, Attr.EDIT.value),
            urwid.Divider(),
            urwid.Text((Attr.HINT.value, f"{ok.label()}: check it.  {cancel.label()}: back to the menu.")),
        ]
        super().__init__(linebox(urwid.Filler(urwid.Pile(rows, focus_item=0), valign="top"), title, glyphs))

    def keypress(self, size: Size, key: str) -> str | None:
        command = keys.command_for(key, prompt=True)
        if command is keys.Command.PROMPT_OK:
            answer: str = self.edit.edit_text
            self.edit.set_edit_text("")
            self.on_submit(answer)
        elif command is keys.Command.PROMPT_CANCEL:
            self.on_cancel()
        else:
            super().keypress(size, key)
        return None  # modal


class Editor(urwid.WidgetWrap[urwid.Widget]):
    """Petitboot/GRUB-style one-shot editor of a whole entry: kernel, initrds (add, remove, reorder), devicetree and
    command line. Ctrl-X boots the edit (when bootmenu.edit finds nothing wrong with it), Esc discards it. The state
    is an EntryEdit; the rows are rebuilt from it when the initrd list changes shape."""

    def __init__(
        self,
        info: p.EntryInfo,
        glyphs: Glyphs,
        on_boot: Callable[[EntryEdit], None],
        on_cancel: Callable[[], None],
        on_paths: Callable[[tuple[str, ...]], None] | None = None,
    ) -> None:
        self.info = info
        self.on_boot = on_boot
        self.on_cancel = on_cancel
        self.on_paths = on_paths  # asks the daemon which paths are missing; its answer comes to show_checked
        self.asked: tuple[str, ...] | None = None
        self.checked: p.PathsChecked | None = None
        self.walker: urwid.SimpleFocusListWalker[urwid.Widget] = urwid.SimpleFocusListWalker([])
        self.problem = urwid.Text("")
        hint = " ".join(
            f"{keys.binding(c).label().split(', ')[0]}: {text}."
            for c, text in (
                (keys.Command.EDIT_BOOT, "boot this once"),
                (keys.Command.EDIT_CANCEL, "discard"),
                (keys.Command.EDIT_ADD_INITRD, "add initrd"),
                (keys.Command.EDIT_REMOVE_INITRD, "remove it"),
                (keys.Command.EDIT_INITRD_UP, "up"),
                (keys.Command.EDIT_INITRD_DOWN, "down"),
            )
        )
        footer = urwid.Pile([urwid.Divider(), self.problem, urwid.Text((Attr.HINT.value, hint))])
        self._build(EntryEdit.of(info.entry), focus=None)
        listbox = urwid.ListBox(self.walker)  # type: ignore[arg-type]
        frame: urwid.Widget = urwid.Frame(listbox, footer=footer)
        super().__init__(linebox(frame, f"Edit: {info.entry.title}", glyphs))
        self._check()

    def _build(self, edit: EntryEdit, focus: int | None) -> None:
        """Rows for `edit`; the cursor on initrd `focus`, or on the command line (None)."""
        self.kernel = urwid.Edit("Kernel:     ", edit.kernel, wrap="clip")
        numbered = enumerate(edit.initrds, 1)
        self.initrds = [urwid.Edit(f"Initrd {n}:".ljust(12), path, wrap="clip") for n, path in numbered]
        self.devicetree = urwid.Edit("Devicetree: ", edit.devicetree, wrap="clip")
        self.edit = urwid.Edit(("edit", "linux "), edit.cmdline, multiline=False, wrap="space")
        rows: list[urwid.Widget] = [urwid.AttrMap(self.kernel, Attr.EDIT.value)]
        rows += [urwid.AttrMap(w, Attr.EDIT.value) for w in self.initrds]
        if not self.initrds:
            rows.append(
                urwid.Text(f"Initrd:     (none; {keys.binding(keys.Command.EDIT_ADD_INITRD).label()} adds one)")
            )
        rows += [
            urwid.AttrMap(self.devicetree, Attr.EDIT.value),
            urwid.Divider(),
            urwid.Text("Command line:"),
            urwid.AttrMap(self.edit, Attr.EDIT.value),
        ]
        for widget in (self.kernel, *self.initrds, self.devicetree, self.edit):
            widget.set_edit_pos(len(widget.edit_text))
        self.walker[:] = rows
        self.walker.set_focus(1 + focus if focus is not None else len(rows) - 1)

    @property
    def cmdline(self) -> str:
        text: str = self.edit.edit_text
        return text

    def state(self) -> EntryEdit:
        return EntryEdit(
            self.kernel.edit_text, tuple(w.edit_text for w in self.initrds), self.devicetree.edit_text, self.cmdline
        )

    def _focused_initrd(self) -> int | None:
        _, position = self.walker.get_focus()
        index = position - 1 if isinstance(position, int) else -1
        return index if 0 <= index < len(self.initrds) else None

    def show_checked(self, checked: p.PathsChecked) -> None:
        """The daemon's answer to on_paths; shown while the paths are still the ones asked about."""
        self.checked = checked
        self._check()

    def _check(self) -> list[str]:
        state = self.state()
        problems = state.problems()
        paths = state.paths()
        if self.on_paths is not None and paths != self.asked:
            self.asked = paths
            self.on_paths(paths)
        checked = self.checked if self.checked is not None and self.checked.paths == paths else None
        if problems:
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            self.problem.set_text((Attr.ERROR.value, f"{problems[0]}{more}"))
        elif checked is not None and checked.missing:
            where = checked.device or "the entry's device"
            self.problem.set_text((Attr.WARNING.value, f"not on {where}: {' '.join(checked.missing)}"))
        elif checked is not None and checked.remote:
            self.problem.set_text(f"URLs are fetched when booting: {' '.join(checked.remote)}")
        elif checked is not None:
            self.problem.set_text(f"All paths found on {checked.device}.")
        else:
            self.problem.set_text("Paths are on the entry's device; the daemon checks they exist when booting.")
        return problems

    def keypress(self, size: Size, key: str) -> str | None:
        command = keys.command_for(key, editor=True)
        current = self._focused_initrd()
        if command is keys.Command.EDIT_BOOT:
            if not self._check():
                self.on_boot(self.state())
        elif command is keys.Command.EDIT_CANCEL:
            self.on_cancel()
        elif command is keys.Command.EDIT_ADD_INITRD:
            self._build(*self.state().add_initrd(current))
        elif command is keys.Command.EDIT_REMOVE_INITRD and current is not None:
            edit, focus = self.state().remove_initrd(current)
            self._build(edit, focus)
        elif command in (keys.Command.EDIT_INITRD_UP, keys.Command.EDIT_INITRD_DOWN) and current is not None:
            self._build(*self.state().move_initrd(current, -1 if command is keys.Command.EDIT_INITRD_UP else 1))
        elif command is None:
            super().keypress(size, key)
        if command is not keys.Command.EDIT_BOOT:
            self._check()
        return None  # the editor is modal: no key reaches the menu below


def info_lines(info: p.EntryInfo, device: p.DeviceInfo | None, *, config_timeout_used: bool = False) -> list[str]:
    e = info.entry
    lines = [
        f"Title:    {e.title}",
        f"Kernel:   {e.kernel}",
        f"Initrds:  {' '.join(e.initrds) or '(none)'}",
        f"Cmdline:  {e.cmdline or '(empty)'}",
    ]
    if e.devicetree:
        lines.append(f"DTB:      {e.devicetree}")
    where = f"{e.config}:{e.line}" if e.line else e.config
    lines.append(f"Source:   {where} ({e.format})")
    lines.append(f"Device:   {device.header() if device else e.device}")
    if e.config_device and e.config_device != e.device:
        lines.append(f"Config on {e.config_device}, files on {e.device or '?'}")
    if e.submenu:
        lines.append(f"Submenu:  {' > '.join(e.submenu)}")
    if e.version:
        lines.append(f"Version:  {e.version}")
    if e.unresolved:
        lines.append(f"Waiting for: {e.unresolved}")
    if info.config_timeout is not None or info.timeout_style:
        asked = []
        if info.config_timeout is not None:
            asked.append("wait for the user" if info.config_timeout < 0 else f"timeout {info.config_timeout:g} s")
        if info.timeout_style:
            asked.append(f"menu style {info.timeout_style}")
        used = "used for autoboot" if config_timeout_used else "not used: the firmware's countdown governs"
        lines.append(f"Config:   {', '.join(asked)} ({used})")
    if e.warnings:
        lines.append("")
        lines.append("Warnings:")
        lines.extend(f"  {w}" for w in e.warnings)
    return lines


def help_lines(extra: str = "") -> list[str]:
    out: list[str] = []
    for left, right in keys.help_lines():
        if right:
            out.append(f"  {left:<14} {right}")
        else:
            out.extend([left] if not out else ["", left])
    if extra:
        out.extend(["", extra])
    return out


# Longest window title: an 80-column screen less the popup margins, borders and title padding. urwid would cut a
# longer one itself, with a Unicode ellipsis an ASCII terminal cannot show.
MAX_TITLE = 66


def linebox(body: urwid.Widget, title: str, glyphs: Glyphs) -> urwid.Widget:
    g = glyphs
    if len(title) > MAX_TITLE:
        title = title[: MAX_TITLE - len(g.ellipsis)] + g.ellipsis
    return urwid.LineBox(
        body, title, tlcorner=g.tl, tline=g.hline, lline=g.vline, trcorner=g.tr,
        blcorner=g.bl, rline=g.vline, bline=g.hline, brcorner=g.br,
    )  # fmt: skip


def popup(body: urwid.Widget, below: urwid.Widget, *, height_percent: int = 80) -> urwid.Widget:
    overlay: urwid.Widget = urwid.Overlay(
        body, below, align="center", width=("relative", 94), valign="middle", height=("relative", height_percent)
    )
    return overlay
