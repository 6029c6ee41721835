"""Booting the payload in QEMU: the command line, the QMP client and a VM that never outlives its `with` block.

The machine is a q35 PC with virtio-blk disks on the root complex and free `pcie-root-port`s for native PCIe hotplug
(a root port is the only q35 bus a device can be hot-added to). The accelerator is TCG unless KVM is asked for: KVM
hangs on some hosts and is not available in every CI. QMP is the QEMU Machine Protocol: newline-delimited JSON over a
Unix socket, a greeting, `qmp_capabilities`, then `{"execute": ..., "arguments": ...}` answered by `{"return": ...}`
or `{"error": {"class": ..., "desc": ...}}`, with asynchronous `{"event": ...}` messages interleaved
(docs/interop/qmp-spec in the QEMU tree).
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

QEMU_BINARY = "qemu-system-x86_64"
# The arm64 payload's machine: QEMU's `virt` board (PL011 serial ttyAMA0, a PCIe host bridge the Debian arm64
# kernel drives built in, a devicetree QEMU generates) with a Cortex-A57, the cheapest CPU for TCG to emulate
# (`max` adds pointer authentication, which TCG emulates slowly).
ARM64_QEMU_BINARY = "qemu-system-aarch64"
ARM64_MACHINE = ("-machine", "virt", "-cpu", "cortex-a57")
ARM64_APPEND = "console=ttyAMA0 panic=-1"
DEFAULT_MEMORY_MB = 1024
DEFAULT_APPEND = "console=ttyS0,115200 panic=-1"
# How long a polite QMP `quit` may take before the VM is killed.
_QUIT_GRACE_S = 3.0


class QemuError(Exception):
    """QEMU could not be started, or a QMP command failed (the message names the command)."""


class Accel(enum.StrEnum):
    """The accelerator; TCG is the default everywhere, KVM only on request."""

    TCG = "tcg"
    KVM = "kvm"

    def cpu(self) -> str:
        # `max` under TCG emulates every feature QEMU knows, which the Debian kernel's alternatives patching likes;
        # `host` is the only sensible choice under KVM.
        return "host" if self is Accel.KVM else "max"


@dataclass(frozen=True)
class Disk:
    """A raw disk image attached as virtio-blk; `snapshot` keeps the image file unchanged whatever the guest does."""

    image: Path
    serial: str = ""
    snapshot: bool = True


@dataclass(frozen=True)
class VmConfig:
    """Everything that goes on the QEMU command line."""

    kernel: Path
    initrd: Path | None = None
    append: str = DEFAULT_APPEND
    memory_mb: int = DEFAULT_MEMORY_MB
    disks: tuple[Disk, ...] = ()
    accel: Accel = Accel.TCG
    cpus: int = 1
    # Empty root ports the tests can hot-add disks into, named hotplug0, hotplug1, ...
    hotplug_ports: int = 1
    qmp_socket: Path | None = None
    binary: str = QEMU_BINARY
    # False: a guest reboot (or watchdog reset) restarts the machine, firmware and payload, as on real hardware.
    no_reboot: bool = True
    extra: tuple[str, ...] = field(default=())
    # "arm64": qemu-system-aarch64 on ARM64_MACHINE (with ARM64_QEMU_BINARY, which `binary` then defaults to).
    arch: str = "x86_64"

    def hotplug_port(self, index: int) -> str:
        if not 0 <= index < self.hotplug_ports:
            raise QemuError(f"no hotplug root port {index}: the VM has {self.hotplug_ports}")
        return f"hotplug{index}"

    def argv(self) -> list[str]:
        """The QEMU command line: serial console on stdio, no reboot (a guest reboot ends QEMU), no display."""
        arm64 = self.arch == "arm64"
        if arm64:
            binary = ARM64_QEMU_BINARY if self.binary == QEMU_BINARY else self.binary
            machine = ARM64_MACHINE if self.accel is Accel.TCG else ("-machine", "virt", "-cpu", "host")
        else:
            binary, machine = self.binary, ("-machine", "q35", "-cpu", self.accel.cpu())
        argv = [
            binary,
            "-accel",
            self.accel.value,
            *machine,
            "-smp",
            str(self.cpus),
            "-m",
            str(self.memory_mb),
            "-nographic",
            *(["-no-reboot"] if self.no_reboot else []),
            "-nodefaults",
            "-serial",
            "mon:stdio",
            "-kernel",
            str(self.kernel),
            "-append",
            self.append,
        ]
        if self.initrd is not None:
            argv += ["-initrd", str(self.initrd)]
        for index, disk in enumerate(self.disks):
            drive = f"if=none,id=disk{index},format=raw,file={_escape(str(disk.image))}"
            if disk.snapshot:
                drive += ",snapshot=on"
            device = f"virtio-blk-pci,drive=disk{index}"
            if disk.serial:
                device += f",serial={_escape(disk.serial)}"
            argv += ["-drive", drive, "-device", device]
        for index in range(self.hotplug_ports):
            # Chassis numbers must be unique per root port; slot 0 of each is where the hot-added device lands.
            argv += ["-device", f"pcie-root-port,id={self.hotplug_port(index)},chassis={index + 1},slot=0"]
        if self.qmp_socket is not None:
            argv += ["-qmp", f"unix:{self.qmp_socket},server=on,wait=off"]
        argv += list(self.extra)
        return argv


def _escape(value: str) -> str:
    """QEMU option values escape a comma by doubling it."""
    return value.replace(",", ",,")


class Qmp:
    """A minimal synchronous QMP client over a Unix socket."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                sock.close()
                if time.monotonic() > deadline:
                    raise QemuError(f"QMP socket {path}: cannot connect: {exc.strerror}") from exc
                time.sleep(0.05)
        self._sock = sock
        self._file = sock.makefile("rwb")
        greeting = self._read()
        if "QMP" not in greeting:
            raise QemuError(f"QMP socket {path}: no greeting, got {greeting!r}")
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        try:
            line = self._file.readline()
        except TimeoutError as exc:
            raise QemuError(f"QMP socket {self.path}: no answer within {self.timeout:g} s") from exc
        if not line:
            raise QemuError(f"QMP socket {self.path}: QEMU closed the connection")
        message: dict[str, Any] = json.loads(line)
        return message

    def execute(self, command: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Runs one command and returns its `return` value; raises QemuError with QEMU's description on error."""
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = dict(arguments)
        self._file.write(json.dumps(request).encode() + b"\n")
        self._file.flush()
        while True:
            answer = self._read()
            if "event" in answer:
                self.events.append(answer)
                continue
            if "error" in answer:
                error = answer["error"]
                raise QemuError(f"QMP {command}: {error.get('class', '?')}: {error.get('desc', '')}")
            return answer.get("return")

    def hotplug_disk(self, image: Path, node: str, port: str, *, read_only: bool = True) -> None:
        """Adds `image` as a raw block node and plugs a virtio-blk device for it into the root port `port`."""
        self.execute(
            "blockdev-add",
            {
                "driver": "raw",
                "node-name": node,
                "read-only": read_only,
                "file": {"driver": "file", "filename": str(image), "read-only": read_only},
            },
        )
        self.execute("device_add", {"driver": "virtio-blk-pci", "id": f"{node}-dev", "drive": node, "bus": port})

    def quit(self) -> None:
        with contextlib.suppress(QemuError, OSError):
            self.execute("quit")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
            self._sock.close()


class Vm:
    """A running QEMU; a context manager that always kills it (process group included) on exit.

    `start()` runs QEMU with the serial console on our own terminal (for `bootmenu qemu`); the tests instead pass a
    `spawn` callable (pexpect) that owns the pty. Either way a watchdog kills QEMU after `timeout` seconds.
    """

    def __init__(self, config: VmConfig, *, timeout: float | None = None) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="bootmenu-qemu-"))
        if config.qmp_socket is None:
            config = _replace_qmp(config, self._tmp / "qmp.sock")
        self.config = config
        self.timeout = timeout
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._qmp: Qmp | None = None
        self._timer: threading.Timer | None = None
        self.timed_out = False

    @property
    def qmp_socket(self) -> Path:
        assert self.config.qmp_socket is not None
        return self.config.qmp_socket

    def argv(self) -> list[str]:
        return self.config.argv()

    def start(self, *, stdio: bool = True) -> Self:
        """Starts QEMU as a child with our terminal as its serial console (or no stdio at all)."""
        binary = self.argv()[0]
        if shutil.which(binary) is None:
            package = "qemu-system-arm" if binary == ARM64_QEMU_BINARY else "qemu-system-x86"
            raise QemuError(f"{binary} not found: install {package} (`make setup`)")
        devnull = None if stdio else subprocess.DEVNULL
        self._proc = subprocess.Popen(self.argv(), stdin=devnull, stdout=devnull, stderr=devnull)
        self.attach(self._proc.pid)
        return self

    def attach(self, pid: int) -> None:
        """Adopts a QEMU started by someone else (pexpect), arming the watchdog."""
        self.pid = pid
        if self.timeout is not None:
            self._timer = threading.Timer(self.timeout, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        self.timed_out = True
        self.kill()

    def qmp(self) -> Qmp:
        if self._qmp is None:
            self._qmp = Qmp(self.qmp_socket)
        return self._qmp

    def wait(self) -> int | None:
        """Waits for QEMU to end (only for a VM started by `start()`); its exit status."""
        if self._proc is None:
            return None
        return self._proc.wait()

    def alive(self) -> bool:
        if self.pid is None:
            return False
        if self._proc is not None:
            return self._proc.poll() is None
        # A QEMU that exited but was not yet reaped by its parent (pexpect) is a zombie: gone for our purposes.
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rpartition(")")[2].split()[0] != "Z"

    def kill(self) -> None:
        """Asks QEMU to quit over QMP, then SIGKILLs it if it is still there."""
        if self._timer is not None:
            self._timer.cancel()
        if self.pid is None:
            return
        if self.alive() and not self.timed_out:
            with contextlib.suppress(QemuError, OSError):
                self.qmp().quit()
            deadline = time.monotonic() + _QUIT_GRACE_S
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()
        shutil.rmtree(self._tmp, ignore_errors=True)


def _replace_qmp(config: VmConfig, path: Path) -> VmConfig:
    from dataclasses import replace

    return replace(config, qmp_socket=path)


def kernel_in(root: Path) -> Path:
    """The newest vmlinuz under `root`/boot (the tree `make kernel` unpacks); raises QemuError if there is none."""
    images = sorted((root / "boot").glob("vmlinuz-*"))
    if not images:
        raise QemuError(f"{root}/boot: no vmlinuz-* (run `make kernel`)")
    return images[-1]


def modules_in(root: Path) -> Path:
    """The `lib/modules/<version>` directory of the tree `make kernel` unpacks."""
    trees = sorted((root / "lib" / "modules").glob("*/modules.dep"))
    if not trees:
        raise QemuError(f"{root}/lib/modules: no modules.dep (run `make kernel`)")
    return trees[-1].parent


@contextlib.contextmanager
def running(config: VmConfig, *, timeout: float | None = None, stdio: bool = True) -> Iterator[Vm]:
    """`with running(config) as vm:` starts QEMU and kills it on the way out."""
    with Vm(config, timeout=timeout) as vm:
        vm.start(stdio=stdio)
        yield vm


def disks_of(paths: Sequence[Path]) -> tuple[Disk, ...]:
    return tuple(Disk(image=p, serial=f"bootmenu{i}") for i, p in enumerate(paths))
