"""The menu password: the hash format, and a real daemon (dry run) that refuses every gated request without it.

Gated: booting an edited entry, booting anything but the default, reboot and power off (the UI also asks before the
editor and the shell). Autoboot of the default needs none. The hash never appears in the protocol or the logs.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery import password, protocol
from discovery.password import PasswordError, PasswordHash
from discovery.protocol import Authenticate, AuthResult, Boot, EntryAdded, Hello, Level, Message, Power, Status
from discovery.scan import filesystem_for
from discovery.settings import Settings
from tests.discovery.test_daemon import Client, bls_tree, is_status, run, serving

SAMPLES = Path(__file__).resolve().parents[2] / "bootmenu" / "samples"
SECRET = "correct horse"
# ln=4: the same code path, without spending a second per test on a deliberately slow hash.
FAST = password.make(SECRET, ln=4)


def test_the_hash_is_salted_scrypt_and_both_implementations_agree() -> None:
    a, b = password.make(SECRET, ln=4), password.make(SECRET, ln=4)
    assert a != b, "a random salt each time"
    parsed = PasswordHash.parse(a)
    assert parsed.matches(SECRET)
    assert not parsed.matches("correct horse ")
    assert SECRET not in a
    assert "salt" not in repr(parsed)
    assert parsed.encode() not in repr(parsed)
    salt = parsed.salt
    expected = hashlib.scrypt(SECRET.encode(), salt=salt, n=16, r=8, p=1, dklen=32)
    assert password._hashlib_scrypt(SECRET.encode(), salt, n=16, r=8, p=1, dklen=32) == expected
    if password._sodium() is None:
        pytest.skip("libsodium.so.23 not installed (Debian package libsodium23)")
    assert password._sodium_scrypt(SECRET.encode(), salt, n=16, r=8, p=1, dklen=32) == expected


@pytest.mark.parametrize(
    "text",
    ["", "secret", "$scrypt$ln=30,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + "A" * 43, "$scrypt$ln=14,r=8,p=1$short$key"],
)
def test_a_malformed_hash_locks_the_gated_actions_and_is_never_quoted(text: str, tmp_path: Path) -> None:
    with pytest.raises(PasswordError):
        PasswordHash.parse(text)
    path = tmp_path / "settings.toml"
    path.write_text(f"password = {json.dumps(text)}\n")
    settings = Settings().with_file(path)
    assert settings.password is not None, "a typo must not turn the protection off"
    assert not settings.password.matches(text)
    assert not settings.password.matches("")
    (warning,) = settings.warnings
    assert "gated actions are refused until it is fixed" in warning
    if text:
        assert text not in warning


def test_the_password_is_not_a_kernel_parameter() -> None:
    settings = Settings().with_cmdline(f"quiet bootmenu.password={FAST}")
    assert settings.password is None
    (warning,) = settings.warnings
    assert "bootmenu.password: belongs in the settings file" in warning
    assert FAST not in warning


def test_settings_say_only_whether_a_password_is_set() -> None:
    settings = Settings(password=PasswordHash.parse(FAST))
    assert settings.to_json()["password"] is True
    assert FAST not in json.dumps(settings.to_json())
    assert FAST not in repr(settings)
    assert "password" not in Settings().to_json()


def _ids(hello: Hello, seen: list[Message]) -> dict[str, str]:
    infos = [*hello.entries, *(m.entry for m in seen if isinstance(m, EntryAdded))]
    return {i.entry.title: i.id for i in infos}


def test_every_gated_request_is_refused_without_the_password_and_allowed_with_it(tmp_path: Path) -> None:
    root = bls_tree(tmp_path / "vda2", "Default", "Other")
    (root / "loader" / "loader.conf").write_text("default e0.conf\n")
    settings = Settings(autoboot=False, password=PasswordHash.parse(FAST))

    async def scenario() -> None:
        async with serving(tmp_path, roots=[filesystem_for(root)], settings=settings, auth_delay=0.01) as (_d, sock):
            a, b = await Client.connect(sock), await Client.connect(sock)
            hello = await a.hello()
            await b.hello()
            assert hello.settings["password"] is True
            await a.until(is_status("vda2: 2 boot entries"))
            ids = _ids(hello, a.seen)
            gated: list[tuple[Message, str]] = [
                (Boot(ids["Other"]), "dry run: Other would be loaded"),
                (Boot(ids["Default"], cmdline="root=LABEL=Default ro single"), "dry run: Default would be loaded"),
                (Boot(ids["Default"], initrds=()), "dry run: Default would be loaded"),  # the whole-entry editor
                (Power("reboot"), "dry run: would reboot the machine"),
                (Power("poweroff"), "dry run: would power the machine off"),
            ]
            for request, _ in gated:
                a.send(request)
                await a.until(is_status("the password is needed to", Level.ERROR))
            # The default entry, unedited, needs none.
            a.send(Boot(ids["Default"]))
            await a.until(is_status("dry run: Default would be loaded"))

            a.send(Authenticate("wrong", "boot", "ttyS0"))
            await a.until(is_status("wrong password on ttyS0 to boot (1 in a row)", Level.WARNING))
            answer = await a.until(lambda m: isinstance(m, AuthResult))
            assert answer == AuthResult(False, "boot", "wrong password")
            a.send(Boot(ids["Other"]))
            await a.until(is_status("the password is needed to boot an entry other than the default"))

            a.send(Authenticate(SECRET, "boot", "ttyS0"))
            answer = await a.until(lambda m: isinstance(m, AuthResult))
            assert isinstance(answer, AuthResult)
            assert answer.ok
            assert answer.seconds > 0
            for request, done in gated:
                a.send(request)
                await a.until(is_status(done))
            # Another console has not given it.
            b.send(Power("poweroff"))
            await b.until(is_status("the password is needed to reboot or power off", Level.ERROR))
            a.close()
            b.close()

    run(scenario())


def test_autoboot_of_the_default_needs_no_password(tmp_path: Path) -> None:
    root = bls_tree(tmp_path / "vda2", "Default")
    settings = Settings(timeout=0, password=PasswordHash.parse(FAST))

    async def scenario() -> None:
        async with serving(tmp_path, roots=[filesystem_for(root)], settings=settings) as (_d, sock):
            client = await Client.connect(sock)
            await client.hello()
            await client.has_seen(is_status("dry run: Default would be loaded"))
            client.close()

    run(scenario())


Running = tuple[subprocess.Popen[str], Path, Path]


@pytest.fixture
def daemon_process(tmp_path: Path) -> Iterator[Running]:
    settings = tmp_path / "settings.toml"
    settings.write_text(f'timeout = "off"\npassword = "{FAST}"\n')
    sock_path, log = tmp_path / "bootmenu.sock", tmp_path / "daemon.log"
    cmd = [sys.executable, "-m", "bootmenu", "daemon", "--no-udev", "--dry-run", "--socket", str(sock_path)]
    cmd += ["--settings", str(settings), "--log", str(log), "--cmdline", "", "--root", str(SAMPLES / "fedora")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc, sock_path, log
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)


def test_the_hash_never_reaches_the_protocol_or_the_log(
    daemon_process: tuple[subprocess.Popen[str], Path, Path],
) -> None:
    from tests.discovery.test_daemon_cli import _connect

    proc, sock_path, log = daemon_process
    sock = _connect(sock_path, proc)
    stream = sock.makefile("rb")
    received: list[bytes] = []

    def read_until(predicate: object) -> Message:
        while True:
            line = stream.readline()
            assert line, "the daemon closed the connection"
            received.append(line)
            message = protocol.decode(line)
            if message is not None and callable(predicate) and predicate(message):
                return message

    hello = read_until(lambda m: isinstance(m, Hello))
    assert isinstance(hello, Hello)
    entry = read_until(lambda m: isinstance(m, EntryAdded) and "rescue" in m.entry.entry.title)
    assert isinstance(entry, EntryAdded)
    sock.sendall(protocol.encode(Boot(entry.entry.id, cmdline="single")))
    read_until(lambda m: isinstance(m, Status) and "the password is needed" in m.status.message)
    sock.sendall(protocol.encode(Authenticate("guess", "edit", "tty1")))
    read_until(lambda m: isinstance(m, AuthResult) and not m.ok)
    sock.sendall(protocol.encode(Authenticate(SECRET, "edit", "tty1")))
    read_until(lambda m: isinstance(m, AuthResult) and m.ok)
    sock.sendall(protocol.encode(Boot(entry.entry.id, cmdline="single")))
    read_until(lambda m: isinstance(m, Status) and "would be loaded" in m.status.message)
    sock.close()
    parsed = PasswordHash.parse(FAST)
    secrets = [FAST, password._b64encode(parsed.salt), password._b64encode(parsed.key)]
    everything = b"".join(received).decode() + log.read_text()
    assert "wrong password on tty1 to edit" in everything
    for secret in secrets:
        assert secret not in everything
    assert SECRET not in log.read_text()
    assert "guess" not in everything.replace('"password":"guess"', ""), "answers are never logged"
