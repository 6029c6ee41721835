"""Console hand-off: `console=` from a tty's name and termios, and the daemon adding it to what it boots."""

from __future__ import annotations

import os
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery import consoles
from discovery.protocol import Boot, EntryAdded, ProtocolError, Status, decode, encode
from discovery.scan import filesystem_for
from discovery.settings import Settings
from tests.discovery.test_daemon import Client, bls_tree, is_entry, is_status, run, serving


@pytest.fixture
def pty() -> Iterator[int]:
    """A pseudo-terminal set to 57600 baud: a stand-in serial line with real termios (a pty keeps the speed but
    always reports 8 bits, no parity)."""
    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[4] = attrs[5] = termios.B57600
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    yield slave
    os.close(slave)
    os.close(master)


def test_line_options_come_from_termios(pty: int) -> None:
    assert consoles.line_options(termios.tcgetattr(pty)) == "57600n8"
    attrs = termios.tcgetattr(pty)
    attrs[2] = (attrs[2] & ~termios.CSIZE) | termios.CS7 | termios.PARENB | termios.PARODD
    assert consoles.line_options(attrs) == "57600o7"
    attrs[2] = (attrs[2] & ~(termios.CSIZE | termios.PARENB | termios.PARODD)) | termios.CS8
    attrs[5] = termios.B115200
    assert consoles.line_options(attrs) == "115200n8"
    attrs[2] |= termios.PARENB
    assert consoles.line_options(attrs) == "115200e8"


def test_each_kind_of_console_gets_the_kernels_syntax(pty: int) -> None:
    assert consoles.describe("ttyS0", pty) == "ttyS0,57600n8"
    assert consoles.describe("ttyAMA0", pty) == "ttyAMA0,57600n8"
    assert consoles.describe("hvc0", pty) == "hvc0", "a hypervisor console has no line settings"
    assert consoles.describe("tty1", pty) == "tty0", "from a VT: the VT in front"
    assert consoles.describe("pts/3", pty) is None
    assert consoles.describe("console", pty) is None
    assert consoles.describe_fd(pty) is None, "a pty is no console the kernel can write to"


def test_the_payloads_preferred_console_is_its_last_console_word() -> None:
    assert consoles.preferred("console=tty0 console=ttyS0,115200 quiet") == "ttyS0,115200"
    assert consoles.preferred("quiet") is None
    assert consoles.names_console("root=/dev/vda2 console=hvc0")
    assert not consoles.names_console("root=/dev/vda2 netconsole=@/,@1.2.3.4/")


def test_the_boot_request_carries_the_console_and_rejects_junk() -> None:
    boot = Boot("abc", None, "ttyS0,115200n8")
    assert decode(encode(boot)) == boot
    assert decode(encode(Boot("abc"))) == Boot("abc")
    for bad in ('"ttyS0 quiet init=/bin/sh"', "[1]", '"a,b,c"'):
        with pytest.raises(ProtocolError):
            decode(f'{{"v": 1, "type": "boot", "id": "abc", "console": {bad}}}')


async def boot_cmdline(client: Client, entry: str, console: str | None) -> tuple[str, list[str]]:
    added = await client.until(is_entry(entry))
    assert isinstance(added, EntryAdded)
    client.send(Boot(added.entry.id, console=console))
    line = await client.until(is_status("cmdline:"))
    assert isinstance(line, Status)
    await client.until(is_status("dry run"))
    notes = [m.status.message for m in client.seen if isinstance(m, Status) and "adding console=" in m.status.message]
    return line.status.message, notes


def test_a_boot_from_a_serial_menu_gets_its_console(tmp_path: Path) -> None:
    root = bls_tree(tmp_path / "vda2", "Fedora")

    async def scenario() -> None:
        async with serving(tmp_path, roots=[filesystem_for(root)]) as (_daemon, sock):
            client = await Client.connect(sock)
            await client.hello()
            cmdline, notes = await boot_cmdline(client, "Fedora", "ttyS0,115200n8")
            assert cmdline.endswith("root=LABEL=Fedora ro console=ttyS0,115200n8'"), cmdline
            assert notes == ["booted from ttyS0: adding console=ttyS0,115200n8 to the command line"]
            client.close()

    run(scenario())


def test_no_console_is_added_when_the_entry_names_one_or_the_setting_is_off(tmp_path: Path) -> None:
    root = bls_tree(tmp_path / "vda2", "Fedora")
    conf = root / "loader" / "entries" / "e0.conf"
    conf.write_text(conf.read_text().replace("options ", "options console=hvc0 "))
    other = bls_tree(tmp_path / "vdb1", "Other")

    async def scenario() -> None:
        async with serving(tmp_path, roots=[filesystem_for(root)]) as (_daemon, sock):
            client = await Client.connect(sock)
            await client.hello()
            cmdline, notes = await boot_cmdline(client, "Fedora", "ttyS0,115200n8")
            assert "console=hvc0" in cmdline
            assert "ttyS0" not in cmdline
            assert notes == []
            client.close()
        off = Settings(autoboot=False).with_cmdline("bootmenu.console_handoff=0")
        async with serving(tmp_path, roots=[filesystem_for(other)], settings=off) as (_daemon, sock):
            client = await Client.connect(sock)
            await client.hello()
            cmdline, notes = await boot_cmdline(client, "Other", "tty0")
            assert "console=" not in cmdline
            client.close()

    run(scenario())


def test_autoboot_hands_off_to_the_autoboot_console(tmp_path: Path, pty: int) -> None:
    root = bls_tree(tmp_path / "vda2", "Fedora")
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "ttyS1").symlink_to(os.ttyname(pty))

    async def scenario(settings: Settings, payload_cmdline: str) -> str:
        kwargs = {"settings": settings, "payload_cmdline": payload_cmdline, "dev": str(dev)}
        async with serving(tmp_path, roots=[filesystem_for(root)], **kwargs) as (_daemon, sock):
            client = await Client.connect(sock)
            await client.hello()
            await client.until(is_status("autoboot: booting"))
            line = await client.until(is_status("cmdline:"))
            assert isinstance(line, Status)
            client.close()
            return line.status.message

    now = Settings().with_cmdline("bootmenu.timeout=0")
    payload = "console=tty0 console=ttyS0,115200 quiet"
    assert run(scenario(now, payload)).endswith("console=ttyS0,115200'"), "default: the payload's console"
    chosen = now.with_cmdline("bootmenu.autoboot_console=ttyS1")
    assert run(scenario(chosen, payload)).endswith("console=ttyS1,57600n8'"), "the device's termios"
    none = now.with_cmdline("bootmenu.autoboot_console=none")
    assert "console=" not in run(scenario(none, payload))
    missing = now.with_cmdline("bootmenu.autoboot_console=ttyS7")
    assert "console=" not in run(scenario(missing, payload)), "a missing device: a warning, the boot goes on"


def test_a_menu_on_dev_console_is_on_the_kernels_preferred_console(
    pty: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    active = tmp_path / "active"
    active.write_text("tty0 ttyS0\n")
    monkeypatch.setattr(os, "ttyname", lambda fd: "/dev/console")
    assert consoles.describe_fd(pty, str(active)) == "ttyS0,57600n8"
    active.write_text("ttyS0 tty0\n")
    assert consoles.describe_fd(pty, str(active)) == "tty0"
    assert consoles.describe_fd(pty, str(tmp_path / "absent")) is None
