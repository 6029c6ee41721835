"""The daemon socket's bounds (issue 9 item 8), in process: queues by bytes, history by bytes, coalesced rescans.

The limits are lowered with monkeypatch so each case takes a fraction of a second; the real-process abuse test
(test_daemon_abuse.py) runs with the shipped ones.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from discovery import protocol, server
from discovery.daemon import STATUS_HISTORY_BYTES, STATUS_MESSAGE_CHARS, Daemon
from discovery.entry import LoadResult
from discovery.fs import Filesystem
from discovery.protocol import GetLog, Hello, Level, LogLines, Rescan, Status
from discovery.settings import Settings
from tests.discovery.test_daemon import WAIT, Client, bls_tree, is_status, run, serving


async def _raw(path: Path, rcvbuf: int = 4096) -> socket.socket:
    """A connection that is never read, with a small receive buffer so the daemon's side fills up soon."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, str(path))
    return sock


async def _closed_by_peer(sock: socket.socket) -> None:
    """Reads (now) until the daemon's end of the connection is closed."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), WAIT)
        except ConnectionResetError:
            return
        if not chunk:
            return


def test_a_client_that_stops_reading_is_cut_off_and_the_others_are_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(server, "CLIENT_QUEUE_BYTES", 256 * 1024)

    async def scenario() -> None:
        async with serving(tmp_path) as (daemon, sock):
            reader = await Client.connect(sock)
            await reader.hello()
            stuck = await _raw(sock)
            for n in range(2000):  # 2 MB of updates; the stuck client can hold a few hundred KB of them
                daemon.say(Level.INFO, f"update {n}: " + "x" * 1000)
                if n % 50 == 49:
                    await reader.until(is_status(f"update {n}:"))  # the reading client keeps up
            await _closed_by_peer(stuck)
            stuck.close()
            late = await Client.connect(sock)
            assert isinstance(await late.hello(), Hello)
            reader.close()
            late.close()

    with caplog.at_level(logging.WARNING, logger="discovery.server"):
        run(scenario())
    assert any("stopped reading" in r.getMessage() for r in caplog.records)


def test_over_the_total_the_client_with_most_waiting_is_cut_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(server, "TOTAL_QUEUE_BYTES", 512 * 1024)

    async def scenario() -> None:
        async with serving(tmp_path, log_lines=lambda: ["a log line " * 100] * 100) as (daemon, sock):
            quiet = await _raw(sock)
            greedy = await _raw(sock)
            greedy.sendall(protocol.encode(GetLog()) * 20)  # 20 replies of 100 KB, none read
            await _closed_by_peer(greedy)
            greedy.close()
            daemon.say(Level.INFO, "after")
            watcher = await Client.connect(sock)
            await watcher.hello()
            daemon.say(Level.INFO, "still serving")
            await watcher.until(is_status("still serving"))
            poller = select.poll()
            poller.register(quiet, select.POLLRDHUP | select.POLLHUP)
            assert not poller.poll(0), "the quiet non-reader stays connected: it had little waiting"
            quiet.close()
            watcher.close()

    with caplog.at_level(logging.WARNING, logger="discovery.server"):
        run(scenario())
    assert any("it had the most" in r.getMessage() for r in caplog.records)


def test_a_burst_for_many_clients_counts_once_against_the_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(server, "TOTAL_QUEUE_BYTES", 512 * 1024)

    async def scenario() -> None:
        async with serving(tmp_path) as (daemon, sock):
            clients = [await Client.connect(sock) for _ in range(20)]
            for client in clients:
                await client.hello()
            for n in range(300):  # 300 KB in one step of the loop, for 20 clients: 6 MB if counted per copy
                daemon.say(Level.INFO, f"burst {n}: " + "b" * 1000)
            for client in clients:
                await client.until(is_status("burst 299:"))
                client.close()

    with caplog.at_level(logging.WARNING, logger="discovery.server"):
        run(scenario())
    assert not [r for r in caplog.records if "disconnected" in r.getMessage()]


def test_an_over_long_request_is_refused_then_the_connection_closed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(tmp_path) as (_daemon, sock):
            client = await Client.connect(sock)
            await client.hello()
            client.writer.write(b'{"v": 1, "type": "boot", "id": "' + b"x" * (2 * protocol.MAX_REQUEST))
            error = await client.until(is_status("bad request", Level.ERROR))
            assert isinstance(error, Status)
            assert f"longer than {protocol.MAX_REQUEST} bytes" in error.status.message
            assert await asyncio.wait_for(client.reader.read(), WAIT) == b""
            again = await Client.connect(sock)
            await again.hello()
            again.close()

    run(scenario())


def test_beyond_max_clients_a_client_is_told_and_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "MAX_CLIENTS", 2)

    async def scenario() -> None:
        async with serving(tmp_path) as (_daemon, sock):
            first, second = await Client.connect(sock), await Client.connect(sock)
            await first.hello()
            await second.hello()
            third = await Client.connect(sock)
            refused = await third.next()
            assert isinstance(refused, Status)
            assert "too many clients" in refused.status.message
            assert await asyncio.wait_for(third.reader.read(), WAIT) == b""
            first.close()
            await first.writer.wait_closed()
            while True:  # the daemon notices the departure when it reads the end of stream
                fourth = await Client.connect(sock)
                message = await fourth.next()
                if isinstance(message, Hello):
                    break
                fourth.close()
            fourth.close()
            second.close()

    run(scenario())


def test_a_client_whose_hello_cannot_be_made_is_closed_and_the_next_is_greeted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with serving(tmp_path) as (daemon, sock):
            real = daemon.hello
            calls = 0

            def failing_once() -> Hello:
                nonlocal calls
                calls += 1
                if calls == 1:
                    raise MemoryError
                return real()

            monkeypatch.setattr(daemon, "hello", failing_once)
            unlucky = await Client.connect(sock)
            assert await asyncio.wait_for(unlucky.reader.read(), WAIT) == b""
            lucky = await Client.connect(sock)
            assert isinstance(await lucky.hello(), Hello)
            lucky.close()

    run(scenario())


def test_status_history_is_bounded_in_bytes_and_each_line_is_cut() -> None:
    daemon = Daemon(settings=Settings(autoboot=False), mounts=None)
    for n in range(300):
        daemon.say(Level.ERROR, f"line {n} " + "y" * 100_000)
    lines = daemon.hello().status
    assert all(len(s.message) <= STATUS_MESSAGE_CHARS + 40 for s in lines)
    assert lines[-1].message.endswith("... (100009 characters)")
    assert sum(len(s.message) for s in lines) <= STATUS_HISTORY_BYTES
    assert lines[-1].message.startswith("line 299 ")
    assert len(protocol.encode(daemon.hello())) < 2 * STATUS_HISTORY_BYTES


def test_a_flood_of_rescans_costs_two_rescans(tmp_path: Path) -> None:
    root = bls_tree(tmp_path / "vda2", "Fedora")
    gate = threading.Event()
    calls: list[str] = []

    def loader(fs: Filesystem, resolver: Any) -> LoadResult:
        calls.append(fs.name)
        if len(calls) == 2:
            gate.wait(WAIT)  # the first rescan's load is slow: every further request arrives meanwhile
        from discovery import bls

        return bls.load(fs, _context(resolver))

    async def scenario() -> None:
        from discovery.scan import filesystem_for

        async with serving(tmp_path, roots=[filesystem_for(root)], loader=loader) as (_daemon, sock):
            client = await Client.connect(sock)
            await client.hello()
            await client.until(is_status("1 boot entry"))
            client.send(Rescan())
            await client.until(is_status("rescanning devices"))
            for _ in range(50):
                client.send(Rescan())
            client.send(GetLog())  # requests are handled in order: its reply means all 50 were
            await client.until(lambda m: isinstance(m, LogLines))
            gate.set()
            await client.until(is_status("1 boot entry"))  # the first rescan
            await client.until(is_status("1 boot entry"))  # the one standing for the other 50
            client.send(Rescan())
            await client.until(is_status("1 boot entry"))
            client.close()

    run(scenario())
    assert len(calls) == 4, "the initial load, the first rescan, one for the 50 that came meanwhile, the last"


def _context(resolver: Any) -> Any:
    from discovery.fs import Platform
    from discovery.loaders import LoadContext

    return LoadContext(resolver=resolver, platform=Platform.detect())
