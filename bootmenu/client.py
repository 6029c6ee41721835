"""The menu's side of the daemon socket: connect, read newline-delimited JSON messages, send requests.

Reads never block: the socket sits in the urwid loop (`watch_file(client.fileno(), ...)`) and `read()` returns the
complete messages that have arrived. Requests are a few hundred bytes and the daemon reads them at once, so they are
sent with a blocking `sendall` bounded by a timeout.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
from pathlib import Path

from discovery import protocol as p

SEND_TIMEOUT = 5.0
# Bytes one read() takes from the socket at most (more than the longest message, so one always completes).
READ_BYTES = 2 * p.MAX_LINE


class ClientError(OSError):
    """The daemon socket failed; names the socket path and the errno."""


class Disconnected(ClientError):
    """The daemon closed the connection (it exited or restarts)."""


class Client:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock: socket.socket | None = None
        self.buffer = b""

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(str(self.path))
        except OSError as exc:
            sock.close()
            raise ClientError(exc.errno, f"cannot connect to the boot daemon: {exc.strerror}", str(self.path)) from exc
        # A kernel-level send timeout: Python's own socket timeout would also make recv() wait before MSG_DONTWAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(SEND_TIMEOUT), 0))
        self.sock = sock
        self.buffer = b""

    def wait_connect(self, timeout: float, interval: float = 0.05) -> None:
        """Connects, retrying while the socket does not exist yet or refuses (the daemon is starting)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.connect()
                return
            except ClientError as exc:
                if exc.errno not in (errno.ENOENT, errno.ECONNREFUSED) or time.monotonic() >= deadline:
                    raise
            time.sleep(interval)

    def fileno(self) -> int:
        if self.sock is None:
            raise ClientError(errno.ENOTCONN, "not connected", str(self.path))
        return self.sock.fileno()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def read(self) -> list[p.Message]:
        """The messages that arrived; raises Disconnected at end of stream, ProtocolError on a bad line."""
        if self.sock is None:
            raise Disconnected(errno.ENOTCONN, "not connected", str(self.path))
        too_long = p.ProtocolError(f"{self.path}: a message longer than {p.MAX_LINE} bytes")
        if len(self.buffer) > p.MAX_LINE:
            raise too_long
        eof = False
        chunks = [self.buffer]
        size = tail = len(self.buffer)  # `tail`: bytes since the last newline (only new bytes are searched)
        # One call takes at most READ_BYTES, and stops at a line over the limit, so a daemon that sends without pause
        # cannot hold the menu here; the socket stays readable and the main loop calls again.
        while size < READ_BYTES and tail <= p.MAX_LINE:
            try:
                chunk = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                raise Disconnected(exc.errno, f"daemon connection failed: {exc.strerror}", str(self.path)) from exc
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
            size += len(chunk)
            newline = chunk.rfind(b"\n")
            tail = tail + len(chunk) if newline < 0 else len(chunk) - newline - 1
        if len(chunks) == 1 and not eof:
            return []  # nothing new: what is buffered holds no complete line
        messages = []
        *lines, self.buffer = b"".join(chunks).split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            message = p.decode(line)  # an unknown type (a newer daemon) decodes to None
            if message is not None:
                messages.append(message)
        if len(self.buffer) > p.MAX_LINE and not messages:
            raise too_long  # with messages: they first, the error on the next call
        if eof and not messages:
            raise Disconnected(errno.ECONNRESET, "the boot daemon closed the connection", str(self.path))
        return messages

    def send(self, message: p.Message) -> None:
        if self.sock is None:
            raise Disconnected(errno.ENOTCONN, "not connected", str(self.path))
        try:
            self.sock.sendall(p.encode(message))
        except OSError as exc:
            raise Disconnected(
                exc.errno or errno.EPIPE, f"cannot send to the boot daemon: {exc}", str(self.path)
            ) from exc
