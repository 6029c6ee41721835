"""Power requests to a real daemon over its socket: dry run reports the plan; otherwise the guard refuses here."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.protocol import Level, Power, Status
from discovery.scan import filesystem_for
from kexec_core import power, syscalls
from tests.discovery.test_daemon import Client, DirMounts, FakeUdev, bls_tree, fs_event, is_status, run, serving
from tests.kexec_core.conftest import FakeBackend


@pytest.fixture
def reboots(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The reboot(2) boundary: must stay empty on a host."""
    calls: list[int] = []

    def fake(command: int) -> int:
        calls.append(command)
        return 0

    monkeypatch.setattr(power, "backend", fake)
    monkeypatch.setattr(syscalls, "backend", FakeBackend())
    return calls


def test_dry_run_power_off_reports_the_plan_to_every_client(tmp_path: Path, reboots: list[int]) -> None:
    mounts = DirMounts({"/dev/vda2": bls_tree(tmp_path / "vda2", "Fedora")})
    udev = FakeUdev([fs_event("add", "/dev/vda2", uuid="1111")])

    async def scenario() -> None:
        async with serving(tmp_path, mounts=mounts, source=udev) as (_daemon, sock):
            a, b = await Client.connect(sock), await Client.connect(sock)
            await a.hello()
            await b.hello()
            await a.until(is_status("vda2: 1 boot entry"))
            a.send(Power("poweroff"))
            for client in (a, b):
                plan = await client.until(is_status("dry run: would power the machine off"))
                assert isinstance(plan, Status)
                assert "sync(), umount2(" in plan.status.message
                assert plan.status.message.endswith("reboot(LINUX_REBOOT_CMD_POWER_OFF)")
            a.send(Power("reboot"))
            await a.until(is_status("dry run: would reboot the machine"))
            assert mounts.mounted == {"/dev/vda2"}, "a dry run unmounts nothing"
            a.close()
            b.close()

    run(scenario())
    assert reboots == []


def test_without_dry_run_the_guard_refuses_and_the_daemon_keeps_serving(tmp_path: Path, reboots: list[int]) -> None:
    root = bls_tree(tmp_path / "vda2", "Fedora")

    async def scenario() -> None:
        async with serving(tmp_path, roots=[filesystem_for(root)], dry_run=False) as (_daemon, sock):
            a = await Client.connect(sock)
            await a.hello()
            a.send(Power("poweroff"))
            refused = await a.until(is_status("cannot power the machine off", Level.ERROR))
            assert isinstance(refused, Status)
            assert "does not look like the bootmenu payload" in refused.status.message
            a.send(Power("halt" * 100))
            unknown = await a.until(is_status("unknown power action", Level.ERROR))
            assert isinstance(unknown, Status)
            assert len(unknown.status.message) < 120, "client text is not echoed unbounded"
            second = await Client.connect(sock)
            await second.hello()
            a.close()
            second.close()

    run(scenario())
    assert reboots == []
