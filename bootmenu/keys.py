"""The menu's key table, as data: every binding with its keys, help text and category.

Widgets never compare key names themselves; they ask `is_command_key(Command.BOOT, key)`, and the help screen is
generated from this table, so the two cannot disagree. Keys follow GRUB's menu and editor (Enter, `e`, Ctrl-X, Esc)
and Petitboot's (`i`, `x`, `h`/`?`). Key names are urwid's ("enter", "page down", "ctrl x").
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass


class Category(enum.StrEnum):
    MOVE = "Moving"
    BOOT = "Booting"
    VIEW = "Information"
    LEAVE = "Leaving"
    EDIT = "Editor"
    DIALOG = "Questions"
    PROMPT = "Password"


# Bindings of these categories act only inside their window (the editor, a question, the password prompt).
_MODAL = frozenset({Category.EDIT, Category.DIALOG, Category.PROMPT})


class Command(enum.StrEnum):
    UP = "up"
    DOWN = "down"
    PAGE_UP = "page-up"
    PAGE_DOWN = "page-down"
    HOME = "home"
    END = "end"
    BOOT = "boot"
    OPEN = "open"
    EDIT = "edit"
    DEBUG_BOOT = "debug-boot"
    DEBUG_BOOT_INITCALLS = "debug-boot-initcalls"
    INFO = "info"
    RESCAN = "rescan"
    LOG = "log"
    SHELL = "shell"
    HELP = "help"
    BACK = "back"
    EDIT_BOOT = "edit-boot"
    EDIT_CANCEL = "edit-cancel"
    REBOOT = "reboot"
    POWER_OFF = "poweroff"
    SYSINFO = "sysinfo"
    YES = "yes"
    NO = "no"
    PROMPT_OK = "prompt-ok"
    PROMPT_CANCEL = "prompt-cancel"


@dataclass(frozen=True)
class KeyBinding:
    command: Command
    keys: tuple[str, ...]
    help: str
    category: Category

    def label(self) -> str:
        """The keys as a user types them: `Enter`, `Ctrl-X`, `PgUp`."""
        return ", ".join(_LABELS.get(k, k) for k in self.keys)


_LABELS = {
    "enter": "Enter",
    "esc": "Esc",
    "up": "Up",
    "down": "Down",
    "page up": "PgUp",
    "page down": "PgDn",
    "home": "Home",
    "end": "End",
    "ctrl x": "Ctrl-X",
    "ctrl c": "Ctrl-C",
    "right": "Right",
    "left": "Left",
}

KEY_BINDINGS: tuple[KeyBinding, ...] = (
    KeyBinding(Command.UP, ("up", "k"), "Select the previous entry", Category.MOVE),
    KeyBinding(Command.DOWN, ("down", "j"), "Select the next entry", Category.MOVE),
    KeyBinding(Command.PAGE_UP, ("page up",), "Up one screen", Category.MOVE),
    KeyBinding(Command.PAGE_DOWN, ("page down",), "Down one screen", Category.MOVE),
    KeyBinding(Command.HOME, ("home",), "First entry", Category.MOVE),
    KeyBinding(Command.END, ("end",), "Last entry", Category.MOVE),
    KeyBinding(Command.BOOT, ("enter",), "Boot the selected entry (or open the submenu)", Category.BOOT),
    KeyBinding(Command.OPEN, ("right",), "Open the selected submenu (never boots)", Category.MOVE),
    KeyBinding(Command.EDIT, ("e",), "Edit the command line for one boot", Category.BOOT),
    KeyBinding(
        Command.DEBUG_BOOT,
        ("d",),
        "Debug boot: all kernel messages, early console on this one, reboot 30 s after a panic",
        Category.BOOT,
    ),
    KeyBinding(Command.DEBUG_BOOT_INITCALLS, ("D",), "Debug boot with initcall_debug as well", Category.BOOT),
    KeyBinding(Command.INFO, ("i",), "Details: kernel, initrds, command line, source, warnings", Category.VIEW),
    KeyBinding(
        Command.SYSINFO, ("s",), "System information: machine, firmware, CPUs, memory, disks, network", Category.VIEW
    ),
    KeyBinding(Command.RESCAN, ("r",), "Rescan devices and configs", Category.VIEW),
    KeyBinding(Command.LOG, ("l",), "Status log", Category.VIEW),
    KeyBinding(Command.HELP, ("h", "?"), "This help", Category.VIEW),
    KeyBinding(Command.BACK, ("q", "esc", "left"), "Leave a submenu or window (top level: quit)", Category.LEAVE),
    KeyBinding(Command.SHELL, ("x",), "Exit to a shell", Category.LEAVE),
    KeyBinding(Command.REBOOT, ("R",), "Reboot the machine (asks first)", Category.LEAVE),
    KeyBinding(Command.POWER_OFF, ("P",), "Power the machine off (asks first)", Category.LEAVE),
    KeyBinding(Command.EDIT_BOOT, ("ctrl x",), "Editor: boot the edited entry", Category.EDIT),
    KeyBinding(Command.EDIT_CANCEL, ("esc",), "Editor: discard the edit and return", Category.EDIT),
    KeyBinding(Command.YES, ("y",), "Question: yes, do it", Category.DIALOG),
    KeyBinding(Command.NO, ("n", "esc", "q"), "Question: no, back to the menu", Category.DIALOG),
    KeyBinding(Command.PROMPT_OK, ("enter",), "Password: check it and go on", Category.PROMPT),
    KeyBinding(Command.PROMPT_CANCEL, ("esc",), "Password: give up, back to the menu", Category.PROMPT),
)

_BY_COMMAND = {b.command: b for b in KEY_BINDINGS}


def binding(command: Command) -> KeyBinding:
    return _BY_COMMAND[command]


def is_command_key(command: Command, key: str) -> bool:
    return key in _BY_COMMAND[command].keys


def command_for(key: str, *, editor: bool = False, dialog: bool = False, prompt: bool = False) -> Command | None:
    """The command bound to `key` in the menu, or in the editor, a yes/no question or the password prompt."""
    if editor or dialog or prompt:
        wanted = Category.EDIT if editor else Category.DIALOG if dialog else Category.PROMPT
        return next((b.command for b in KEY_BINDINGS if b.category is wanted and key in b.keys), None)
    return next((b.command for b in KEY_BINDINGS if b.category not in _MODAL and key in b.keys), None)


def help_lines() -> Iterator[tuple[str, str]]:
    """(left, right) rows of the help screen: a category title with an empty right side, then its bindings."""
    for category in Category:
        rows = [b for b in KEY_BINDINGS if b.category is category]
        if not rows:
            continue
        yield category.value, ""
        for b in rows:
            yield b.label(), b.help


def hint(*commands: Command) -> str:
    """A one-line reminder such as `Enter=boot e=edit`, from the first key of each command."""
    return " ".join(f"{_LABELS.get(binding(c).keys[0], binding(c).keys[0])}={c.value}" for c in commands)
