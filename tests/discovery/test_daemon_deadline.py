"""Issue 9 item 7: a loader over its time limit in the daemon stops by itself (its deadline is checked inside the
loader), so its thread ends, the entries it read before stopping are served, and the job is not given up on."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import pytest

from discovery.fs import Filesystem
from discovery.protocol import DeviceState, DeviceUpdated
from tests.discovery.test_daemon import Client, is_entry, run, serving

ENTRIES = 400
LOOKUP = 0.02  # seconds per kernel lookup: 400 entries would take 8 s, twice the job timeout


class SlowDisk(Filesystem):
    """The syscall boundary of a dying USB stick: every lookup of a kernel file takes LOOKUP seconds."""

    def host_path(self, path: str) -> Path | None:
        if path.startswith("/vmlinuz"):
            time.sleep(LOOKUP)
        return super().host_path(path)


def test_a_slow_config_stops_at_its_deadline_and_its_first_entries_are_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "slow"
    (root / "boot/grub").mkdir(parents=True)
    (root / "boot/grub/grub.cfg").write_text(
        "".join(f"menuentry e{n} {{ linux /vmlinuz-{n} }}\n" for n in range(ENTRIES))
    )
    for n in range(ENTRIES):
        (root / f"vmlinuz-{n}").write_text("x")
    disk = SlowDisk(root=root, name="slow")
    caplog.set_level(logging.WARNING, logger="discovery.daemon")

    async def scenario() -> None:
        async with serving(tmp_path, roots=[disk], job_timeout=4.0) as (_daemon, sock):
            client = await Client.connect(sock)
            await client.hello()
            update = await client.until(
                lambda m: (
                    isinstance(m, DeviceUpdated)
                    and m.device.name == "slow"
                    and m.device.state is not DeviceState.PROBING
                )
            )
            assert isinstance(update, DeviceUpdated)
            # The loader finished on its own: the device is mounted with what was read, not given up on.
            assert update.device.state is DeviceState.MOUNTED, update.device.message
            await client.until(is_entry("e0"))
            for _ in range(200):  # its worker thread is gone (it returned; nothing is left running)
                if not any(t.name == "probe-slow" for t in threading.enumerate()):
                    break
                await asyncio.sleep(0.05)
            assert not any(t.name == "probe-slow" for t in threading.enumerate())
            client.close()

    run(scenario())
    assert any("not evaluated" in r.getMessage() for r in caplog.records)
