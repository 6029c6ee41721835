"""The socket client: whole messages from partial reads, unknown types skipped, clear errors at the end."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest

from bootmenu.client import Client, ClientError, Disconnected
from discovery import protocol as p


def serve(path: Path) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    return listener


def test_reads_whole_messages_across_partial_writes_and_skips_unknown_types(tmp_path: Path) -> None:
    listener = serve(tmp_path / "s")
    client = Client(tmp_path / "s")
    client.connect()
    conn, _ = listener.accept()
    try:
        assert client.read() == []  # nothing yet: never blocks
        line = p.encode(p.Status(p.StatusLine(p.Level.INFO, "hello")))
        conn.sendall(line[:10])
        assert client.read() == []
        conn.sendall(line[10:] + b'{"v":1,"type":"from-the-future"}\n' + p.encode(p.Rescan())[:-1])
        assert client.read() == [p.Status(p.StatusLine(p.Level.INFO, "hello"))]
        conn.sendall(b"\n")
        assert client.read() == [p.Rescan()]
        client.send(p.Boot("e1", "ro single"))
        assert p.decode(conn.recv(4096)) == p.Boot("e1", "ro single")
        conn.sendall(b'{"v":2,"type":"status"}\n')
        with pytest.raises(p.ProtocolError, match="protocol version 2"):
            client.read()
        conn.close()
        with pytest.raises(Disconnected) as info:
            client.read()
        assert info.value.filename == str(tmp_path / "s")
    finally:
        client.close()
        listener.close()


def test_connecting_to_a_missing_daemon_names_the_socket(tmp_path: Path) -> None:
    client = Client(tmp_path / "missing.sock")
    with pytest.raises(ClientError) as info:
        client.wait_connect(0.2)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(tmp_path / "missing.sock")
    assert "cannot connect to the boot daemon" in str(info.value)


def test_a_message_over_the_line_limit_is_refused_and_one_read_is_bounded(tmp_path: Path) -> None:
    import contextlib
    import select
    import threading

    from bootmenu import client as client_module

    listener = serve(tmp_path / "s")
    client = Client(tmp_path / "s")
    client.connect()
    conn, _ = listener.accept()
    big = p.encode(p.LogLines(("x" * (p.MAX_LINE // 2),)))

    def send() -> None:
        with contextlib.suppress(OSError):  # the client gives up on the over-long line and closes
            conn.sendall(big * 5 + b"y" * (p.MAX_LINE + 10))

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    got: list[p.Message] = []

    def read_all() -> None:
        while True:
            select.select([client.fileno()], [], [], 30)  # as the menu's main loop does: read when readable
            before = len(client.buffer)
            messages = client.read()
            taken = sum(len(p.encode(m)) for m in messages) + len(client.buffer) - before
            assert taken <= client_module.READ_BYTES + 65536, "one read() takes a bounded amount"
            got.extend(messages)

    try:
        with pytest.raises(p.ProtocolError, match=f"longer than {p.MAX_LINE} bytes"):
            read_all()
        assert len(got) == 5, "every whole message before the over-long one"
    finally:
        client.close()
        conn.close()
        listener.close()
        sender.join(10)
