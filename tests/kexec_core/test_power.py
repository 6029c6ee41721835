"""kexec_core.power: reboot(2) behind the safety guard. The reboot boundary is always a recording fake here."""

from __future__ import annotations

import errno

import pytest

from kexec_core import guard, power, syscalls
from kexec_core.errors import ExecRefused
from kexec_core.power import PowerAction
from tests.kexec_core.conftest import FakeBackend


@pytest.fixture
def reboots(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def fake(command: int) -> int:
        calls.append(command)
        return 0

    monkeypatch.setattr(power, "backend", fake)
    return calls


@pytest.fixture
def fake_syscalls(monkeypatch: pytest.MonkeyPatch) -> FakeBackend:
    fake = FakeBackend()
    monkeypatch.setattr(syscalls, "backend", fake)
    return fake


def test_the_guard_refuses_on_a_development_machine(reboots: list[int], fake_syscalls: FakeBackend) -> None:
    assert not guard.environment().is_boot_environment, "this test must run on a host, not in the payload"
    for action in PowerAction:
        with pytest.raises(ExecRefused, match=f"refusing to {action.verb}"):
            power.perform(action, mounts=["/run/bootmenu/mnt/vda1"])
    assert reboots == []
    assert fake_syscalls.calls == [], "nothing is synced or unmounted before the guard agrees"


def test_dry_run_does_nothing_and_the_steps_name_every_call(reboots: list[int], fake_syscalls: FakeBackend) -> None:
    power.perform(PowerAction.POWER_OFF, mounts=["/a", "/a/b"], dry_run=True)
    assert reboots == []
    assert fake_syscalls.calls == []
    assert power.steps(PowerAction.POWER_OFF, ["/a", "/a/b"]) == [
        "sync()",
        "umount2('/a/b') (lazily if busy)",
        "umount2('/a') (lazily if busy)",
        "reboot(LINUX_REBOOT_CMD_POWER_OFF)",
    ]


def test_forced_in_a_test_syncs_unmounts_innermost_first_then_reboots(
    reboots: list[int], fake_syscalls: FakeBackend
) -> None:
    fake_syscalls.fail["umount2"] = errno.EBUSY  # busy: detached lazily instead
    power.perform(PowerAction.REBOOT, mounts=["/a", "/a/b"], force=True)
    assert fake_syscalls.names() == ["sync", "umount2", "umount2", "umount2", "umount2", "sync"]
    targets = [c.args["target"] for c in fake_syscalls.calls if c.name == "umount2"]
    assert targets == [b"/a/b", b"/a/b", b"/a", b"/a"]
    assert reboots == [power.LINUX_REBOOT_CMD_RESTART]


def test_a_refused_reboot_is_an_oserror_naming_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(power, "backend", lambda command: -errno.EPERM)
    with pytest.raises(OSError, match="Operation not permitted") as info:
        power.reboot(PowerAction.POWER_OFF)
    assert info.value.errno == errno.EPERM
    assert info.value.filename == "reboot(LINUX_REBOOT_CMD_POWER_OFF)"
    assert "CAP_SYS_BOOT" in str(info.value)
