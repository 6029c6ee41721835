"""Fixtures of the end-to-end suite: the payload built once per session, the test disks, and `boot` for VMs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from initramfs.qemu import Disk, VmConfig, kernel_in, modules_in
from tests.qemu.e2e_support import (
    BASE_APPEND,
    KERNEL_CACHE,
    VM_TIMEOUT,
    E2eDisks,
    build_payload,
    make_test_disks,
    second_initrd,
)
from tests.qemu.qemu_console import SerialVm


@pytest.fixture(scope="session")
def kernel() -> Path:
    if not (KERNEL_CACHE / ".complete").exists():
        pytest.fail("no test kernel: run `make kernel` (tools/fetch-kernel) first")
    return kernel_in(KERNEL_CACHE)


@pytest.fixture(scope="session")
def payload(kernel: Path) -> Path:
    payload: Path = build_payload(modules_in(KERNEL_CACHE))
    return payload


@pytest.fixture(scope="session")
def test_disks(tmp_path_factory: pytest.TempPathFactory, kernel: Path) -> E2eDisks:
    base = tmp_path_factory.mktemp("disks")
    return make_test_disks(base, kernel, second_initrd(base))


@pytest.fixture
def boot(kernel: Path, payload: Path, test_disks: E2eDisks, tmp_path: Path) -> Iterator[Callable[..., SerialVm]]:
    """`boot("bootmenu.x=y")` starts the payload with the GRUB and BLS disks; every VM dies when the test ends."""
    vms: list[SerialVm] = []

    def start(append: str = "", hotplug_ports: int = 1) -> SerialVm:
        config = VmConfig(
            kernel=kernel,
            initrd=payload,
            append=f"{BASE_APPEND} {append}".strip(),
            disks=(Disk(test_disks.grub), Disk(test_disks.bls)),
            hotplug_ports=hotplug_ports,
        )
        vm = SerialVm(config, timeout=VM_TIMEOUT, transcript=tmp_path / f"console-{len(vms)}.log")
        vms.append(vm)
        return vm

    yield start
    for vm in vms:
        vm.close()
