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
