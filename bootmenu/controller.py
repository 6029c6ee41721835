"""The menu controller: owns the urwid MainLoop, the popups and key dispatch; talks to the daemon via the client.

Messages from the daemon go to the model (bootmenu/model.py), which says what changed; only that part is redrawn.
Any key cancels the autoboot countdown (GRUB and Petitboot do the same) and still does what it is bound to.

`q` at the top level quits the menu on a workstation and in the demo, but not in the payload: there the menu is the
console's only program, so quitting would leave a dead screen; `x` (exit to a shell) is the way out there.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping

import urwid

from bootmenu import keys, palette, widgets
from bootmenu.client import Client, ClientError, Disconnected
from bootmenu.console import ConsoleError, ConsoleLogLevel, ConsoleSettings
from bootmenu.edit import EntryEdit
from bootmenu.model import ActionRow, Change, EntryRow, MenuModel, MenuPath, Row, SubmenuRow, sysinfo_lines
from discovery import debugboot, timeline
from discovery import protocol as p
from kexec_core.power import PowerAction

RECONNECT_INTERVAL = 1.0
# Until the first connection (the menu started before the daemon listens): the socket is tried this often, so the
# entries follow the daemon's start at once; a failed connect() is one cheap syscall.
FIRST_CONNECT_INTERVAL = 0.1
TICK = 1.0
# Seconds before the daemon's password window ends at which the menu asks again.
AUTH_MARGIN = 10.0


def _tty_name() -> str:
    """`ttyS0`: the console this menu runs on, named in the daemon's log of password answers."""
    import os

    try:
        return os.path.basename(os.ttyname(0))
    except OSError:
        return ""


class Mode(enum.StrEnum):
    """Where the menu runs: decides what `q` and `x` do."""

    HOST = "host"
    PAYLOAD = "payload"
    DEMO = "demo"


class ExitAction(enum.StrEnum):
    QUIT = "quit"
    SHELL = "shell"


class Controller:
    def __init__(
        self,
        client: Client,
        console: ConsoleSettings,
        mode: Mode = Mode.HOST,
        *,
        loglevel: ConsoleLogLevel | None = None,
        screen: urwid.BaseScreen | None = None,
        title: str = "bootmenu",
        clock: Callable[[], float] = time.monotonic,
        handoff: str | None = None,
        console_name: str = "",
    ) -> None:
        self.client = client
        # This terminal as a `console=` value (`ttyS0,115200n8`, `tty0`): sent with every boot request, so the
        # kernel booted from here talks here (discovery.consoles).
        self.handoff = handoff
        self.console = console
        self.mode = mode
        self.loglevel = loglevel
        self.glyphs = console.glyphs
        self.model = MenuModel(clock=clock)
        self.clock = clock
        self.console_name = console_name or _tty_name()
        self.unlocked_until = 0.0
        self.pending: tuple[str, Callable[[], None]] | None = None
        self.path: list[MenuPath] = [MenuPath()]
        self.view = widgets.MenuView(self.glyphs, title)
        self.root: urwid.WidgetPlaceholder[urwid.Widget] = urwid.WidgetPlaceholder(self.view)
        self.popup: urwid.Widget | None = None
        self.log_window: widgets.TextWindow | None = None
        self.boot_window: widgets.TextWindow | None = None
        self.sysinfo_window: widgets.TextWindow | None = None
        self.exit_action = ExitAction.QUIT
        self.base_title = title
        # Until the first key, the selection follows the default entry as it appears (GRUB highlights the default);
        # after it, the selection stays where the user put it.
        self.touched = False
        chosen = palette.MONO if console.mono else palette.COLOUR
        self.loop = urwid.MainLoop(
            self.root,
            palette.check(chosen),
            screen=screen,
            handle_mouse=False,
            input_filter=self._input_filter,
            unhandled_input=self._unhandled,
        )
        if console.mono and isinstance(self.loop.screen, urwid.display.raw.Screen):
            self.loop.screen.set_terminal_properties(colors=1)
        self._watching: int | None = None
        self._tick_handle: object | None = None

    # --- running ---

    def run(self, typed: bytes = b"") -> ExitAction:
        """The menu until the user leaves it; `typed`: bytes typed before it started (bootmenu/firstframe.py),
        handled as the first keys."""
        self.attach()
        if typed:
            keys_typed, _ = urwid.display.escape.process_keyqueue(list(typed), more_available=False)
            names = [k for k in keys_typed if isinstance(k, str)]
            self.loop.set_alarm_in(0, lambda *_: self.feed(names))
        if self._watching is None:
            self.view.show_countdown(self.model)  # the first frame says the menu is looking for devices
            self.loop.set_alarm_in(FIRST_CONNECT_INTERVAL, self._reconnect)
        self._set_alarm()
        self._quiet_console()
        # first-frame is stamped by bootmenu/firstframe.py when it drew (the payload), else by urwid's first draw.
        from bootmenu import firstframe

        events = ("menu-ready",) if firstframe.drawn() else ("first-frame", "menu-ready")
        timeline.after_first_call(self.loop, "draw_screen", *events)
        try:
            self.loop.run()
        finally:
            self._restore_console()
            self.client.close()
        return self.exit_action

    def feed(self, key_list: list[str]) -> None:
        """Handles keys as the running loop would (the input filter first): for tests and scripted input."""
        self.loop.process_input(self._input_filter(list(key_list), []))

    def attach(self) -> None:
        try:
            fd = self.client.fileno()
        except ClientError:
            return
        self._watching = fd
        self.loop.watch_file(fd, self.on_readable)

    def _detach(self) -> None:
        if self._watching is not None:
            self.loop.remove_watch_file(self._watching)
            self._watching = None

    def on_readable(self) -> None:
        """Applies what the daemon sent and redraws what changed."""
        try:
            messages = self.client.read()
        except (Disconnected, p.ProtocolError) as exc:
            self._lost(str(exc))
            return
        change = Change.NONE
        for message in messages:
            change |= self.model.apply(message)
            if isinstance(message, p.AuthResult):
                self._auth_result(message)
            editor = self.popup if isinstance(self.popup, widgets.Editor) else None
            if isinstance(message, p.PathsChecked) and editor is not None and editor.info.id == message.id:
                editor.show_checked(message)  # the loop redraws after this callback
            if isinstance(message, p.Hello):
                self._console_size_from(message.settings)
                self.unlocked_until = 0.0  # a new connection: the daemon has not been given the password on it
        self._refresh(change)

    def _console_size_from(self, settings: Mapping[str, object]) -> None:
        """The daemon's `console = "COLSxROWS"` setting replaces our 80x24 guess for a terminal without a size."""
        from bootmenu.console import size_override

        screen = self.loop.screen
        value = settings.get("console")
        if not self.console.guessed or not isinstance(screen, FixedSizeScreen) or not isinstance(value, str):
            return
        size = size_override(f"bootmenu.console={value}")
        if size is not None and size != screen.fixed_size:
            screen.fixed_size = size
            self.loop.screen_size = None  # the loop asks the screen again at the next draw

    def _lost(self, why: str) -> None:
        self._detach()
        self.client.close()
        self.model.connected = False
        self.model.apply(
            p.Status(p.StatusLine(p.Level.ERROR, f"lost the boot daemon ({why}); reconnecting", time.time()))
        )
        self._refresh(Change.STATUS | Change.COUNTDOWN)
        self.loop.set_alarm_in(RECONNECT_INTERVAL, self._reconnect)

    def _reconnect(self, _loop: object = None, _data: object = None) -> None:
        try:
            self.client.connect()
        except ClientError:
            interval = RECONNECT_INTERVAL if self.model.ever_connected else FIRST_CONNECT_INTERVAL
            self.loop.set_alarm_in(interval, self._reconnect)
            return
        self.attach()

    def _set_alarm(self) -> None:
        self.loop.set_alarm_in(TICK, self._tick)

    def _tick(self, _loop: object = None, _data: object = None) -> None:
        # The daemon sends countdown updates; between them the seconds are counted here.
        if self.model.countdown.remaining is not None:
            self.view.show_countdown(self.model)
        self._set_alarm()

    # --- drawing ---

    @property
    def current(self) -> MenuPath:
        return self.path[-1]

    def _refresh(self, change: Change) -> None:
        if Change.MENU in change:
            while not self.model.menu_exists(self.current):
                self.path.pop()
            rows = self.model.menu_rows(self.current)
            self.view.show(self.model, rows, select=None if self.touched else self._default_key(rows))
            self._update_title()
        if Change.STATUS in change:
            self.view.show_status(self.model)
        if Change.COUNTDOWN in change or Change.MENU in change:
            self.view.show_countdown(self.model)
        if Change.STATUS in change and self.boot_window is not None:
            self.boot_window.set_lines(self._boot_lines(), follow=True)
        if Change.LOG in change and self.log_window is not None:
            self.log_window.set_lines(self._log_lines())
        if Change.SYSINFO in change and self.sysinfo_window is not None and self.model.sysinfo is not None:
            self.sysinfo_window.set_lines(sysinfo_lines(self.model.sysinfo))

    @staticmethod
    def _default_key(rows: list[Row]) -> str | None:
        """The row to select on a fresh level: the default entry (or the submenu holding it), else the first."""
        chosen: list[EntryRow | SubmenuRow] = [r for r in rows if isinstance(r, EntryRow | SubmenuRow) and r.is_default]
        chosen = chosen or [r for r in rows if isinstance(r, EntryRow | SubmenuRow)]
        return chosen[0].key if chosen else None

    def _update_title(self) -> None:
        title = self.base_title
        if self.model.dry_run:
            title += " (dry run: nothing is booted)"
        if not self.current.is_top:
            title += " > " + " > ".join(self.current.titles)
        self.view.title.set_text((palette.Attr.TITLE.value, title))

    # --- keys ---

    def _input_filter(
        self, key_list: list[str | tuple[str, int, int, int]], _raw: list[int]
    ) -> list[str | tuple[str, int, int, int]]:
        if key_list and self.model.cancel_countdown():
            self._send(p.CancelAutoboot())
            self.view.show_countdown(self.model)
        if key_list:
            self.touched = True
            self._quiet_console()
        return key_list

    def _unhandled(self, key: str | tuple[str, int, int, int]) -> bool:
        if not isinstance(key, str) or self.popup is not None:
            return False
        command = keys.command_for(key)
        selected = self.view.menu.selected()
        row = selected.row if selected else None
        if command in (keys.Command.BOOT, keys.Command.OPEN):
            if isinstance(row, SubmenuRow):
                self.path.append(row.path)
                rows = self.model.menu_rows(self.current)
                # Open on the submenu's default entry, as GRUB does, else on its first entry.
                self.view.show(self.model, rows, select=self._default_key(rows))
                self._update_title()
            elif isinstance(row, EntryRow) and command is keys.Command.BOOT:
                default = self.model.default_entry()
                info = row.info
                if default is not None and default.id == info.id:
                    self.boot(info.id)  # the default boots without the password, as autoboot would boot it
                else:
                    self.gated("boot", "boot this entry", lambda: self.boot(info.id))
            elif isinstance(row, ActionRow) and command is keys.Command.BOOT:
                return self._unhandled(keys.binding(row.command).keys[0])
        elif command is keys.Command.EDIT and isinstance(row, EntryRow):
            entry_info = row.info
            self.gated("edit", "edit an entry", lambda: self.open_editor(entry_info))
        elif command in (keys.Command.DEBUG_BOOT, keys.Command.DEBUG_BOOT_INITCALLS) and isinstance(row, EntryRow):
            # A changed command line, so it asks for the password as the editor does.
            debug_info, initcalls = row.info, command is keys.Command.DEBUG_BOOT_INITCALLS
            self.gated("edit", "boot with debug words", lambda: self.debug_boot(debug_info, initcalls=initcalls))
        elif command is keys.Command.INFO and isinstance(row, EntryRow):
            device = self.model.devices.get(row.info.entry.device)
            self._open_popup(
                widgets.TextWindow(
                    "Details",
                    widgets.info_lines(
                        row.info, device, config_timeout_used=self.model.settings.get("timeout") == "config"
                    ),
                    self.glyphs,
                    self.close_popup,
                )
            )
        elif command in (keys.Command.INFO, keys.Command.SYSINFO):
            # `i` on anything but an entry (a submenu, an action row, an empty menu): the machine's details.
            self.open_sysinfo()
        elif command is keys.Command.RESCAN:
            self._send(p.Rescan())
        elif command is keys.Command.LOG:
            self.log_window = widgets.TextWindow("Status log", self._log_lines(), self.glyphs, self.close_popup)
            self._open_popup(self.log_window)
            self._send(p.GetLog())
        elif command is keys.Command.HELP:
            self._open_popup(
                widgets.TextWindow("Help", widgets.help_lines(self._leave_help()), self.glyphs, self.close_popup)
            )
        elif command is keys.Command.BACK:
            self.back()
        elif command is keys.Command.SHELL:
            self.gated("shell", "open a shell", self._exit_to_shell)
        elif command in (keys.Command.REBOOT, keys.Command.POWER_OFF):
            self.ask_power(PowerAction.REBOOT if command is keys.Command.REBOOT else PowerAction.POWER_OFF)
        else:
            return False
        return True

    def _leave_help(self) -> str:
        if self.mode is Mode.PAYLOAD:
            return "q does not quit here: the menu is this console's program. x opens a shell; exit returns."
        if self.mode is Mode.DEMO:
            return "This is the demo: booting only shows what would be kexec'd. q or x leaves it."
        return "q at the top level quits the menu; x exits to a shell."

    def back(self) -> None:
        if len(self.path) > 1:
            left = self.path.pop()
            self.view.show(
                self.model,
                self.model.menu_rows(self.current),
                select=f"submenu:{left.device}:{'>'.join(left.titles)}",
            )
            self._update_title()
            return
        if self.mode is Mode.PAYLOAD:
            self._note(p.Level.INFO, "x opens a shell; the menu stays on this console")
            return
        self.exit_action = ExitAction.QUIT
        raise urwid.ExitMainLoop()

    # --- actions ---

    def boot(self, entry_id: str, edited: p.Boot | None = None) -> None:
        """Boot `entry_id` as found, or as the editor's `edited` request asks."""
        # Kernel messages are wanted again from here on: the next kernel's early output, or a load error.
        self._restore_console()
        self.model.mark_boot()
        info = self.model.entry(entry_id)
        title = " > ".join((*info.entry.submenu, info.entry.title)) if info else entry_id
        self.boot_window = widgets.TextWindow(f"Boot: {title}", self._boot_lines(), self.glyphs, self.close_popup)
        self._open_popup(self.boot_window)
        self._send(edited or p.Boot(entry_id, None, self.handoff))

    def debug_boot(self, info: p.EntryInfo, *, initcalls: bool = False) -> None:
        """Boot `info` with the debug words for this console added; the boot window's plan shows the command line."""
        words = debugboot.debug_words(self.console.tty or "console", initcall=initcalls, cmdline=self.console.cmdline)
        self._note(p.Level.INFO, f"debug boot: adding {' '.join(words)}")
        self.boot(info.id, p.Boot(info.id, debugboot.with_debug(info.entry.cmdline, words), self.handoff))

    def open_sysinfo(self) -> None:
        """The system information window, filled when the daemon's answer arrives (it reads sysfs as root)."""
        lines = ["Asking the boot daemon..."] if self.model.sysinfo is None else sysinfo_lines(self.model.sysinfo)
        self.sysinfo_window = widgets.TextWindow("System information", lines, self.glyphs, self.close_popup)
        self._open_popup(self.sysinfo_window, height_percent=100)
        self._send(p.GetSysinfo())

    def ask_power(self, action: PowerAction) -> None:
        """Asks first; on `y` the daemon does it (through kexec_core's guard) and the window shows what it said."""
        title = "Reboot" if action is PowerAction.REBOOT else "Power off"

        def yes() -> None:
            self.close_popup()
            self.gated("power", action.verb, go)

        def go() -> None:
            self._restore_console()  # the kernel's last words ("reboot: Power down") belong on the screen
            self.model.mark_boot()
            self.boot_window = widgets.TextWindow(title, self._boot_lines(), self.glyphs, self.close_popup)
            self._open_popup(self.boot_window)
            self._send(p.Power(str(action)))

        question = f"{action.verb.capitalize()} now? Unsaved work on a shell of another console is lost."
        self._open_popup(widgets.Question(title, question, self.glyphs, yes, self.close_popup), height_percent=40)

    def _exit_to_shell(self) -> None:
        self.exit_action = ExitAction.SHELL
        raise urwid.ExitMainLoop()

    # --- the password: asked here, checked by the daemon ---

    def gated(self, action: str, what: str, then: Callable[[], None]) -> None:
        """Runs `then` at once when no password is set (or it was given a moment ago), else after the daemon has
        accepted the password typed now. The daemon refuses gated requests of a connection that did not give it."""
        if not self.model.settings.get("password") or self.clock() < self.unlocked_until:
            then()
            return

        def submit(answer: str) -> None:
            self.close_popup()
            self.pending = (action, then)
            self._note(p.Level.INFO, "checking the password...")
            self._send(p.Authenticate(answer, action, self.console_name))

        prompt = widgets.PasswordPrompt(f"Password to {what}", self.glyphs, submit, self.close_popup)
        self._open_popup(prompt, height_percent=40)

    def _auth_result(self, result: p.AuthResult) -> None:
        pending, self.pending = self.pending, None
        if not result.ok:
            self._note(p.Level.ERROR, result.message or "wrong password")
            return
        # A little less than the daemon's window, so the menu asks again before the daemon would refuse.
        self.unlocked_until = self.clock() + max(0.0, result.seconds - AUTH_MARGIN)
        if pending is not None and pending[0] == result.action:
            pending[1]()

    def _boot_lines(self) -> list[str]:
        """What the daemon said since the boot request: in dry run, exactly what would be kexec'd."""
        lines = [
            s.message if s.level is p.Level.INFO else f"{s.level.upper()}: {s.message}"
            for s in self.model.boot_status()
        ]
        hint = "Esc, q or Enter: back to the menu"
        return [*lines, "", hint] if lines else ["Asking the boot daemon...", "", hint]

    def open_editor(self, info: p.EntryInfo) -> None:
        def boot(edit: EntryEdit) -> None:
            self.close_popup()
            self.boot(info.id, edit.boot(info.id, info.entry, self.handoff))

        def check(paths: tuple[str, ...]) -> None:
            self._send(p.CheckPaths(info.id, paths))

        self._open_popup(widgets.Editor(info, self.glyphs, boot, self.close_popup, check), height_percent=70)

    def _open_popup(self, widget: urwid.Widget, height_percent: int = 80) -> None:
        self.popup = widget
        self.root.original_widget = widgets.popup(widget, self.view, height_percent=height_percent)

    def close_popup(self) -> None:
        self.popup = None
        self.log_window = None
        self.boot_window = None
        self.sysinfo_window = None
        self.root.original_widget = self.view

    def _log_lines(self) -> list[str]:
        lines = [f"settings  warning {w}" for w in self.model.pinned()]
        lines += [
            f"{time.strftime('%H:%M:%S', time.localtime(s.time))} {s.level:<7} {s.message}" for s in self.model.status
        ]
        if self.model.log is not None:
            lines += ["", "Daemon log:", *self.model.log]
        return lines

    def _send(self, message: p.Message) -> None:
        try:
            self.client.send(message)
        except ClientError as exc:
            self._lost(str(exc))

    def _note(self, level: p.Level, message: str) -> None:
        """A status line of the menu's own (not from the daemon)."""
        self.model.apply(p.Status(p.StatusLine(level, message, time.time())))
        self.view.show_status(self.model)

    def _quiet_console(self) -> None:
        if self.loglevel is None:
            return
        try:
            self.loglevel.lower()
        except ConsoleError as exc:
            # Not to stderr: that is the menu's own screen.
            self._note(p.Level.WARNING, f"{exc.filename}: {exc.strerror}")
            self.loglevel = None

    def _restore_console(self) -> None:
        if self.loglevel is None:
            return
        try:
            self.loglevel.restore()
        except ConsoleError as exc:
            self._note(p.Level.WARNING, f"{exc.filename}: {exc.strerror}")


class FixedSizeScreen(urwid.display.raw.Screen):
    """A terminal that cannot report its size (a serial line) or whose size the kernel command line imposes."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.fixed_size = size

    def get_cols_rows(self) -> tuple[int, int]:
        return self.fixed_size


def run_menu(client: Client, mode: Mode, *, ascii: bool | None = None, mono: bool | None = None) -> ExitAction:
    """Runs the menu on this process's terminal (stdin/stdout) until the user leaves it."""
    import os
    import sys

    from bootmenu import console

    if os.environ.get("TERM", "dumb") in ("", "dumb"):
        # A kernel console or a bare serial getty: vt100 is what every such terminal understands.
        os.environ["TERM"] = "vt100"
    settings = console.detect(sys.stdin.fileno(), ascii=ascii, mono=mono)
    screen = FixedSizeScreen(settings.size) if settings.size else urwid.display.raw.Screen()
    from bootmenu import firstframe

    # The first frame lowered the console log level already (then this restores the level it found).
    loglevel = console.ConsoleLogLevel(saved=firstframe.take_printk()) if mode is Mode.PAYLOAD else None
    title = "bootmenu demo" if mode is Mode.DEMO else "bootmenu"
    from discovery.consoles import describe_fd

    handoff = describe_fd(sys.stdin.fileno())
    controller = Controller(client, settings, mode, loglevel=loglevel, screen=screen, title=title, handoff=handoff)
    # The imports are done: urwid takes the terminal over from the first frame (bootmenu/firstframe.py).
    return controller.run(typed=firstframe.release())
