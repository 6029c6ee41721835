"""The daemon's Unix socket: many UIs at once, each gets `hello` (the whole state) and then every update.

Protocol: discovery.protocol (newline-delimited JSON). The socket is mode 0600 and a client must run as root or as
the daemon's own user (SO_PEERCRED), since a client can boot any kernel.

Whatever one client does, the daemon keeps serving the others and new ones, in bounded memory: a request line is at
most protocol.MAX_REQUEST bytes (a longer one is refused and the connection closed), a malformed request gets a
"bad request" status, and what waits to be written to a client is bounded in bytes, per client and for all clients
together. A client over its limit (it stopped reading) is disconnected with a log line; so is, when all clients
together are over theirs, the one with the most bytes waiting.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import logging
import os
import socket
import struct
from pathlib import Path

from discovery import protocol
from discovery.daemon import Daemon
from discovery.protocol import (
    Authenticate,
    AuthResult,
    Boot,
    CancelAutoboot,
    CheckPaths,
    EntryAdded,
    GetLog,
    GetSysinfo,
    Hello,
    Level,
    LogLines,
    Message,
    Power,
    Rescan,
    Status,
    StatusLine,
    Sysinfo,
)

log = logging.getLogger(__name__)

# Bytes waiting to be written to one client (its hello included) before it counts as stuck and is disconnected.
CLIENT_QUEUE_BYTES = 2 * protocol.MAX_LINE
# A hello longer than this goes as a hello without entries, then one message per entry (_hello_lines).
HELLO_BYTES = protocol.MAX_LINE // 2
# Bytes waiting for all clients together, as they are in memory: an update waiting for many clients counts once.
TOTAL_QUEUE_BYTES = 32 * 1024 * 1024
# Connected clients; one more is told so and closed. A menu per console and a few tools need far fewer.
MAX_CLIENTS = 256
# How long a leaving client may take to read its last messages before the connection is cut.
CLOSE_TIMEOUT = 2.0


class ServerError(OSError):
    """The socket cannot be created (path in use by a live daemon, permissions)."""


class Client:
    """One connection: a byte-counted queue of encoded messages and the task (`pump`) that writes them."""

    def __init__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.name = name
        self.queue: collections.deque[bytes] = collections.deque()
        self.queued = 0  # bytes in `queue` plus `writing`
        self.writing: bytes | None = None
        self.ending = False  # write what is queued, then close
        self.dropped = False  # cut off: nothing more is written
        self._wakeup = asyncio.Event()
        # The daemon's clock time until which this connection's gated requests are allowed (the password).
        self.authorized_until = 0.0
        self.authenticating = False
        self.console = ""

    def send(self, message: Message) -> None:
        try:
            data = protocol.encode(message)
        except Exception:  # a bug or MemoryError: this client loses one message, the daemon goes on
            log.exception("cannot encode a %s message for client %s", message.TYPE, self.name)
            return
        self.send_bytes(data)

    def send_bytes(self, data: bytes) -> None:
        if self.ending or self.dropped:
            return
        self.queue.append(data)
        self.queued += len(data)
        self.server.hold(data)
        self._wakeup.set()
        if self.queued > CLIENT_QUEUE_BYTES:
            self.drop(f"it stopped reading ({self.queued} bytes waiting, limit {CLIENT_QUEUE_BYTES})")
        self.server.enforce_total()

    def _release_all(self) -> None:
        for data in (*self.queue, *([self.writing] if self.writing is not None else [])):
            self.server.release(data)
        self.queue.clear()
        self.writing = None
        self.queued = 0

    def end(self) -> None:
        """Write what is queued, then close."""
        self.ending = True
        self._wakeup.set()

    def drop(self, reason: str) -> None:
        """Cut the connection now, freeing what was queued for it."""
        if self.dropped:
            return
        log.warning("disconnected client %s: %s", self.name, reason)
        self.dropped = True
        self._release_all()
        self.writer.transport.abort()
        self._wakeup.set()

    async def pump(self) -> None:
        try:
            while not self.dropped:
                if not self.queue:
                    if self.ending:
                        break
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                data = self.writing = self.queue.popleft()
                self.writer.write(data)
                await self.writer.drain()
                if not self.dropped:  # else drop() released it
                    self.writing = None
                    self.queued -= len(data)
                    self.server.release(data)
        except (ConnectionError, OSError):
            pass  # the client went away mid-write: nothing left to tell it
        finally:
            if not self.dropped:
                self._release_all()
                self.dropped = True
            self.writer.close()


def _peer(writer: asyncio.StreamWriter) -> tuple[int | None, int | None]:
    """The client's (pid, uid) from SO_PEERCRED."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None, None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    return int(pid), int(uid)


class Server:
    def __init__(self, daemon: Daemon, path: Path) -> None:
        self.daemon = daemon
        self.path = path
        self.clients: set[Client] = set()
        self.queued = 0  # distinct bytes waiting for clients
        self._held: dict[int, tuple[bytes, int]] = {}  # id(data) -> (data, how many queues hold it)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._numbers = itertools.count(1)
        daemon.listeners.append(self._broadcast)

    def _broadcast(self, message: Message) -> None:
        try:
            data = protocol.encode(message)  # once for every client: one copy of the bytes in memory
        except Exception:
            log.exception("cannot encode a %s message", message.TYPE)
            return
        for client in list(self.clients):
            client.send_bytes(data)

    def hold(self, data: bytes) -> None:
        held = self._held.get(id(data))
        if held is None:
            self.queued += len(data)
        self._held[id(data)] = (data, 1 if held is None else held[1] + 1)

    def release(self, data: bytes) -> None:
        _, count = self._held[id(data)]
        if count > 1:
            self._held[id(data)] = (data, count - 1)
        else:
            del self._held[id(data)]
            self.queued -= len(data)

    def enforce_total(self) -> None:
        """Past TOTAL_QUEUE_BYTES, cut off the clients with the most waiting until under it."""
        while self.queued > TOTAL_QUEUE_BYTES:
            worst = max(self.clients, key=lambda c: c.queued, default=None)
            if worst is None or worst.queued == 0:
                break
            worst.drop(f"clients have {self.queued} bytes waiting (limit {TOTAL_QUEUE_BYTES}); it had the most")

    async def start(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            if await _alive(self.path):
                raise ServerError(0, "another daemon is listening there", str(self.path))
            self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = os.umask(0o177)  # created 0600: no window in which others could connect
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=protocol.MAX_REQUEST, backlog=MAX_CLIENTS
            )
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
            client.end()  # its pump flushes, then closes the connection, which ends its reader
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=CLOSE_TIMEOUT)
        for client in list(self.clients):
            client.drop("the daemon is stopping")  # a client that never read its last updates
        for task in list(self._tasks):
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pid, uid = _peer(writer)
        if uid not in (0, os.geteuid()):
            log.warning("refused a client running as uid %s", uid)
            writer.close()
            return
        name = f"{next(self._numbers)} (pid {pid})"
        if len(self.clients) >= MAX_CLIENTS:
            log.warning("refused client %s: %d clients are connected already", name, len(self.clients))
            with contextlib.suppress(Exception):
                writer.write(protocol.encode(Status(StatusLine(Level.ERROR, "too many clients; try again later"))))
            writer.close()
            return
        try:
            hello = _hello_lines(self.daemon.hello())
        except Exception:  # MemoryError or a bug: this client is closed, the next one is tried afresh
            log.exception("cannot make the hello for client %s; closing it", name)
            writer.close()
            return
        client = Client(self, reader, writer, name)
        # The snapshot and the registration happen in one step of the loop, so no update falls between them.
        self.clients.add(client)
        for line in hello:
            client.send_bytes(line)
        pump = asyncio.create_task(client.pump())
        self._tasks.add(pump)
        try:
            await self._read(client)
        except Exception:  # a bug handling one client must not take the others (or the listener) down
            log.exception("serving client %s failed", name)
        finally:
            client.end()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(pump), CLOSE_TIMEOUT)
            client.drop("it did not read its last messages")  # nothing to do if the pump finished
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await pump
            self.clients.discard(client)
            self._tasks.discard(pump)

    async def _read(self, client: Client) -> None:
        reader = client.reader
        while not client.dropped:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                line = exc.partial  # end of stream; a last request without its newline still counts
                if line.strip() and not client.dropped:
                    self._handle(client, line)
                return
            except asyncio.LimitOverrunError:
                client.send(Status(StatusLine(Level.ERROR, f"bad request: longer than {protocol.MAX_REQUEST} bytes")))
                log.warning(
                    "client %s sent a request over %d bytes; closing its connection", client.name, protocol.MAX_REQUEST
                )
                return
            except ConnectionError:
                return
            if line.strip():
                self._handle(client, line)
            # One client's burst of requests must not starve the others (readuntil does not yield while it has data).
            await asyncio.sleep(0)

    def _handle(self, client: Client, line: bytes) -> None:
        try:
            message = protocol.decode(line)
        except protocol.ProtocolError as exc:
            client.send(Status(StatusLine(Level.ERROR, f"bad request: {exc}")))
            return
        self._dispatch(client, message)

    def _dispatch(self, client: Client, message: Message | None) -> None:
        daemon = self.daemon
        if isinstance(message, Authenticate):
            client.console = message.console
            if client.authenticating:  # one answer at a time per connection: no queue of guesses
                client.send(AuthResult(False, message.action, "an answer is being checked"))
            else:
                client.authenticating = True
                daemon.background(self._authenticate(client, message))
            return
        if message is not None:
            what = daemon.gate(message)
            if what is not None and client.authorized_until <= daemon.clock():
                daemon.refuse(what, client.console or "a menu")
                return
        if isinstance(message, Boot):
            daemon.background(
                daemon.boot(
                    message.id,
                    message.cmdline,
                    console=message.console,
                    kernel=message.kernel,
                    initrds=message.initrds,
                    devicetree=message.devicetree,
                )
            )
        elif isinstance(message, CancelAutoboot):
            daemon.cancel_autoboot()
        elif isinstance(message, Rescan):
            daemon.request_rescan()
        elif isinstance(message, GetLog):
            client.send(LogLines(daemon.get_log()))
        elif isinstance(message, CheckPaths):
            daemon.background(self._check_paths(client, message))
        elif isinstance(message, Power):
            daemon.background(daemon.power(message.action))
        elif isinstance(message, GetSysinfo):
            daemon.background(self._send_sysinfo(client))
        # Anything else (a newer client's message, or a server->client type) is ignored, as the protocol says.

    async def _authenticate(self, client: Client, message: Authenticate) -> None:
        try:
            result = await self.daemon.authenticate(message.password, message.action, message.console)
        finally:
            client.authenticating = False
        if result.ok:
            client.authorized_until = self.daemon.clock() + result.seconds
        client.send(result)

    async def _check_paths(self, client: Client, message: CheckPaths) -> None:
        client.send(await self.daemon.check_paths(message.id, message.paths))

    async def _send_sysinfo(self, client: Client) -> None:
        client.send(Sysinfo(await self.daemon.sysinfo()))


async def _alive(path: Path) -> bool:
    try:
        _, writer = await asyncio.open_unix_connection(str(path))
    except OSError:
        return False
    writer.close()
    return True


def _hello_lines(hello: Hello) -> list[bytes]:
    """The snapshot a new client gets: one hello line, or, when that would pass HELLO_BYTES (many entries with long
    command lines; a client refuses a line over protocol.MAX_LINE), a hello without entries followed by each entry
    in menu order, as discovery itself announces them."""
    whole = protocol.encode(hello)
    if len(whole) <= HELLO_BYTES:
        return [whole]
    lines = [protocol.encode(dataclasses.replace(hello, entries=()))]
    after: str | None = None
    for info in hello.entries:
        lines.append(protocol.encode(EntryAdded(info, after)))
        after = info.id
    return lines
