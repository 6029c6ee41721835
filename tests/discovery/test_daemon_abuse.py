"""Abusive clients against a real `bootmenu daemon --dry-run --no-udev --root SAMPLES` process (issue 9 item 8).

Huge ids, malformed frames, clients that flood requests and never read, 200 clients at once: afterwards a
well-behaved client still gets `hello` and boots (dry run), and the daemon's peak RSS (VmHWM) stayed under
RSS_BOUND_MIB. The figures are printed (`pytest -s`).
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from discovery import protocol
from discovery.protocol import Boot, GetLog, Hello, Level, Message, Rescan, Status

SAMPLES = Path(__file__).resolve().parents[2] / "bootmenu" / "samples"
ROOTS = ("fedora", "ubuntu", "alpine")
# The daemon's peak resident memory after all of the abuse. An idle daemon is about 30 MiB; on top of that the
# queues may hold server.TOTAL_QUEUE_BYTES (32 MiB) and the readers' buffers 2 * MAX_REQUEST per client (32 MiB for
# server.MAX_CLIENTS), the status history and log ring under 1 MiB: about 100 MiB at worst.
RSS_BOUND_MIB = 128
WAIT = 30.0  # seconds any one condition may take on a loaded 2-core machine before the test fails
FLOODERS = 20
CONCURRENT = 200
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    socket: Path
    log: Path

    def status(self, key: str, unit: str = " kB") -> int:
        """A /proc/PID/status figure: VmHWM and VmRSS in KiB, Threads."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(rf"^{key}:\s+(\d+){unit}$", text, re.MULTILINE)
        assert match, f"no {key} in /proc/{self.proc.pid}/status"
        return int(match.group(1))

    def alive(self) -> None:
        assert self.proc.poll() is None, f"the daemon exited {self.proc.returncode}"


class Conn:
    """A plain blocking client: send requests, read messages one line at a time."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(WAIT)
        self.sock.connect(str(path))
        self.stream = self.sock.makefile("rb")

    def send(self, data: bytes | Message) -> None:
        self.sock.sendall(protocol.encode(data) if isinstance(data, Message) else data)

    def next(self) -> Message | None:
        line = self.stream.readline(protocol.MAX_LINE + 1)
        if not line:
            raise EOFError("the daemon closed the connection")
        return protocol.decode(line)

    def hello(self) -> Hello:
        message = self.next()
        assert isinstance(message, Hello), f"first message {message!r}"
        return message

    def until(self, what: str, test: Callable[[Message], bool]) -> Message:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            message = self.next()
            if message is not None and test(message):
                return message
        raise AssertionError(f"no {what} within {WAIT} s")

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


def is_status(text: str) -> Callable[[Message], bool]:
    return lambda m: isinstance(m, Status) and text in m.status.message


def _die_with_parent() -> None:
    """In the daemon, before exec: SIGKILL when this test process dies, even if it is killed itself."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    sock = tmp_path / "bootmenu.sock"
    log = tmp_path / "daemon.log"
    cmd = [sys.executable, "-m", "bootmenu", "daemon", "--no-udev", "--dry-run", "--socket", str(sock)]
    cmd += ["--log", str(log), "--cmdline", "bootmenu.timeout=off", "--root", *(str(SAMPLES / r) for r in ROOTS)]
    with (tmp_path / "daemon.out").open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (the test starts no threads)
        )
    try:
        deadline = time.monotonic() + WAIT
        while not sock.exists():
            assert proc.poll() is None, f"daemon exited {proc.returncode}: {(tmp_path / 'daemon.out').read_text()}"
            assert time.monotonic() < deadline, "the daemon never listened"
            time.sleep(0.05)
        yield Daemon(proc, sock, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_loaded(conn: Conn) -> Hello:
    """The hello, after every root's configs were read (its `NAME: N boot entries` status seen)."""
    hello = conn.hello()
    loaded = {s.message.split(":")[0] for s in hello.status if "boot entr" in s.message}
    while not loaded >= set(ROOTS):
        message = conn.until("a root's entries", is_status("boot entr"))
        assert isinstance(message, Status)
        loaded.add(message.status.message.split(":")[0])
    return hello


def read_to_end(sock: socket.socket, limit: int = 16 * protocol.MAX_LINE) -> bytes:
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while len(data) < limit:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def flood(path: Path, count: int) -> list[socket.socket]:
    """`count` clients that send requests as fast as the daemon takes them and never read; returns when the daemon
    has cut each off (its sends fail) or it stopped taking requests from all of them."""
    burst = b"".join(
        protocol.encode(m) for m in (Boot("no-such-entry-" + "x" * 200), GetLog(), Rescan(), Boot("", "y" * 1000))
    )
    burst *= 64
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.connect(str(path))
        sock.setblocking(False)
        socks.append(sock)
    poller = select.poll()
    live = {s.fileno(): s for s in socks}
    for fd in live:
        poller.register(fd, select.POLLOUT)
    deadline = time.monotonic() + WAIT
    while live and time.monotonic() < deadline:
        for fd, events in poller.poll(1000):
            sock = live[fd]
            try:
                if events & (select.POLLHUP | select.POLLERR):
                    raise ConnectionResetError
                sock.send(burst)
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                poller.unregister(fd)
                del live[fd]
    return socks


def still_connected(socks: list[socket.socket]) -> list[socket.socket]:
    """The sockets whose connection the daemon has not closed within WAIT (seen without reading from them)."""
    poller = select.poll()
    left = {s.fileno(): s for s in socks}
    for fd in left:
        poller.register(fd, select.POLLRDHUP | select.POLLHUP)
    deadline = time.monotonic() + WAIT
    while left and time.monotonic() < deadline:
        for fd, _ in poller.poll(1000):
            poller.unregister(fd)
            del left[fd]
    return list(left.values())


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_abusive_clients_cost_bounded_memory_and_never_stop_service(daemon: Daemon) -> None:
    start = time.monotonic()
    observer = Conn(daemon.socket)
    wait_loaded(observer)
    first = Conn(daemon.socket)
    hello = first.hello()
    first.close()
    assert hello.dry_run
    assert len(hello.entries) >= len(ROOTS)
    idle_kib = daemon.status("VmRSS")

    # Huge ids: the error names the id cut to a few dozen characters, for every client and in every later hello.
    giant = Conn(daemon.socket)
    giant.hello()
    giant.send(Boot("A" * 60_000))
    message = observer.until("the unknown-entry error", is_status("no boot entry"))
    assert isinstance(message, Status)
    assert message.status.level is Level.ERROR
    assert len(message.status.message) < 200, f"a status line of {len(message.status.message)} characters"
    assert "60000 characters" in message.status.message

    # An id over the request limit: refused with a reason, then the connection is closed.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        giant.sock.sendall(b'{"v": 1, "type": "boot", "id": "' + b"B" * (4 * protocol.MAX_LINE) + b'"}\n')
    rest = read_to_end(giant.sock)
    assert f"bad request: longer than {protocol.MAX_REQUEST} bytes".encode() in rest
    giant.close()

    # Malformed frames: each gets one "bad request" reply naming the problem; the connection stays usable.
    bad = Conn(daemon.socket)
    bad.hello()
    frames = {
        b"not json": "not JSON",
        b"[" * 50_000: "nested too deeply",
        b'{"v": 1, "type": "boot", "id": ' + b"9" * 5000 + b"}": "4300 digits",
        b'{"v": 1, "type": "boot", "id": "x", "cmdline": {"a": [1]}}': "cmdline: expected a string or null",
        b'{"v": 1, "type": "boot", "id": ["x"]}': "id: expected a string, got a list",
        b'{"v": 1, "type": "boot"}': "id: missing",
        b'{"v": "' + b"v" * 50_000 + b'"}': "50000 characters",
        b"\xff\xfe\x00\x80garbage": "not JSON",
        b'{"v": 1, "type": "rescan"': "not JSON",
        b"\x00" * 1000: "not JSON",
        b'"a string"': "JSON object",
    }
    for frame, reason in frames.items():
        bad.send(frame + b"\n")
        reply = bad.until("a bad-request reply", is_status("bad request"))
        assert isinstance(reply, Status)
        assert reason in reply.status.message, (frame[:40], reply.status.message[:200])
        assert len(reply.status.message) < 400, f"a reply of {len(reply.status.message)} characters"
    bad.send(Rescan())
    bad.until("the rescan the same connection asked for", is_status("rescanning devices"))
    bad.close()

    # Clients that flood requests and never read: each is cut off once too much waits for it; the rest go on.
    t0 = time.monotonic()
    flooders = flood(daemon.socket, FLOODERS)
    still = still_connected(flooders)
    flood_s = time.monotonic() - t0
    for sock in flooders:
        sock.close()
    assert not still, f"{len(still)} of {FLOODERS} non-reading flooders still connected"
    daemon.alive()
    assert "stopped reading" in daemon.log.read_text(errors="replace")

    # Half-sent requests that never end, and clients that come and go without a word: they hold nothing for long.
    stalled = [Conn(daemon.socket) for _ in range(10)]
    for conn in stalled:
        conn.send(b'{"v": 1, "type": "boot", "id": "' + b"s" * 30_000)
    for _ in range(100):
        passing = Conn(daemon.socket)
        passing.sock.shutdown(socket.SHUT_WR)  # no request at all: the daemon sends the hello and closes
        assert b"\n" in read_to_end(passing.sock)
        passing.close()

    # 200 clients at once: every one gets the whole state.
    t0 = time.monotonic()
    crowd = [Conn(daemon.socket) for _ in range(CONCURRENT)]
    try:
        for conn in crowd:
            greeting = conn.hello()
            assert len(greeting.entries) == len(hello.entries)
        crowd[0].send(Rescan())  # an update for 200 clients of which none reads
    finally:
        for conn in crowd:
            conn.close()
    crowd_s = time.monotonic() - t0
    for conn in stalled:
        conn.close()

    # Afterwards: a well-behaved client is greeted, its hello is small, and it boots (dry run).
    observer.close()
    late = Conn(daemon.socket)
    greeting = late.hello()
    assert [e.id for e in greeting.entries] == [e.id for e in hello.entries]
    assert all(len(s.message) <= 4096 + 30 for s in greeting.status)
    size = len(protocol.encode(greeting))
    late.send(Boot(greeting.entries[0].id))
    late.until("the dry run report", is_status("dry run:"))
    late.close()
    daemon.alive()

    hwm_kib = daemon.status("VmHWM")
    threads = daemon.status("Threads", unit="")
    print(
        f"\nabuse: idle RSS {idle_kib / 1024:.1f} MiB, peak RSS (VmHWM) {hwm_kib / 1024:.1f} MiB "
        f"(bound {RSS_BOUND_MIB} MiB); {FLOODERS} flooders cut off in {flood_s:.1f} s; "
        f"{CONCURRENT} clients greeted in {crowd_s:.1f} s; final hello {size} bytes; {threads} threads; "
        f"total {time.monotonic() - start:.1f} s"
    )
    assert hwm_kib < RSS_BOUND_MIB * 1024
