"""The daemon's Unix socket: many UIs at once, each gets `hello` (the whole state) and then every update.

Protocol: discovery.protocol (newline-delimited JSON). The socket is mode 0600 and a client must run as root or as
the daemon's own user (SO_PEERCRED), since a client can boot any kernel. A client that does not read its updates is
dropped instead of growing the daemon's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from pathlib import Path

from discovery import protocol
from discovery.daemon import Daemon
from discovery.protocol import Boot, CancelAutoboot, GetLog, Level, LogLines, Message, Rescan, Status, StatusLine

log = logging.getLogger(__name__)

# Updates queued for one client before it counts as stuck.
MAX_QUEUED = 10000


class ServerError(OSError):
    """The socket cannot be created (path in use by a live daemon, permissions)."""


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def send(self, message: Message) -> None:
        if self.queue.qsize() >= MAX_QUEUED:
            log.warning("a client stopped reading; dropping it")
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(protocol.encode(message))

    async def pump(self) -> None:
        while True:
            data = await self.queue.get()
            if data is None:
                break
            self.writer.write(data)
            await self.writer.drain()
        self.writer.close()


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class Server:
    def __init__(self, daemon: Daemon, path: Path) -> None:
        self.daemon = daemon
        self.path = path
        self.clients: set[Client] = set()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        daemon.listeners.append(self._broadcast)

    def _broadcast(self, message: Message) -> None:
        for client in list(self.clients):
            client.send(message)

    async def start(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            if await _alive(self.path):
                raise ServerError(0, "another daemon is listening there", str(self.path))
            self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = os.umask(0o177)  # created 0600: no window in which others could connect
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=protocol.MAX_LINE)
        except OSError as exc:
            raise ServerError(exc.errno, exc.strerror, str(self.path)) from None
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        log.info("serving on %s", self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for client in list(self.clients):
            client.queue.put_nowait(None)  # its pump flushes, then closes the connection, which ends its reader
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        for task in list(self._tasks):
            task.cancel()  # a client that never read its last updates

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        uid = _peer_uid(writer)
        if uid not in (0, os.geteuid()):
            log.warning("refused a client running as uid %s", uid)
            writer.close()
            return
        client = Client(reader, writer)
        # The snapshot and the registration happen in one step of the loop, so no update falls between them.
        client.send(self.daemon.hello())
        self.clients.add(client)
        pump = asyncio.create_task(client.pump())
        self._tasks.add(pump)
        try:
            await self._read(client)
        finally:
            self.clients.discard(client)
            client.queue.put_nowait(None)
            # A client gone mid-write (reset) or a pump cancelled at exit: nothing left to tell it.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await pump
            self._tasks.discard(pump)

    async def _read(self, client: Client) -> None:
        while True:
            try:
                line = await client.reader.readline()
            except (ValueError, asyncio.LimitOverrunError, ConnectionError):
                return  # an over-long line: drop the connection
            if not line:
                return
            if not line.strip():
                continue
            try:
                message = protocol.decode(line)
            except protocol.ProtocolError as exc:
                client.send(Status(StatusLine(Level.ERROR, f"bad request: {exc}")))
                continue
            self._dispatch(client, message)

    def _dispatch(self, client: Client, message: Message | None) -> None:
        daemon = self.daemon
        if isinstance(message, Boot):
            daemon.background(daemon.boot(message.id, message.cmdline, console=message.console))
        elif isinstance(message, CancelAutoboot):
            daemon.cancel_autoboot()
        elif isinstance(message, Rescan):
            daemon.background(daemon.rescan())
        elif isinstance(message, GetLog):
            client.send(LogLines(daemon.get_log()))
        # Anything else (a newer client's message, or a server->client type) is ignored, as the protocol says.


async def _alive(path: Path) -> bool:
    try:
        _, writer = await asyncio.open_unix_connection(str(path))
    except OSError:
        return False
    writer.close()
    return True
