"""The controller against a real Unix socket served by a small in-test daemon speaking the protocol."""

from __future__ import annotations

import queue
import select
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import urwid

from bootmenu.client import Client
from bootmenu.console import ConsoleLogLevel, ConsoleSettings
from bootmenu.controller import Controller, FixedSizeScreen, Mode
from discovery import protocol as p
from tests.bootmenu.menu_data import ADVANCED, hello


class FakeDaemon:
    """Accepts one client, sends `hello`, records every request, sends what the test asks."""

    def __init__(self, path: Path, first: p.Hello) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.first = first
        self.requests: queue.Queue[p.Message] = queue.Queue()
        self.conn: socket.socket | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        self.conn = conn
        conn.sendall(p.encode(self.first))
        buffer = b""
        while True:
            try:
                chunk = conn.recv(4096)
            except OSError:  # closed by the test
                return
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                message = p.decode(line)
                assert message is not None
                self.requests.put(message)

    def send(self, message: p.Message) -> None:
        assert self.conn is not None
        self.conn.sendall(p.encode(message))

    def request(self) -> p.Message:
        return self.requests.get(timeout=5)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.shutdown(socket.SHUT_RDWR)
            self.conn.close()
            self.conn = None
        self.listener.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeDaemon]:
    server = FakeDaemon(tmp_path / "daemon.sock", hello(p.Countdown("u2", 10.0)))
    yield server
    server.close()


def make_controller(path: Path, mode: Mode = Mode.HOST) -> Controller:
    client = Client(path)
    client.wait_connect(5)
    settings = ConsoleSettings(size=(80, 24), ascii=True, mono=True)
    return Controller(client, settings, mode, screen=FixedSizeScreen((80, 24)))


def pump(controller: Controller) -> None:
    """Waits for the daemon's next message and lets the controller handle it, as the loop's watch_file would."""
    ready, _, _ = select.select([controller.client.fileno()], [], [], 5)
    assert ready, "the daemon sent nothing"
    controller.on_readable()


def screen(controller: Controller) -> str:
    canvas = controller.root.render((80, 24), focus=True)
    return "\n".join(line.decode().rstrip() for line in canvas.text)


def test_menu_boots_an_edited_entry_in_a_submenu(daemon: FakeDaemon, tmp_path: Path) -> None:
    controller = make_controller(tmp_path / "daemon.sock")
    pump(controller)
    shown = screen(controller)
    assert "Booting 'Ubuntu, with Linux 6.8.0-31-generic' in 10s - any key stops" in shown
    assert "(dry run: nothing is booted)" in shown

    assert f"> * {ADVANCED} >" in shown  # before any key, the selection is on the default (in the submenu)

    controller.feed(["up"])  # any key cancels autoboot, and still moves
    assert isinstance(daemon.request(), p.CancelAutoboot)
    assert "any key stops" not in screen(controller)
    assert ">   Ubuntu\n" in screen(controller)
    controller.feed(["down"])
    assert f"> * {ADVANCED} >" in screen(controller)

    controller.feed(["right"])  # opens the submenu, selection on its default
    shown = screen(controller)
    assert f"bootmenu (dry run: nothing is booted) > {ADVANCED}" in shown
    assert "> * Ubuntu, with Linux 6.8.0-31-generic" in shown

    controller.feed(["right"])  # on an entry: nothing; an arrow never boots (the next request is the edit's)
    controller.feed(["e", *" single", "ctrl x"])
    boot = daemon.request()
    assert boot == p.Boot("u2", "ro quiet single")
    assert "Asking the boot daemon..." in screen(controller)
    daemon.send(p.Status(p.StatusLine(p.Level.INFO, "cmdline: 'ro quiet single'")))
    daemon.send(p.Status(p.StatusLine(p.Level.INFO, "dry run: would be loaded and booted now; back to the menu")))
    pump(controller)
    shown = screen(controller)
    assert "cmdline: 'ro quiet single'" in shown
    assert f"Boot: {ADVANCED} > Ubuntu, with Linux 6.8.0-31... " in shown  # cut to fit 80 columns

    controller.feed(["esc", "q"])  # close the window, leave the submenu
    assert f"> * {ADVANCED} >" in screen(controller)
    with pytest.raises(urwid.ExitMainLoop):
        controller.feed(["q"])


def test_rescan_log_and_help_are_requests_or_windows(daemon: FakeDaemon, tmp_path: Path) -> None:
    controller = make_controller(tmp_path / "daemon.sock")
    pump(controller)
    controller.feed(["r"])
    assert isinstance(daemon.request(), p.CancelAutoboot)
    assert isinstance(daemon.request(), p.Rescan)
    controller.feed(["l"])
    assert isinstance(daemon.request(), p.GetLog)
    daemon.send(p.LogLines(("daemon started", "vda2: mounted read-only")))
    pump(controller)
    assert "vda2: mounted read-only" in screen(controller)
    controller.feed(["esc", "?"])
    assert "Enter          Boot the selected entry (or open the submenu)" in screen(controller)
    controller.feed(["end"])
    assert "q at the top level quits the menu" in screen(controller)


def test_payload_q_does_not_quit_and_lost_daemon_is_reported(daemon: FakeDaemon, tmp_path: Path) -> None:
    controller = make_controller(tmp_path / "daemon.sock", Mode.PAYLOAD)
    pump(controller)
    controller.feed(["q"])
    assert "x opens a shell" in screen(controller)
    with pytest.raises(urwid.ExitMainLoop):
        controller.feed(["x"])
    assert controller.exit_action == "shell"
    daemon.close()
    pump(controller)
    assert "lost the boot daemon" in screen(controller)
    assert "Waiting for the boot daemon..." in screen(controller)


def test_live_updates_keep_the_selection(daemon: FakeDaemon, tmp_path: Path) -> None:
    controller = make_controller(tmp_path / "daemon.sock")
    pump(controller)
    controller.feed(["end"])
    assert "> Fedora Linux (0-rescue)" in screen(controller).replace(">   ", "> ")
    daemon.send(p.DeviceUpdated(p.DeviceInfo("sda1", kind="usb", fstype="vfat", label="STICK")))
    daemon.send(p.EntryRemoved("u1"))
    pump(controller)
    shown = screen(controller)
    assert '[Usb: sda1 vfat "STICK"]' in shown
    assert "Ubuntu\n" not in shown
    assert ">   Fedora Linux (0-rescue)" in shown


def test_selection_follows_the_default_as_it_appears_until_the_first_key(tmp_path: Path) -> None:
    first = hello()
    server = FakeDaemon(tmp_path / "late.sock", p.Hello(devices=first.devices, entries=first.entries[3:]))
    try:
        controller = make_controller(tmp_path / "late.sock")
        pump(controller)
        assert ">   Fedora Linux (6.11.4-301.fc41.x86_64)" in screen(controller)
        previous = "f2"
        for info in first.entries[:3]:  # the Ubuntu disk's entries arrive later, the default among them
            server.send(p.EntryAdded(info, after=previous))
            previous = info.id
        pump(controller)
        while controller.client.fileno() in select.select([controller.client.fileno()], [], [], 0.2)[0]:
            controller.on_readable()
        assert f"> * {ADVANCED} >" in screen(controller)
        controller.feed(["down"])
        assert ">   Fedora Linux (6.11.4-301.fc41.x86_64)" in screen(controller)
        server.send(p.EntryAdded(p.EntryInfo("u9", first.entries[1].entry.replace(title="Another default")), None))
        pump(controller)
        assert ">   Fedora Linux (6.11.4-301.fc41.x86_64)" in screen(controller)  # the user's choice stays
    finally:
        server.close()


def test_serial_console_takes_the_daemons_size_and_reports_printk_trouble_on_screen(tmp_path: Path) -> None:
    server = FakeDaemon(tmp_path / "s.sock", p.Hello(settings={"console": "100x30"}))
    try:
        client = Client(tmp_path / "s.sock")
        client.wait_connect(5)
        guessed = ConsoleSettings(size=(80, 24), ascii=True, mono=True, guessed=True)
        # A short path: the status line shortens a long one (xdist's tmp paths are), and the test reads the whole one.
        short = Path(tempfile.mkdtemp(prefix="bm-"))
        short.rmdir()
        printk = ConsoleLogLevel(short / "no-printk")
        controller = Controller(client, guessed, Mode.PAYLOAD, loglevel=printk, screen=FixedSizeScreen((80, 24)))
        pump(controller)
        assert controller.loop.screen.get_cols_rows() == (100, 30)
        controller.feed(["down"])
        shown = " ".join(screen(controller).split())
        assert f"! {short / 'no-printk'}: cannot read console log level: No such file or directory" in shown
    finally:
        server.close()


def test_debug_boot_keys_add_the_debug_words_for_this_console(daemon: FakeDaemon, tmp_path: Path) -> None:
    client = Client(tmp_path / "daemon.sock")
    client.wait_connect(5)
    settings = ConsoleSettings(
        size=(80, 24), ascii=True, mono=True, tty="ttyS1", cmdline="console=ttyS1,9600 bootmenu.x=1"
    )
    controller = Controller(client, settings, Mode.HOST, screen=FixedSizeScreen((80, 24)))
    pump(controller)
    controller.feed(["right"])  # into the submenu, on its default entry (command line "ro quiet")
    assert isinstance(daemon.request(), p.CancelAutoboot)
    controller.feed(["d"])
    boot = daemon.request()
    assert isinstance(boot, p.Boot)
    assert boot.id == "u2"
    words = (boot.cmdline or "").split()
    assert "quiet" not in words
    assert words[:1] == ["ro"]
    assert words[1:] == ["ignore_loglevel", *words[2:-1], "panic=30"]
    assert "initcall_debug" not in words
    controller.feed(["esc", "D"])
    again = daemon.request()
    assert isinstance(again, p.Boot)
    assert (again.cmdline or "").split()[-1] == "initcall_debug"
    # The help screen lists both keys, from the key table.
    controller.feed(["esc", "h"])
    assert "Debug boot with initcall_debug" in screen(controller)


def test_a_boot_request_names_the_console_the_menu_runs_on(daemon: FakeDaemon, tmp_path: Path) -> None:
    client = Client(tmp_path / "daemon.sock")
    client.wait_connect(5)
    settings = ConsoleSettings(size=(80, 24), ascii=True, mono=True)
    controller = Controller(client, settings, Mode.PAYLOAD, screen=FixedSizeScreen((80, 24)), handoff="ttyS0,115200n8")
    pump(controller)
    controller.feed(["up"])
    assert isinstance(daemon.request(), p.CancelAutoboot)
    controller.feed(["enter"])
    assert daemon.request() == p.Boot("u1", None, "ttyS0,115200n8")
