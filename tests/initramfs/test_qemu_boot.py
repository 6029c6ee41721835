"""The payload boots: the Debian kernel runs our /init, modules load by modalias, Python starts in the guest.

Kept minimal on purpose (the menu end-to-end tests build on it): `bootmenu.shell=1` gives a shell on the serial
console before the menu, which this test drives, then powers the VM off.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from initramfs.builder import BuildReport

pytestmark = [pytest.mark.qemu, pytest.mark.slow]
PROMPT = "bootmenu# "


@pytest.fixture
def vm(payload: BuildReport, kernel_image: Path, tmp_path: Path) -> Iterator[pexpect.spawn]:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is missing: `make setup` installs it")
    disk = tmp_path / "disk.img"
    subprocess.run(["truncate", "-s", "8M", str(disk)], check=True)
    argv = [
        "-accel", "tcg", "-m", "1024", "-nographic", "-serial", "stdio", "-no-reboot", "-M", "q35",
        "-monitor", f"unix:{tmp_path / 'monitor.sock'},server,nowait",
        "-device", "pcie-root-port,id=rp1,chassis=1,slot=1",
        "-kernel", str(kernel_image), "-initrd", str(payload.output),
        "-drive", f"file={disk},format=raw,if=virtio",
        "-append", "console=ttyS0 panic=-1 quiet bootmenu.shell=1",
    ]  # fmt: skip
    child = pexpect.spawn("qemu-system-x86_64", argv, timeout=240, encoding="utf-8", codec_errors="replace")
    yield child
    child.terminate(force=True)
    child.close()


def monitor(sock_path: Path, line: str) -> None:
    """One human-monitor command (the QEMU helper's QMP client does this properly; here a socket is enough)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(sock_path))
        sock.settimeout(5)
        sock.recv(4096)  # banner and prompt
        sock.sendall(line.encode() + b"\n")
        time.sleep(0.5)
        sock.recv(4096)


def command(vm: pexpect.spawn, line: str) -> str:
    vm.sendline(line)
    vm.expect_exact("__DONE__")  # the echo of the command line itself
    vm.expect_exact("__DONE__")
    out: str = vm.before
    vm.expect_exact(PROMPT)
    return out


def test_payload_boots_to_a_shell_with_python_and_modules(vm: pexpect.spawn, tmp_path: Path) -> None:
    started = time.monotonic()
    vm.expect_exact("rescue shell")
    vm.expect_exact(PROMPT)
    shell_at = time.monotonic() - started
    out = command(vm, "python3 -I -S -c 'import sys; print(\"PY\", sys.version_info[:2])'; echo __DONE__")
    assert "PY (3, 11)" in out
    python_at = time.monotonic() - started
    # Coldplug loaded virtio_pci and virtio_blk from the alias of the disk: the device node exists.
    out = command(vm, "ls /dev/vda; grep -c virtio_blk /proc/modules; echo __DONE__")
    assert "/dev/vda" in out
    assert "No such file" not in out
    # The command the init supervises starts, with its imports from bytecode.
    out = command(vm, "bootmenu --help >/dev/null && echo BOOTMENU-OK; echo __DONE__")
    assert "BOOTMENU-OK" in out
    out = command(vm, "test -e /etc/bootmenu-payload && echo MARKER-OK; echo __DONE__")
    assert "MARKER-OK" in out
    # Hotplug: a disk added now gets its driver from mdev (MODALIAS -> modprobe) and its node from devtmpfs.
    hot = tmp_path / "hot.img"
    subprocess.run(["truncate", "-s", "8M", str(hot)], check=True)
    monitor(tmp_path / "monitor.sock", f"drive_add 0 if=none,id=hot,file={hot},format=raw")
    monitor(tmp_path / "monitor.sock", "device_add virtio-blk-pci,drive=hot,bus=rp1,id=hotdisk")
    out = command(
        vm, "for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vdb ] && break; sleep 1; done; ls /dev/vdb; echo __DONE__"
    )
    assert "No such file" not in out
    print(f"\nshell after {shell_at:.1f} s, python ran after {python_at:.1f} s (QEMU TCG, wall clock)")
    vm.sendline("poweroff -f")
    vm.expect(pexpect.EOF, timeout=60)
