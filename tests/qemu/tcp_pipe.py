"""QEMU's `guestfwd=tcp:IP:PORT-cmd:...` runs this once per guest connection, the connection on stdin/stdout: it
joins that to a server the test bound on 127.0.0.1 (`python tcp_pipe.py 127.0.0.1 PORT`). Nothing else is reached."""

from __future__ import annotations

import os
import selectors
import socket
import sys


def main() -> int:
    host, port = sys.argv[1], int(sys.argv[2])
    if host != "127.0.0.1":
        print("tcp_pipe: only 127.0.0.1", file=sys.stderr)
        return 2
    with socket.create_connection((host, port), timeout=60) as peer:
        peer.settimeout(None)
        sel = selectors.DefaultSelector()
        sel.register(0, selectors.EVENT_READ)
        sel.register(peer, selectors.EVENT_READ)
        open_ends = 2
        while open_ends:
            events = sel.select(timeout=120)
            if not events:
                break  # a stuck transfer ends with the VM, never hangs the test
            for key, _ in events:
                if key.fileobj == 0:
                    data = os.read(0, 65536)
                    if not data:
                        sel.unregister(0)
                        peer.shutdown(socket.SHUT_WR)
                        open_ends -= 1
                    else:
                        peer.sendall(data)
                else:
                    data = peer.recv(65536)
                    if not data:
                        sel.unregister(peer)
                        open_ends -= 1
                        os.close(1)
                    while data:
                        data = data[os.write(1, data) :]
    return 0


if __name__ == "__main__":
    sys.exit(main())
