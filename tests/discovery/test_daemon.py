"""The daemon driven by udev-shaped events, with real socket clients (several at once).

Fakes sit only at the boundaries the host cannot provide: the udev monitor (events are the property maps udev or the
kernel would send) and mount(2) (a device's "mount" is a directory). Config loading, superblock probing, the socket
protocol and kexec_core's preflight are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from discovery import protocol
from discovery.daemon import Daemon
from discovery.devices import UEvent
from discovery.log import RingHandler
from discovery.protocol import (
    Boot,
    CancelAutoboot,
    CheckPaths,
    CountdownUpdate,
    DeviceRemoved,
    DeviceState,
    DeviceUpdated,
    EntryAdded,
    EntryRemoved,
    GetLog,
    Hello,
    Level,
    LogLines,
    Message,
    PathsChecked,
    Rescan,
    Status,
)
from discovery.server import Server
from discovery.settings import Settings

SAMPLES = Path(__file__).resolve().parents[2] / "bootmenu" / "samples" / "fedora"
KERNEL = SAMPLES / "vmlinuz-6.11.4-301.fc41.x86_64"
INITRD = SAMPLES / "initramfs-6.11.4-301.fc41.x86_64.img"
WAIT = 15.0


# --- boundaries ---


class FakeUdev:
    """The pyudev boundary: present devices for enumeration, and a pipe that wakes the loop for each new event."""

    def __init__(self, present: Sequence[UEvent] = ()) -> None:
        self.present = {e.properties["DEVNAME"]: e for e in present}
        self.pending: list[UEvent] = []
        self._r, self._w = os.pipe()

    def existing(self) -> list[UEvent]:
        return list(self.present.values())

    def fileno(self) -> int:
        return self._r

    def receive(self) -> list[UEvent]:
        os.read(self._r, 4096)
        out, self.pending = self.pending, []
        return out

    def emit(self, event: UEvent) -> None:
        if event.action == "remove":
            self.present.pop(event.properties["DEVNAME"], None)
        else:
            self.present[event.properties["DEVNAME"]] = event
        self.pending.append(event)
        os.write(self._w, b"!")

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


class DirMounts:
    """The mount(2) boundary: node -> directory; remembers what is mounted, can hang a node until released."""

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs
        self.mounted: set[str] = set()
        self.hang: dict[str, threading.Event] = {}
        self.fstypes: dict[str, str] = {}

    @contextlib.contextmanager
    def mount(self, node: str, name: str, fstype: str) -> Iterator[Path]:
        if node in self.hang:
            self.hang[node].wait(WAIT)
        if node not in self.dirs:
            raise OSError(22, "Invalid argument", node)
        self.mounted.add(node)
        self.fstypes[node] = fstype
        try:
            yield self.dirs[node]
        finally:
            self.mounted.discard(node)


def udev_event(action: str, node: str, size: int = 1 << 30, **props: str) -> UEvent:
    return UEvent(action, {"DEVNAME": node, "DEVTYPE": "partition", **props}, size)


def fs_event(action: str, node: str, fstype: str = "ext4", uuid: str = "", label: str = "", **props: str) -> UEvent:
    fields = {"ID_FS_TYPE": fstype, "ID_FS_UUID": uuid, "ID_FS_LABEL": label, "ID_FS_USAGE": "filesystem", **props}
    return UEvent(action, {"DEVNAME": node, "DEVTYPE": "partition", **fields}, 1 << 30)


def bls_tree(root: Path, *titles: str, timeout: int | None = None, kernel: Path = KERNEL) -> Path:
    """A /boot with Boot Loader Spec entries, the kernel and initrd being the sample bzImage and cpio."""
    entries = root / "loader" / "entries"
    entries.mkdir(parents=True, exist_ok=True)
    shutil.copy(kernel, root / "vmlinuz")
    shutil.copy(INITRD, root / "initrd.img")
    for n, title in enumerate(titles):
        (entries / f"e{n}.conf").write_text(
            f"title {title}\nversion 6.{n}\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=LABEL={title} ro\n"
        )
    if timeout is not None:
        (root / "loader" / "loader.conf").write_text(f"timeout {timeout}\n")
    return root


# --- running daemon and clients ---


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.seen: list[Message] = []

    @classmethod
    async def connect(cls, path: Path) -> Client:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=protocol.MAX_LINE)
        return cls(reader, writer)

    async def next(self) -> Message:
        line = await asyncio.wait_for(self.reader.readline(), WAIT)
        assert line, "the daemon closed the connection"
        message = protocol.decode(line)
        assert message is not None
        self.seen.append(message)
        return message

    async def hello(self) -> Hello:
        message = await self.next()
        assert isinstance(message, Hello), f"first message is {message!r}, not hello"
        return message

    async def until(self, match: Callable[[Message], bool]) -> Message:
        while True:
            message = await self.next()
            if match(message):
                return message

    async def has_seen(self, match: Callable[[Message], bool]) -> Message:
        """A matching message, already received or still to come (for updates whose relative order is free)."""
        for message in self.seen:
            if match(message):
                return message
        return await self.until(match)

    def send(self, message: Message) -> None:
        self.writer.write(protocol.encode(message))

    def close(self) -> None:
        self.writer.close()


async def client_with_entry(sock: Path, title: str) -> tuple[Client, EntryAdded]:
    """A client past its hello that has seen the entry `title` appear."""
    client = await Client.connect(sock)
    await client.hello()
    added = await client.until(is_entry(title))
    assert isinstance(added, EntryAdded)
    return client, added


def is_status(text: str, level: Level | None = None) -> Callable[[Message], bool]:
    return lambda m: isinstance(m, Status) and text in m.status.message and level in (None, m.status.level)


def is_entry(title: str) -> Callable[[Message], bool]:
    return lambda m: isinstance(m, EntryAdded) and m.entry.entry.title == title


def is_device(name: str, state: DeviceState) -> Callable[[Message], bool]:
    return lambda m: isinstance(m, DeviceUpdated) and m.device.name == name and m.device.state is state


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **kwargs: Any) -> AsyncIterator[tuple[Daemon, Path]]:
    kwargs.setdefault("settings", Settings(autoboot=False))
    kwargs.setdefault("mounts", None)
    kwargs.setdefault("dry_run", True)
    daemon = Daemon(**kwargs)
    server = Server(daemon, tmp_path / "bootmenu.sock")
    await server.start()
    await daemon.start()
    try:
        yield daemon, server.path
    finally:
        await server.stop()
        await daemon.stop()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


# --- tests ---


def test_hello_snapshot_then_live_updates_to_every_client(tmp_path: Path) -> None:
    mounts = DirMounts(
        {
            "/dev/vda2": bls_tree(tmp_path / "vda2", "Fedora"),
            "/dev/sdb1": bls_tree(tmp_path / "sdb1", "Rescue stick"),
        }
    )
    udev = FakeUdev([fs_event("add", "/dev/vda2", label="root", uuid="1111")])

    async def scenario() -> None:
        async with serving(tmp_path, source=udev, mounts=mounts) as (_daemon, sock):
            first = await Client.connect(sock)
            await first.hello()
            await first.until(is_entry("Fedora"))

            second = await Client.connect(sock)
            hello = await second.hello()
            assert [(d.name, d.state, d.label) for d in hello.devices] == [("vda2", DeviceState.MOUNTED, "root")]
            assert [e.entry.title for e in hello.entries] == ["Fedora"]
            assert hello.dry_run

            udev.emit(fs_event("add", "/dev/sdb1", fstype="vfat", label="STICK", ID_BUS="usb"))
            for client in (first, second):
                added = await client.until(is_entry("Rescue stick"))
                assert isinstance(added, EntryAdded)
                assert added.after == hello.entries[0].id, "the stick's entries follow the disk's"
            assert mounts.mounted == {"/dev/vda2", "/dev/sdb1"}

            udev.emit(udev_event("remove", "/dev/sdb1"))
            for client in (first, second):
                await client.until(lambda m: isinstance(m, DeviceRemoved) and m.name == "sdb1")
                assert any(isinstance(m, EntryRemoved) for m in client.seen)
            assert mounts.mounted == {"/dev/vda2"}, "a removed device is unmounted"
            first.close()
            second.close()
        assert mounts.mounted == set(), "everything is unmounted at exit"

    run(scenario())


def test_devices_that_must_not_be_mounted_are_listed_or_hidden(tmp_path: Path) -> None:
    mounts = DirMounts({})
    udev = FakeUdev(
        [
            fs_event("add", "/dev/vda3", fstype="swap", ID_FS_USAGE="other"),
            fs_event("add", "/dev/vda4", fstype="crypto_LUKS", ID_FS_USAGE="crypto"),
            fs_event("add", "/dev/sda1", fstype="linux_raid_member", ID_FS_USAGE="raid"),
            fs_event("add", "/dev/sdb1", fstype="LVM2_member", ID_FS_USAGE="raid"),
            udev_event("add", "/dev/vdc", size=0, DEVTYPE="disk"),
            udev_event("add", "/dev/sr0", size=0, DEVTYPE="disk", ID_CDROM="1"),
            udev_event("add", "/dev/vda", DEVTYPE="disk", ID_PART_TABLE_TYPE="gpt"),
            udev_event("add", "/dev/ram0", DEVTYPE="disk", size=0),
            # Kernel uevents only: a partitioned disk is known from its sysfs children.
            UEvent("add", {"DEVNAME": "/dev/nvme0n1", "DEVTYPE": "disk"}, 1 << 30, partitioned=True),
        ]
    )

    async def scenario() -> None:
        async with serving(tmp_path, source=udev, mounts=mounts) as (_daemon, sock):
            client = await Client.connect(sock)
            hello = await client.hello()
            states = {d.name: (d.state, d.message) for d in hello.devices}
            assert states == {
                "vda3": (DeviceState.IGNORED, "swap"),
                "vda4": (DeviceState.LOCKED, "encrypted (crypto_LUKS)"),
                "sda1": (DeviceState.IGNORED, "RAID/LVM member (linux_raid_member)"),
                "sdb1": (DeviceState.IGNORED, "RAID/LVM member (LVM2_member)"),
                "vdc": (DeviceState.IGNORED, "zero size"),
                "sr0": (DeviceState.IGNORED, "no medium"),
            }
            client.close()
        assert mounts.fstypes == {}, "nothing was mounted"

    run(scenario())


def _mkfs_ext4(image: Path, label: str, uuid: str) -> None:
    mkfs = shutil.which("mkfs.ext4") or "/usr/sbin/mkfs.ext4"
    with image.open("wb") as f:
        f.truncate(16 << 20)
    subprocess.run([mkfs, "-q", "-F", "-L", label, "-U", uuid, str(image)], check=True, capture_output=True)


def test_kernel_uevents_only_read_the_superblock(tmp_path: Path) -> None:
    """In the initramfs there is no udevd: the event has no ID_FS_* and the daemon probes the device itself."""
    dev = tmp_path / "dev"
    dev.mkdir()
    uuid = "5e0c2b1a-3d4f-4a6b-8c7d-9e0f1a2b3c4d"
    _mkfs_ext4(dev / "vdb1", "kroot", uuid)
    mkswap = shutil.which("mkswap") or "/usr/sbin/mkswap"
    with (dev / "vdb2").open("wb") as f:
        f.truncate(1 << 20)
    subprocess.run([mkswap, str(dev / "vdb2")], check=True, capture_output=True)
    mounts = DirMounts({str(dev / "vdb1"): bls_tree(tmp_path / "tree", "Kernel-only")})
    udev = FakeUdev()

    async def scenario() -> None:
        async with serving(tmp_path, source=udev, mounts=mounts) as (_daemon, sock):
            client = await Client.connect(sock)
            await client.hello()
            udev.emit(UEvent("add", {"DEVNAME": str(dev / "vdb1"), "DEVTYPE": "partition", "MAJOR": "252"}, 16 << 20))
            udev.emit(UEvent("add", {"DEVNAME": str(dev / "vdb2"), "DEVTYPE": "partition", "MAJOR": "252"}, 1 << 20))
            mounted = await client.until(is_device("vdb1", DeviceState.MOUNTED))
            assert isinstance(mounted, DeviceUpdated)
            assert (mounted.device.fstype, mounted.device.label, mounted.device.uuid) == ("ext4", "kroot", uuid)
            entry = await client.until(is_entry("Kernel-only"))
            assert isinstance(entry, EntryAdded)
            assert entry.entry.entry.device == "vdb1"
            swap = await client.has_seen(is_device("vdb2", DeviceState.IGNORED))
            assert isinstance(swap, DeviceUpdated)
            assert (swap.device.fstype, swap.device.message) == ("swap", "swap")
            client.close()
        assert mounts.fstypes == {str(dev / "vdb1"): "ext4"}

    run(scenario())


def test_a_hung_device_does_not_stall_the_others(tmp_path: Path) -> None:
    mounts = DirMounts({"/dev/sdc1": tmp_path / "dead", "/dev/vda2": bls_tree(tmp_path / "vda2", "Healthy")})
    (tmp_path / "dead").mkdir()
    release = threading.Event()
    mounts.hang["/dev/sdc1"] = release
    udev = FakeUdev([fs_event("add", "/dev/sdc1", fstype="vfat"), fs_event("add", "/dev/vda2")])

    async def scenario() -> None:
        async with serving(tmp_path, source=udev, mounts=mounts, job_timeout=1.0) as (_daemon, sock):
            client = await Client.connect(sock)
            await client.hello()
            await client.until(is_entry("Healthy"))
            failed = await client.until(is_device("sdc1", DeviceState.FAILED))
            assert isinstance(failed, DeviceUpdated)
            assert "no answer" in failed.device.message
            release.set()
            for _ in range(100):  # the late mount is undone when the hung call finally returns
                if "/dev/sdc1" not in mounts.mounted and "/dev/sdc1" in mounts.fstypes:
                    break
                await asyncio.sleep(0.05)
            assert "/dev/sdc1" not in mounts.mounted
            assert "/dev/sdc1" in mounts.fstypes
            client.send(Rescan())  # a failed device gets another chance
            await client.until(is_device("sdc1", DeviceState.MOUNTED))
            assert mounts.mounted == {"/dev/sdc1", "/dev/vda2"}
            client.close()

    run(scenario())


def test_dry_run_boot_reports_the_plan_to_every_client(tmp_path: Path) -> None:
    root = bls_tree(tmp_path / "vda2", "Fedora")

    async def scenario() -> None:
        from discovery.scan import filesystem_for

        async with serving(tmp_path, roots=[filesystem_for(root)]) as (daemon, sock):
            a = await Client.connect(sock)
            b = await Client.connect(sock)
            await a.hello()
            await b.hello()
            added = await a.until(is_entry("Fedora"))
            assert isinstance(added, EntryAdded)
            a.send(Boot(added.entry.id, cmdline="root=LABEL=Fedora ro single"))
            for client in (a, b):
                kernel = await client.until(is_status("kernel:"))
                assert isinstance(kernel, Status)
                assert "bzImage 6.11.4-301.fc41.x86_64" in kernel.status.message
                cmdline = await client.until(is_status("cmdline:"))
                assert isinstance(cmdline, Status)
                assert "single" in cmdline.status.message, "the edited command line is the one booted"
                await client.until(is_status("dry run"))
            assert daemon.find_entry(added.entry.id) is not None, "the menu stays"
            a.close()
            b.close()

    run(scenario())


def test_a_failing_boot_reaches_every_client_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    broken = tmp_path / "not-a-kernel"
    broken.write_text("#!/bin/sh\necho this is not a kernel\n")
    root = bls_tree(tmp_path / "vda2", "Broken", kernel=broken)

    async def scenario() -> None:
        from discovery.scan import filesystem_for

        async with serving(tmp_path, roots=[filesystem_for(root)]) as (_daemon, sock):
            a = await Client.connect(sock)
            b = await Client.connect(sock)
            await a.hello()
            await b.hello()
            added = await a.until(is_entry("Broken"))
            assert isinstance(added, EntryAdded)
            a.send(Boot(added.entry.id))
            for client in (a, b):
                error = await client.until(is_status("cannot boot", Level.ERROR))
                assert isinstance(error, Status)
                assert "not a kernel image" in error.status.message
            a.send(Boot("no-such-id"))
            await a.until(is_status("no boot entry 'no-such-id'", Level.ERROR))
            c = await Client.connect(sock)
            hello = await c.hello()
            assert [e.entry.title for e in hello.entries] == ["Broken"]
            assert any(s.level is Level.ERROR for s in hello.status), "the failure is in the status history"
            for client in (a, b, c):
                client.close()

    run(scenario())


class RecordingKexec:
    """kexec_core.boot's contract where load fails as the syscall would; records what the daemon called."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def prepare(self, kernel: Path, initrds: Sequence[Path], cmdline: str, *, devicetree: Path | None = None) -> Any:
        from kexec_core import boot

        self.calls.append("prepare")
        return boot.prepare(kernel, initrds, cmdline, devicetree=devicetree)

    def load(self, plan: Any, *, dry_run: bool = False) -> None:
        from kexec_core.errors import KexecError

        self.calls.append("load")
        raise KexecError("kexec_file_load(kernel_fd=3, initrd_fd=4, ...)", 1, "")

    def release(self, *, mounts: Sequence[str] = ()) -> None:
        self.calls.append("release")

    def jump(self) -> None:
        self.calls.append("jump")

    def unload(self) -> None:
        self.calls.append("unload")


def test_a_failed_load_is_unloaded_and_the_menu_stays(tmp_path: Path) -> None:
    root = bls_tree(tmp_path / "vda2", "Fedora")
    kexec = RecordingKexec()

    async def scenario() -> None:
        from discovery.scan import filesystem_for

        async with serving(tmp_path, roots=[filesystem_for(root)], dry_run=False, boot_api=kexec) as (_d, sock):
            a, added = await client_with_entry(sock, "Fedora")
            a.send(Boot(added.entry.id))
            await a.until(is_status("loading Fedora"))
            error = await a.until(is_status("cannot boot", Level.ERROR))
            assert isinstance(error, Status)
            assert "kexec_file_load" in error.status.message
            for _ in range(50):
                if "unload" in kexec.calls:
                    break
                await asyncio.sleep(0.05)
            assert kexec.calls == ["prepare", "load", "unload"]
            a.send(GetLog())
            assert isinstance(await a.until(lambda m: isinstance(m, LogLines)), LogLines)
            a.close()

    run(scenario())


class ArgumentsKexec(RecordingKexec):
    """Records the files and command line `prepare` was given."""

    def __init__(self) -> None:
        super().__init__()
        self.prepared: list[tuple[Path, tuple[Path, ...], str, Path | None]] = []

    def prepare(self, kernel: Path, initrds: Sequence[Path], cmdline: str, *, devicetree: Path | None = None) -> Any:
        self.prepared.append((kernel, tuple(initrds), cmdline, devicetree))
        return super().prepare(kernel, initrds, cmdline, devicetree=devicetree)


def test_an_edited_kernel_and_initrd_list_is_what_reaches_prepare(tmp_path: Path) -> None:
    root = bls_tree(tmp_path / "vda2", "Fedora")
    shutil.copy(root / "vmlinuz", root / "vmlinuz-edited")
    (root / "extra.img").write_bytes((root / "initrd.img").read_bytes())
    kexec = ArgumentsKexec()

    async def scenario() -> None:
        from discovery.scan import filesystem_for

        async with serving(tmp_path, roots=[filesystem_for(root)], dry_run=False, boot_api=kexec) as (_d, sock):
            a, added = await client_with_entry(sock, "Fedora")
            # As the operator types, the editor asks which paths are missing; only that client is answered.
            a.send(CheckPaths(added.entry.id, ("/vmlinuz-edited", "/nothing.img", "/loader")))
            checked = await a.until(lambda m: isinstance(m, PathsChecked))
            assert checked == PathsChecked(
                added.entry.id, ("/vmlinuz-edited", "/nothing.img", "/loader"), ("/nothing.img", "/loader"), "vda2"
            )
            # A path missing on the entry's device is refused before anything is read, naming it.
            a.send(Boot(added.entry.id, initrds=("/initrd.img", "/nothing.img")))
            refused = await a.until(is_status("cannot boot", Level.ERROR))
            assert isinstance(refused, Status)
            assert refused.status.message.endswith(":/nothing.img does not exist")
            assert kexec.prepared == []
            edit = Boot(added.entry.id, "ro edited", kernel="/vmlinuz-edited", initrds=("/extra.img", "/initrd.img"))
            a.send(edit)
            await a.until(
                is_status("booting an edit of Fedora: kernel /vmlinuz-edited, initrds /extra.img /initrd.img")
            )
            await a.until(is_status("cannot boot", Level.ERROR))  # RecordingKexec's load fails as the syscall would
            [(kernel, initrds, cmdline, devicetree)] = kexec.prepared
            assert kernel == root / "vmlinuz-edited"
            assert initrds == (root / "extra.img", root / "initrd.img")
            assert cmdline.split()[-2:] == ["ro", "edited"]
            assert devicetree is None
            a.close()

    run(scenario())


class BrokenKexec(RecordingKexec):
    """A boot layer that fails the way a payload missing a module did: an exception nobody planned for."""

    def prepare(self, kernel: Path, initrds: Sequence[Path], cmdline: str, *, devicetree: Path | None = None) -> Any:
        self.calls.append("prepare")
        raise ModuleNotFoundError("No module named 'bz2'")


def test_an_unexpected_boot_error_reaches_every_client_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    root = bls_tree(tmp_path / "vda2", "Fedora")
    kexec = BrokenKexec()

    async def scenario() -> None:
        from discovery.scan import filesystem_for

        async with serving(tmp_path, roots=[filesystem_for(root)], dry_run=False, boot_api=kexec) as (_d, sock):
            a = await Client.connect(sock)
            b = await Client.connect(sock)
            await a.hello()
            await b.hello()
            added = await a.until(is_entry("Fedora"))
            assert isinstance(added, EntryAdded)
            a.send(Boot(added.entry.id))
            for client in (a, b):
                error = await client.until(is_status("cannot boot", Level.ERROR))
                assert isinstance(error, Status)
                assert "bz2" in error.status.message
            for _ in range(100):
                if "unload" in kexec.calls:
                    break
                await asyncio.sleep(0.05)
            # Not stuck "booting": once the failed boot is cleaned up, a second request is handled again.
            a.send(Boot(added.entry.id))
            await a.until(is_status("cannot boot", Level.ERROR))
            assert kexec.calls.count("prepare") == 2
            a.close()
            b.close()

    run(scenario())


class ExecFails(RecordingKexec):
    """load succeeds; reboot(LINUX_REBOOT_CMD_KEXEC) comes back with an error, after release() has unmounted."""

    def __init__(self) -> None:
        super().__init__()
        self.mounts: list[str] = []

    def load(self, plan: Any, *, dry_run: bool = False) -> None:
        self.calls.append("load")

    def release(self, *, mounts: Sequence[str] = ()) -> None:
        self.calls.append("release")
        self.mounts = list(mounts)

    def jump(self) -> None:
        from kexec_core.errors import KexecError

        self.calls.append("jump")
        raise KexecError("reboot(LINUX_REBOOT_CMD_KEXEC)", 22, "")


def test_a_failed_exec_remounts_the_disks_and_the_entry_boots_again(tmp_path: Path) -> None:
    mounts = DirMounts({"/dev/vda2": bls_tree(tmp_path / "vda2", "Fedora")})
    udev = FakeUdev([fs_event("add", "/dev/vda2", label="root", uuid="1111")])
    kexec = ExecFails()

    async def scenario() -> None:
        async with serving(tmp_path, source=udev, mounts=mounts, dry_run=False, boot_api=kexec) as (daemon, sock):
            client = await Client.connect(sock)
            await client.hello()
            added = await client.until(is_entry("Fedora"))
            assert isinstance(added, EntryAdded)
            client.send(Boot(added.entry.id))
            error = await client.has_seen(is_status("cannot boot", Level.ERROR))
            assert isinstance(error, Status)
            assert "reboot(LINUX_REBOOT_CMD_KEXEC)" in error.status.message
            assert kexec.mounts == [str(tmp_path / "vda2")], "the menu's mounts were handed over for unmounting"
            # The disk comes back (release() may have unmounted it) with the same entry id; its EntryAdded may come
            # before or after the error status.
            again = await client.has_seen(lambda m: m is not added and is_entry("Fedora")(m))
            assert isinstance(again, EntryAdded)
            assert again.entry.id == added.entry.id
            assert mounts.mounted == {"/dev/vda2"}
            # ...and, once the failed boot has been cleaned up, booting it works as the first time.
            for _ in range(1000):
                if not daemon._booting:
                    break
                await asyncio.sleep(0.01)
            client.send(Boot(added.entry.id))
            await client.until(is_status("cannot boot", Level.ERROR))
            assert kexec.calls.count("jump") == 2
            client.close()

    run(scenario())


def test_autoboot_counts_down_and_any_client_cancels_it(tmp_path: Path) -> None:
    root = bls_tree(tmp_path / "vda2", "Fedora", timeout=30)

    async def scenario() -> None:
        from discovery.scan import filesystem_for

        settings = Settings().with_cmdline("bootmenu.timeout=config")
        async with serving(tmp_path, roots=[filesystem_for(root)], settings=settings) as (_daemon, sock):
            a = await Client.connect(sock)
            b = await Client.connect(sock)
            await a.hello()
            await b.hello()
            added = await a.until(is_entry("Fedora"))
            assert isinstance(added, EntryAdded)
            tick = await a.until(lambda m: isinstance(m, CountdownUpdate) and m.countdown.remaining is not None)
            assert isinstance(tick, CountdownUpdate)
            assert tick.countdown.entry_id == added.entry.id
            assert tick.countdown.remaining is not None
            assert 25 < tick.countdown.remaining <= 30, "timeout=config: loader.conf's timeout is used"
            b.send(CancelAutoboot())
            for client in (a, b):
                await client.until(lambda m: isinstance(m, CountdownUpdate) and m.countdown.remaining is None)
                assert any(is_status("autoboot cancelled")(m) for m in client.seen)
            late = await Client.connect(sock)
            assert (await late.hello()).countdown.remaining is None
            for client in (a, b, late):
                client.close()

    run(scenario())


def test_the_firmware_timeout_governs_a_hidden_menu(tmp_path: Path) -> None:
    from discovery.scan import filesystem_for

    root = tmp_path / "vda2"
    (root / "boot" / "grub").mkdir(parents=True)
    (root / "boot" / "vmlinuz").write_bytes(KERNEL.read_bytes())
    # What Ubuntu writes when it sees one OS: boot at once, no menu.
    (root / "boot" / "grub" / "grub.cfg").write_text(
        "set timeout_style=hidden\nset timeout=0\nmenuentry 'Ubuntu' {\n  linux /boot/vmlinuz root=/dev/vda2\n}\n"
    )

    async def scenario() -> None:
        async with serving(tmp_path, roots=[filesystem_for(root)], settings=Settings()) as (_daemon, sock):
            client = await Client.connect(sock)
            await client.hello()
            added = await client.until(is_entry("Ubuntu"))
            assert isinstance(added, EntryAdded)
            assert (added.entry.config_timeout, added.entry.timeout_style) == (0, "hidden"), "shown in the details"
            tick = await client.until(lambda m: isinstance(m, CountdownUpdate) and m.countdown.remaining is not None)
            assert isinstance(tick, CountdownUpdate)
            assert tick.countdown.remaining is not None
            assert 8 < tick.countdown.remaining <= 10, "the firmware's 10 s, not the config's 0"
            assert not any(is_status("autoboot: booting")(m) for m in client.seen)
            client.close()

    run(scenario())


def test_the_default_comes_from_the_first_device_in_boot_order(tmp_path: Path) -> None:
    from discovery.scan import filesystem_for

    disk = filesystem_for(bls_tree(tmp_path / "disk", "Disk OS"))
    usb = filesystem_for(bls_tree(tmp_path / "usb", "USB OS"))
    usb = usb.__class__(root=usb.root, name=usb.name, label="usbos")
    settings = Settings().with_cmdline("bootmenu.timeout=30 bootmenu.order=label:usbos")

    async def scenario() -> None:
        async with serving(tmp_path, roots=[disk, usb], settings=settings) as (daemon, sock):
            client = await Client.connect(sock)
            await client.hello()
            usb_entry = await client.until(is_entry("USB OS"))
            assert isinstance(usb_entry, EntryAdded)
            await client.has_seen(is_entry("Disk OS"))
            assert daemon.countdown().entry_id == usb_entry.entry.id
            late = await Client.connect(sock)
            hello = await late.hello()
            assert [e.entry.title for e in hello.entries] == ["USB OS", "Disk OS"], "menu order follows boot order"
            assert hello.countdown.entry_id == usb_entry.entry.id
            client.close()
            late.close()

    run(scenario())


def test_timeout_zero_boots_the_default_at_once(tmp_path: Path) -> None:
    from discovery.scan import filesystem_for

    root = filesystem_for(bls_tree(tmp_path / "disk", "Disk OS"))

    async def scenario() -> None:
        settings = Settings().with_cmdline("bootmenu.timeout=0")
        async with serving(tmp_path, roots=[root], settings=settings) as (_daemon, sock):
            client = await Client.connect(sock)
            await client.hello()
            await client.until(is_status("autoboot: booting the default entry"))
            cmdline = await client.until(is_status("cmdline:"))
            assert isinstance(cmdline, Status)
            assert "root=LABEL=Disk OS" in cmdline.status.message
            client.close()

    run(scenario())


def test_directories_with_one_basename_are_both_served(tmp_path: Path) -> None:
    from discovery.scan import filesystem_for

    a = filesystem_for(bls_tree(tmp_path / "a" / "boot", "First"))
    b = filesystem_for(bls_tree(tmp_path / "b" / "boot", "Second"))

    async def scenario() -> None:
        async with serving(tmp_path, roots=[a, b]) as (_daemon, sock):
            client = await Client.connect(sock)
            hello = await client.hello()
            assert [d.name for d in hello.devices] == ["boot", "boot-2"]
            second = await client.has_seen(is_entry("Second"))
            assert isinstance(second, EntryAdded)
            assert second.entry.entry.device == "boot-2"
            client.send(Boot(second.entry.id))
            await client.until(is_status("dry run"))
            client.close()

    run(scenario())


def test_rescan_reads_configs_again(tmp_path: Path) -> None:
    root = bls_tree(tmp_path / "vda2", "Old")

    async def scenario() -> None:
        from discovery.scan import filesystem_for

        async with serving(tmp_path, roots=[filesystem_for(root)]) as (_daemon, sock):
            client = await Client.connect(sock)
            await client.hello()
            await client.until(is_entry("Old"))
            bls_tree(root, "Old", "New")
            client.send(Rescan())
            await client.until(is_entry("New"))
            client.close()

    run(scenario())


class SlowKexec(RecordingKexec):
    """A boot whose check takes until `go` is set (a network fetch or a big initrd, as far as a rescan knows)."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()

    def prepare(self, kernel: Path, initrds: Sequence[Path], cmdline: str, *, devicetree: Path | None = None) -> Any:
        self.go.wait(10)
        return super().prepare(kernel, initrds, cmdline, devicetree=devicetree)


def test_a_rescan_asked_during_a_boot_runs_when_the_boot_returns(tmp_path: Path) -> None:
    root = bls_tree(tmp_path / "vda2", "Fedora")
    kexec = SlowKexec()

    async def scenario() -> None:
        from discovery.scan import filesystem_for

        async with serving(tmp_path, roots=[filesystem_for(root)], dry_run=False, boot_api=kexec) as (_d, sock):
            a, added = await client_with_entry(sock, "Fedora")
            a.send(Boot(added.entry.id))
            await a.until(is_status("checking Fedora"))
            a.send(Rescan())
            # Before: the rescan ran at once, re-DHCPing a network boot's interface and remounting under the boot.
            await a.until(is_status("a boot is in progress: rescanning when it returns to the menu"))
            kexec.go.set()
            seen: list[str] = []

            def rescanned(m: object) -> bool:
                if isinstance(m, Status):
                    seen.append(m.status.message)
                return isinstance(m, Status) and m.status.message == "rescanning devices"

            await a.until(rescanned)
            assert any(line.startswith("cannot boot") for line in seen), seen
            a.close()

    run(scenario())


def test_a_huge_menu_is_cut_per_device_and_a_new_client_gets_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from discovery import daemon as daemon_module
    from discovery import server as server_module

    root = bls_tree(tmp_path / "vda2")
    count = daemon_module.MAX_DEVICE_ENTRIES + 88
    grub = root / "grub" / "grub.cfg"
    grub.parent.mkdir(parents=True)
    grub.write_text(
        "".join(f"menuentry 'Generated {n}' {{ linux /vmlinuz root=LABEL=x ro {'w' * 200} }}\n" for n in range(count))
    )
    # A hello this big would pass the client's line limit (protocol.MAX_LINE) in the payload; here a smaller limit.
    monkeypatch.setattr(server_module, "HELLO_BYTES", 20_000)

    async def scenario() -> None:
        from discovery.scan import filesystem_for

        async with serving(tmp_path, roots=[filesystem_for(root)]) as (_daemon, sock):
            a = await Client.connect(sock)
            await a.hello()
            warning = await a.until(is_status("boot entries; only the first", Level.WARNING))
            assert isinstance(warning, Status)
            assert warning.status.message == f"vda2: {count} boot entries; only the first 512 are listed"
            b = await Client.connect(sock)  # before: one hello line of every entry, refused over MAX_LINE
            hello = await b.hello()
            assert hello.entries == ()
            assert [d.name for d in hello.devices] == ["vda2"]
            added = [await b.next() for _ in range(daemon_module.MAX_DEVICE_ENTRIES)]
            assert all(isinstance(m, EntryAdded) for m in added)
            titles = [m.entry.entry.title for m in added if isinstance(m, EntryAdded)]
            assert titles == [f"Generated {n}" for n in range(daemon_module.MAX_DEVICE_ENTRIES)]
            afters = [m.after for m in added if isinstance(m, EntryAdded)]
            assert afters[0] is None
            assert afters[1:] == [m.entry.id for m in added[:-1] if isinstance(m, EntryAdded)]
            a.close()
            b.close()

    run(scenario())


def test_get_log_serves_the_daemon_log(tmp_path: Path) -> None:
    ring = RingHandler()
    logging.getLogger().addHandler(ring)
    logging.getLogger().setLevel(logging.INFO)
    root = bls_tree(tmp_path / "vda2", "Fedora")
    try:

        async def scenario() -> None:
            from discovery.scan import filesystem_for

            async with serving(tmp_path, roots=[filesystem_for(root)], log_lines=ring.lines) as (_daemon, sock):
                client = await Client.connect(sock)
                await client.hello()
                await client.until(is_entry("Fedora"))
                client.send(GetLog())
                lines = await client.until(lambda m: isinstance(m, LogLines))
                assert isinstance(lines, LogLines)
                assert any("vda2: 1 boot entry" in line for line in lines.lines)
                client.close()

        run(scenario())
    finally:
        logging.getLogger().removeHandler(ring)


def test_socket_is_root_only_and_bad_requests_get_an_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(tmp_path) as (_daemon, sock):
            assert stat.S_IMODE(sock.stat().st_mode) == 0o600
            client = await Client.connect(sock)
            await client.hello()
            client.writer.write(b'{"v": 99, "type": "rescan"}\n')
            error = await client.until(is_status("bad request", Level.ERROR))
            assert isinstance(error, Status)
            assert "version 99" in error.status.message
            client.send(Rescan())
            await client.until(is_status("rescanning"))
            client.close()
        assert not sock.exists(), "the socket is removed at exit"

    run(scenario())


@pytest.mark.parametrize("action", ["change"])
def test_a_new_medium_is_probed_again(tmp_path: Path, action: str) -> None:
    mounts = DirMounts({"/dev/sr0": bls_tree(tmp_path / "cd", "Live CD")})
    udev = FakeUdev([udev_event("add", "/dev/sr0", size=0, DEVTYPE="disk", ID_CDROM="1")])

    async def scenario() -> None:
        async with serving(tmp_path, source=udev, mounts=mounts) as (_daemon, sock):
            client = await Client.connect(sock)
            hello = await client.hello()
            assert [(d.name, d.state) for d in hello.devices] == [("sr0", DeviceState.IGNORED)]
            udev.emit(
                fs_event(
                    action, "/dev/sr0", fstype="iso9660", label="LIVE", DEVTYPE="disk", ID_CDROM="1", ID_CDROM_MEDIA="1"
                )
            )
            await client.until(is_device("sr0", DeviceState.MOUNTED))
            await client.until(is_entry("Live CD"))
            client.close()

    run(scenario())


def waiting_for_a_device(daemon: Daemon, name: str) -> bool:
    return daemon.records[name].needs_resolving


def test_an_esp_stub_resolves_when_the_root_disk_appears_later(tmp_path: Path) -> None:
    """GRUB on the ESP: `search --fs-uuid` then `configfile` on another disk, which is plugged in afterwards."""
    uuid = "3f1c7a52-8d4e-4b8a-9c1e-2a6b5d0e7f11"
    esp = tmp_path / "esp"
    (esp / "EFI" / "debian").mkdir(parents=True)
    (esp / "EFI" / "debian" / "grub.cfg").write_text(
        f"search.fs_uuid {uuid} root\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n"
    )
    root = tmp_path / "root"
    (root / "boot" / "grub").mkdir(parents=True)
    (root / "boot" / "grub" / "grub.cfg").write_text(
        "set default=0\nset timeout=7\nmenuentry 'Debian GNU/Linux' {\n"
        "\tlinux /boot/vmlinuz root=UUID=x ro\n\tinitrd /boot/initrd.img\n}\n"
    )
    shutil.copy(KERNEL, root / "boot" / "vmlinuz")
    shutil.copy(INITRD, root / "boot" / "initrd.img")
    mounts = DirMounts({"/dev/vda1": esp, "/dev/vdb1": root})
    udev = FakeUdev([fs_event("add", "/dev/vda1", fstype="vfat", uuid="ABCD-1234", label="ESP")])

    async def scenario() -> None:
        async with serving(tmp_path, source=udev, mounts=mounts) as (daemon, sock):
            client = await Client.connect(sock)
            await client.hello()
            await client.until(is_device("vda1", DeviceState.MOUNTED))
            assert waiting_for_a_device(daemon, "vda1")
            udev.emit(fs_event("add", "/dev/vdb1", uuid=uuid, label="root"))
            added = await client.until(is_entry("Debian GNU/Linux"))
            assert isinstance(added, EntryAdded)
            assert added.entry.entry.device == "vdb1", "the kernel lives on the disk that appeared later"
            for _ in range(100):
                if not waiting_for_a_device(daemon, "vda1"):
                    break
                await asyncio.sleep(0.05)
            assert not waiting_for_a_device(daemon, "vda1")
            late = await Client.connect(sock)
            hello = await late.hello()
            assert [e.entry.title for e in hello.entries] == ["Debian GNU/Linux"], "listed once"
            client.close()
            late.close()

    run(scenario())
