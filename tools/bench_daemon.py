"""Daemon figures: time from start until every entry of N directories reaches a socket client, and hello size.

Run: `.venv/bin/python -m tools.bench_daemon [N]`. Directories are copies of the bundled samples served with
`--root`-style filesystems in dry run, so the figure covers loader threads, state and the socket protocol, not disks.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from discovery import protocol
from discovery.daemon import Daemon
from discovery.fs import Filesystem
from discovery.protocol import EntryAdded, Hello
from discovery.scan import filesystem_for
from discovery.server import Server
from discovery.settings import Settings

SAMPLES = Path(__file__).resolve().parent.parent / "bootmenu" / "samples"


async def _once(roots: list[Filesystem], expected: int, sock: Path) -> tuple[float, float, int]:
    start = time.perf_counter()
    daemon = Daemon(settings=Settings(autoboot=False), mounts=None, roots=roots, dry_run=True)
    server = Server(daemon, sock)
    await server.start()
    await daemon.start()
    reader, writer = await asyncio.open_unix_connection(str(sock), limit=protocol.MAX_LINE)
    hello = protocol.decode(await reader.readline())
    assert isinstance(hello, Hello)
    seen = len(hello.entries)
    while seen < expected:
        if isinstance(protocol.decode(await reader.readline()), EntryAdded):
            seen += 1
    ready = time.perf_counter() - start
    t0 = time.perf_counter()
    late_reader, late_writer = await asyncio.open_unix_connection(str(sock), limit=protocol.MAX_LINE)
    line = await late_reader.readline()
    hello_time = time.perf_counter() - t0
    writer.close()
    late_writer.close()
    await server.stop()
    await daemon.stop()
    return ready, hello_time, len(line)


def main(argv: list[str]) -> int:
    copies = int(argv[0]) if argv else 20
    logging.basicConfig(level=logging.ERROR)  # the samples' own config warnings are not the point here
    with tempfile.TemporaryDirectory() as tmp:
        roots = []
        for n in range(copies):
            for sample in sorted(SAMPLES.iterdir()):
                dest = Path(tmp, f"{sample.name}{n}")
                shutil.copytree(sample, dest, symlinks=True)
                (dest / ".bootmenu-fs").unlink(missing_ok=True)  # distinct names, no duplicate UUIDs
                roots.append(filesystem_for(dest))
        from discovery.daemon import _default_loader
        from discovery.fs import StaticResolver

        expected = sum(len(_default_loader(fs, StaticResolver(roots)).entries) for fs in roots)
        runs = [asyncio.run(_once(roots, expected, Path(tmp, "s.sock"))) for _ in range(3)]
    ready = [r[0] for r in runs]
    print(f"{len(roots)} filesystems, {expected} entries")
    print(
        f"start -> all entries at a client: median {statistics.median(ready) * 1000:.0f} ms (runs: "
        + ", ".join(f"{r * 1000:.0f}" for r in ready)
        + ")"
    )
    print(f"hello to a late client: {statistics.median(r[1] for r in runs) * 1000:.1f} ms, {runs[0][2]} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
