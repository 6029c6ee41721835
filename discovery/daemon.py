"""The discovery daemon: block devices in, boot entries out, one asyncio loop, blocking work in threads.

Issue 5's rules live here: every probe, mount and config load runs in its own thread with a timeout, so a hung
device (a dead USB stick, a CD drive spinning up) never stalls the others; the loop only moves state and talks to
clients. Devices that hold the kernel of an entry named elsewhere (`search --fs-uuid` on an ESP) are found by
re-running the loaders whose results had unresolved references whenever a filesystem appears.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import errno
import functools
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from discovery import attempts, pstore, quiesce, sysinfo, timeline, watchdog
from discovery.attempts import Attempt, EfiStore, FileStore, Store
from discovery.autoboot import Autoboot
from discovery.budget import time_limit
from discovery.consoles import describe_device, names_console, preferred
from discovery.devices import BlockDevice, UdevSource, UEvent
from discovery.entry import BootEntry, LoadResult
from discovery.evidence import KMSG, PRINTK, PRINTK_DEVKMSG, Evidence, Kmsg, raise_console_level, unlimit_devkmsg
from discovery.fs import Filesystem, Platform
from discovery.mount import boot_subvolume
from discovery.protocol import (
    AuthResult,
    Boot,
    Countdown,
    CountdownUpdate,
    DeviceInfo,
    DeviceRemoved,
    DeviceState,
    DeviceUpdated,
    EntryAdded,
    EntryInfo,
    EntryRemoved,
    Hello,
    Level,
    Message,
    PathsChecked,
    Power,
    Status,
    StatusLine,
    clip,
    quote,
)
from discovery.resolver import LiveResolver
from discovery.settings import Settings
from discovery.superblock import ProbeError, probe
from discovery.sysinfo import SystemInfo

log = logging.getLogger(__name__)

# A probe+mount+load taking longer than this marks the device failed; its thread is left to finish on its own.
JOB_TIMEOUT = 30.0
# At most this long after start the network's DHCP waits for the disks present at start to be read.
NETWORK_WAIT = 5.0
# The last boot plan, in Machine.run (read by `bootmenu report`).
LAST_PLAN = "last-plan.txt"
# The part of JOB_TIMEOUT the config loaders may use (their deadline); the rest is margin for probe and mount.
LOAD_SHARE = 0.5
# Status lines kept for the hello snapshot, bounded in number and in bytes (a status line may quote a config).
STATUS_HISTORY = 200
STATUS_HISTORY_BYTES = 256 * 1024
# Entries listed per device: more is a generated config gone wrong (every client keeps a copy of each entry).
MAX_DEVICE_ENTRIES = 512
# A longer status message is cut (with its length named): a UI shows one line, the log has the details.
STATUS_MESSAGE_CHARS = 4096
# After the right password, a connection's gated requests are allowed this long.
AUTH_SECONDS = 300.0
# A wrong password is answered after AUTH_DELAY seconds, doubling with each wrong answer in a row up to AUTH_DELAY_MAX;
# answers are checked one at a time across all consoles, so guessing is slow from any number of them.
AUTH_DELAY = 2.0
AUTH_DELAY_MAX = 30.0


class Mounts(Protocol):
    """The mount boundary: discovery.mount.Mounter on a real system, a directory map in tests."""

    def mount(self, node: str, name: str, fstype: str) -> AbstractContextManager[Path]: ...


class BootApi(Protocol):
    """kexec_core.boot's contract (issue 4)."""

    def prepare(
        self, kernel: Path, initrds: Sequence[Path], cmdline: str, *, devicetree: Path | None = None
    ) -> Any: ...

    def load(self, plan: Any, *, dry_run: bool = False) -> None: ...

    def release(self, *, mounts: Sequence[str] = ()) -> None: ...

    def jump(self) -> None: ...

    def unload(self) -> None: ...


@dataclass(frozen=True)
class Machine:
    """Where the steps around the jump touch the machine: sysfs (quiesce, watchdog), /dev, the kernel log, efivarfs.

    `sysfs=None` means "not the payload": quiesce, the watchdog and the attempt record are skipped (and say so), so
    that no test or development run can unbind a driver or arm a watchdog on the machine it runs on. `detect()`
    decides with kexec_core's safety guard; tests pass a temporary tree.
    """

    sysfs: Path | None
    dev: Path = Path("/dev")
    kmsg: Path | None = KMSG
    printk: Path | None = PRINTK
    devkmsg: Path | None = PRINTK_DEVKMSG
    efivars: Path | None = None  # mounted efivarfs: the attempt record is an EFI variable there
    remount: bool = True
    # Where pstore records and the last boot plan are kept (tmpfs); None: nowhere.
    run: Path | None = None
    mount_pstore: bool = False

    @classmethod
    def detect(cls) -> Machine:
        from kexec_core.guard import environment

        if environment().is_boot_environment:
            efivars = attempts.EFIVARS if os.path.ismount(attempts.EFIVARS) else None
            return cls(Path("/sys"), efivars=efivars, run=Path("/run/bootmenu"), mount_pstore=True)
        return cls(None, kmsg=None, printk=None, devkmsg=None)


Loader = Callable[[Filesystem, Any], LoadResult]


def _default_loader(fs: Filesystem, resolver: Any) -> LoadResult:
    import importlib

    from discovery import dmi
    from discovery.loaders import LoadContext, load_filesystem

    ctx = LoadContext(resolver=resolver, platform=Platform.detect(), sysappend=dmi.machine())
    try:
        return load_filesystem(fs, ctx)
    except ImportError:
        # While some loaders are still being written: run the ones that exist, in the same menu order.
        total = LoadResult()
        for name in ("discovery.grub.loader", "discovery.bls", "discovery.syslinux"):
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            total = total + module.load(fs, ctx)
        return total


def entry_id(entry: BootEntry) -> str:
    """A short id, stable across rescans as long as device, config, line and title are."""
    return hashlib.sha1(entry.key.encode(), usedforsecurity=False).hexdigest()[:12]


@dataclass
class Record:
    """One device or `--root` directory and what the daemon did with it."""

    info: DeviceInfo
    seq: int
    device: BlockDevice | None = None
    fs: Filesystem | None = None
    result: LoadResult = field(default_factory=LoadResult)
    entries: list[EntryInfo] = field(default_factory=list)
    stack: ExitStack | None = None
    generation: int = 0
    rank: int = 0

    @property
    def needs_resolving(self) -> bool:
        return bool(self.result.unresolved) or any(e.entry.unresolved for e in self.entries)


@dataclass(frozen=True)
class JobResult:
    device: BlockDevice | None
    fs: Filesystem | None
    result: LoadResult
    stack: ExitStack | None
    state: DeviceState
    message: str = ""


class Daemon:
    """State and event handling. `broadcast` receives every update for the clients (the server fans it out)."""

    def __init__(
        self,
        *,
        settings: Settings,
        mounts: Mounts | None,
        source: UdevSource | None = None,
        roots: Sequence[Filesystem] = (),
        dry_run: bool = False,
        loader: Loader = _default_loader,
        boot_api: BootApi | None = None,
        log_lines: Callable[[], Sequence[str]] = tuple,
        clock: Callable[[], float] = time.monotonic,
        job_timeout: float = JOB_TIMEOUT,
        machine: Machine | None = None,
        sys_root: Path = Path("/sys"),
        proc_root: Path = Path("/proc"),
        auth_delay: float = AUTH_DELAY,
        payload_cmdline: str = "",
        dev: str = "/dev",
    ) -> None:
        self.sys_root = sys_root
        self.proc_root = proc_root
        self.auth_delay = auth_delay
        self._auth_lock = asyncio.Lock()
        self._auth_failures = 0
        self.settings = settings
        self.mounts = mounts
        self.source = source
        self.roots = tuple(roots)
        self.dry_run = dry_run
        self.loader = loader
        self._boot_api = boot_api
        self.log_lines = log_lines
        self.clock = clock
        self.job_timeout = job_timeout
        # The payload kernel's own command line: its last console= is where autoboot hands off by default.
        self.payload_cmdline = payload_cmdline
        self.dev = dev
        self.records: dict[str, Record] = {}
        self.status: collections.deque[StatusLine] = collections.deque()
        self._status_bytes = 0
        self.autoboot = Autoboot()
        self.listeners: list[Callable[[Message], None]] = []
        self.resolver = LiveResolver(self._filesystems)
        self._seq = 0
        self._booting = False
        self._rescan_after_boot = False  # a rescan asked during a boot (request_rescan)
        self._tick: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_sent: Countdown = Countdown()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._fs_snapshot: tuple[Filesystem, ...] = ()
        self.machine = machine or Machine.detect()
        # What the last start left (read in start()): the watchdog that reset the machine, the attempt record.
        self._reset: watchdog.Watchdog | None = None
        self._store: Store | None = None
        self._attempt: Attempt | None = None
        self._record_read = False
        self._failed: tuple[str, ...] = ()
        self._reason = ""
        self._rescan: asyncio.Future[None] | None = None
        self._rescan_again = False
        # Network interfaces' DHCP leases (discovery.netboot), by interface name.
        self.net_leases: dict[str, Any] = {}
        self._network: asyncio.Future[Any] | None = None  # DHCP on every interface (netboot.start), or a rescan's

    # --- lifecycle ---

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # Also in every hello's settings, so a menu connecting after the history moved on still shows them.
        for warning in self.settings.warnings:
            self.say(Level.WARNING, warning)
        self._read_last_start()
        for fs in self.roots:
            self._add_root(fs)
        if self.source is not None:
            for event in self.source.existing():
                self.handle(event)
            self._loop.add_reader(self.source.fileno(), self._on_source)
        present = tuple(self._tasks)
        if timeline.enabled():  # once the devices present at start are read, the menus list all their entries
            self.background(self._stamp_settled(present))
        if self.source is not None and not self.dry_run:
            self._network = self.background(self._start_network(present))
        self._tick = asyncio.create_task(self._countdown_loop())

    async def _start_network(self, disks: tuple[asyncio.Future[Any], ...]) -> None:
        """DHCP (discovery.netboot) once the disks present at start are read, or NETWORK_WAIT seconds after start if
        one takes longer: on one CPU, importing the network stack beside the first probes (1.5 s under QEMU TCG)
        delayed every disk's entries, and a lease takes seconds anyway (issue 15)."""
        if disks:
            await asyncio.wait(disks, timeout=NETWORK_WAIT)
        from discovery import netboot

        await netboot.start(self)

    async def _stamp_settled(self, jobs: tuple[asyncio.Future[Any], ...]) -> None:
        await asyncio.gather(*jobs, return_exceptions=True)
        timeline.stamp("all-entries", f"{len(tuple(self.entries()))} entries")

    async def stop(self) -> None:
        """Stop listening and unmount everything (at exit)."""
        if self._tick:
            self._tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick
        if self.source is not None and self._loop is not None:
            self._loop.remove_reader(self.source.fileno())
            self.source.close()
        for record in list(self.records.values()):
            await self._release(record)

    def background(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        """Run `coro` as a task the daemon keeps a reference to (so it is not garbage-collected mid-way)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_source(self) -> None:
        assert self.source is not None
        for event in self.source.receive():
            self.handle(event)

    # --- outgoing ---

    def emit(self, message: Message) -> None:
        for listener in list(self.listeners):
            listener(message)

    def say(self, level: Level, message: str) -> None:
        {Level.INFO: log.info, Level.WARNING: log.warning, Level.ERROR: log.error}[level]("%s", message)
        line = StatusLine(level, clip(message, STATUS_MESSAGE_CHARS), time.time())
        self.status.append(line)
        self._status_bytes += len(line.message.encode(errors="replace"))
        while len(self.status) > STATUS_HISTORY or self._status_bytes > STATUS_HISTORY_BYTES:
            self._status_bytes -= len(self.status.popleft().message.encode(errors="replace"))
        self.emit(Status(line))

    def hello(self) -> Hello:
        return Hello(
            devices=tuple(r.info for r in self._ordered()),
            entries=tuple(self.entries()),
            status=tuple(self.status),
            countdown=self.countdown(),
            settings=self.settings.to_json(),
            dry_run=self.dry_run,
        )

    def entries(self) -> Iterator[EntryInfo]:
        for record in self._ordered():
            yield from record.entries

    def countdown(self) -> Countdown:
        left = self.autoboot.remaining(self.clock())
        if left is None:
            return Countdown(reason=self._reason)
        return Countdown(self.autoboot.entry_id, left, self._reason)

    def _ordered(self) -> list[Record]:
        return sorted(self.records.values(), key=lambda r: (r.rank, r.seq))

    def _filesystems(self) -> tuple[Filesystem, ...]:
        # Called from loader threads: a tuple swapped whole by the loop thread, never a dict being changed.
        return self._fs_snapshot

    def _refresh_filesystems(self) -> None:
        self._fs_snapshot = tuple(r.fs for r in self._ordered() if r.fs is not None)

    def _set_info(self, record: Record, **changes: Any) -> None:
        record.info = replace(record.info, **changes)
        self._refresh_filesystems()
        self.emit(DeviceUpdated(record.info))

    # --- devices ---

    def _new_record(self, info: DeviceInfo) -> Record:
        self._seq += 1
        record = Record(info=info, seq=self._seq)
        record.rank = self.settings.rank(uuid=info.uuid, label=info.label, kind=info.kind)
        self.records[info.name] = record
        self.emit(DeviceUpdated(info))
        return record

    def _add_root(self, fs: Filesystem) -> None:
        if fs.name in self.records:
            # Two directories with one basename (`--root a/boot b/boot`): both are served, under distinct names.
            n = 2
            while f"{fs.name}-{n}" in self.records:
                n += 1
            fs = replace(fs, name=f"{fs.name}-{n}")
        info = DeviceInfo(
            name=fs.name,
            node=str(fs.root),
            kind="directory",
            fstype=fs.fstype,
            uuid=fs.uuid,
            label=fs.label,
            state=DeviceState.MOUNTED,
            mountpoint=str(fs.root),
        )
        record = self._new_record(info)
        record.fs = fs
        self._refresh_filesystems()
        self._spawn(record, lambda: self._load_job(fs))

    def handle(self, event: UEvent) -> None:
        """One udev event: add, change or remove (others, such as bind, are ignored)."""
        device = BlockDevice.from_event(event)
        if not device.name:
            return
        if event.action == "remove":
            record = self.records.get(device.name)
            if record is not None:
                self.background(self._remove(record))
            return
        if event.action not in ("add", "change"):
            return
        if device.noise:
            return
        record = self.records.get(device.name)
        if record is not None:
            if event.action == "add" or not self._changed(record, device):
                return
            # A new medium, or a reformatted partition: start over with this device.
            log.info("%s changed, probing again", device.name)
            self.background(self._reprobe(record, device))
            return
        info = DeviceInfo(
            name=device.name,
            node=device.node,
            kind=device.kind,
            fstype=device.fstype,
            uuid=device.uuid,
            label=device.label,
        )
        record = self._new_record(info)
        self._probe(record, device)

    @staticmethod
    def _changed(record: Record, device: BlockDevice) -> bool:
        old = record.device
        if old is None:
            return True
        if not device.probed:
            # Kernel uevents carry no identity; a change event there is the medium changing (CD tray, card reader).
            return True
        return (old.fstype, old.uuid, old.has_media, old.size) != (
            device.fstype,
            device.uuid,
            device.has_media,
            device.size,
        )

    async def _reprobe(self, record: Record, device: BlockDevice) -> None:
        await self._release(record)
        record.generation += 1
        record.fs = None
        record.result = LoadResult()
        self._drop_entries(record)
        self._update_autoboot()
        self._set_info(record, state=DeviceState.PROBING, message="", mountpoint="")
        self._probe(record, device)

    def _probe(self, record: Record, device: BlockDevice) -> None:
        record.device = device
        skip = device.skip()
        if skip is not None:
            self._set_info(record, state=skip[0], message=skip[1])
            return
        self._spawn(record, lambda: self._mount_job(record.info.name, device))

    async def _remove(self, record: Record) -> None:
        record.generation += 1
        self.records.pop(record.info.name, None)
        self._refresh_filesystems()
        self._drop_entries(record)
        await self._release(record)
        self.emit(DeviceRemoved(record.info.name))
        self.say(Level.INFO, f"{record.info.name} removed")
        self._update_autoboot()

    async def _release(self, record: Record) -> None:
        stack, record.stack = record.stack, None
        if stack is not None:
            # Unmounting a dead device can block too.
            await asyncio.get_running_loop().run_in_executor(None, stack.close)

    # --- jobs (worker threads) ---

    def _mount_job(self, name: str, device: BlockDevice) -> JobResult:
        if not device.probed:
            try:
                device = device.with_superblock(probe(Path(device.node)))
            except ProbeError as exc:
                if exc.errno == errno.ENOMEDIUM:
                    return JobResult(device, None, LoadResult(), None, DeviceState.IGNORED, "no medium")
                return JobResult(device, None, LoadResult(), None, DeviceState.FAILED, f"cannot read: {exc}")
            skip = device.skip()
            if skip is not None:
                return JobResult(device, None, LoadResult(), None, skip[0], skip[1])
        if self.mounts is None:
            return JobResult(device, None, LoadResult(), None, DeviceState.IGNORED, "block devices not served")
        stack = ExitStack()
        try:
            root = stack.enter_context(self.mounts.mount(device.node, name, device.fstype))
        except OSError as exc:
            stack.close()
            return JobResult(device, None, LoadResult(), None, DeviceState.FAILED, f"cannot mount: {exc}")
        fs = Filesystem(
            root=root,
            name=name,
            uuid=device.uuid,
            label=device.label,
            fstype=device.fstype,
            partuuid=device.partuuid,
            partlabel=device.partlabel,
            subvolume=boot_subvolume(root) if device.fstype == "btrfs" else "",
        )
        if fs.subvolume:
            log.info("%s: btrfs top level has no boot files; paths also resolve in subvolume %s", name, fs.subvolume)
        try:
            result = self.loader(fs, self.resolver)
        except Exception as exc:  # a loader bug must not leak the mount
            log.exception("loading configs of %s failed", name)
            result = LoadResult()
            return JobResult(device, fs, result, stack, DeviceState.FAILED, f"cannot read configs: {exc!r}")
        return JobResult(device, fs, result, stack, DeviceState.MOUNTED)

    def _load_job(self, fs: Filesystem) -> JobResult:
        try:
            result = self.loader(fs, self.resolver)
        except Exception as exc:
            log.exception("loading configs of %s failed", fs.name)
            return JobResult(None, fs, LoadResult(), None, DeviceState.FAILED, f"cannot read configs: {exc!r}")
        return JobResult(None, fs, result, None, DeviceState.MOUNTED)

    def _spawn(self, record: Record, job: Callable[[], JobResult]) -> asyncio.Future[Any]:
        """Run `job` in its own thread; its result is applied on the loop unless the record moved on meanwhile.
        Returns the task that waits for it."""
        assert self._loop is not None
        loop = self._loop
        generation = record.generation
        future: concurrent.futures.Future[JobResult] = concurrent.futures.Future()

        def work() -> None:
            try:
                # The loaders check this deadline as they run (discovery.budget), so a config that would take
                # longer stops by itself, with what it read so far, well before the job is given up on.
                with time_limit(self.job_timeout * LOAD_SHARE):
                    future.set_result(job())
            except BaseException as exc:
                future.set_exception(exc)

        threading.Thread(target=work, name=f"probe-{record.info.name}", daemon=True).start()

        async def wait() -> None:
            try:
                result = await asyncio.wait_for(
                    asyncio.shield(asyncio.wrap_future(future, loop=loop)), self.job_timeout
                )
            except TimeoutError:
                # When the hung call returns at last, undo its mount.
                future.add_done_callback(_close_late)
                if record.generation == generation and self.records.get(record.info.name) is record:
                    self._set_info(record, state=DeviceState.FAILED, message=f"no answer after {self.job_timeout:g} s")
                    self.say(Level.WARNING, f"{record.info.name}: gave up after {self.job_timeout:g} s")
                return
            except Exception as exc:
                log.exception("job for %s failed", record.info.name)
                self._set_info(record, state=DeviceState.FAILED, message=str(exc))
                return
            if record.generation != generation or self.records.get(record.info.name) is not record:
                if result.stack is not None:
                    await loop.run_in_executor(None, result.stack.close)
                return
            self._apply(record, result)

        return self.background(wait())

    def _apply(self, record: Record, job: JobResult) -> None:
        if job.stack is not None:
            old, record.stack = record.stack, job.stack
            if old is not None:
                old.close()
        if job.device is not None:
            record.device = job.device
        new_fs = job.fs is not None and record.fs is None
        record.fs = job.fs
        record.result = job.result
        changes: dict[str, Any] = {"state": job.state, "message": job.message}
        if job.device is not None:
            changes.update(fstype=job.device.fstype, uuid=job.device.uuid, label=job.device.label)
        if job.fs is not None:
            changes["mountpoint"] = str(job.fs.root)
        self._set_info(record, **changes)
        timeline.stamp("first-device-probed", record.info.name)
        record.rank = self.settings.rank(uuid=record.info.uuid, label=record.info.label, kind=record.info.kind)
        for diag in job.result.diagnostics:
            log.warning("%s: %s", record.info.name, diag)
        self._replace_entries(record, job.result.entries)
        if job.state is DeviceState.MOUNTED and job.fs is not None:
            self._found_state_fs(record.info, job.fs)
        if job.state is DeviceState.MOUNTED:
            count = len(job.result.entries)
            self.say(Level.INFO, f"{record.info.name}: {count} boot entr{'y' if count == 1 else 'ies'}")
        if new_fs:
            # A filesystem appeared: configs elsewhere that named a missing one may resolve now.
            for other in self.records.values():
                if other is not record and other.fs is not None and other.needs_resolving:
                    fs = other.fs
                    log.info("%s appeared: reading %s again", record.info.name, other.info.name)
                    self._spawn(other, functools.partial(self._reload_job, fs, other))
        self._update_autoboot()

    def _reload_job(self, fs: Filesystem, record: Record) -> JobResult:
        result = self._load_job(fs)
        return replace(result, device=record.device, stack=None)

    # --- entries ---

    def _drop_entries(self, record: Record) -> None:
        for info in record.entries:
            self.emit(EntryRemoved(info.id))
        record.entries = []

    def _replace_entries(self, record: Record, entries: Sequence[BootEntry]) -> None:
        self._drop_entries(record)
        if len(entries) > MAX_DEVICE_ENTRIES:
            # A menu nobody can scroll, and every client holds a copy: the first ones, as the config lists them.
            self.say(
                Level.WARNING,
                f"{record.info.name}: {len(entries)} boot entries; only the first {MAX_DEVICE_ENTRIES} are listed",
            )
            entries = entries[:MAX_DEVICE_ENTRIES]
        seen: set[str] = set()
        # The same config read twice (an ESP stub's `configfile` into the root disk, and the root disk itself) gives
        # the same entries: list them once, under the device that found them first.
        elsewhere = {i.id for r in self.records.values() if r is not record for i in r.entries}
        infos = []
        for entry in entries:
            eid = entry_id(entry)
            if eid in elsewhere:
                continue
            while eid in seen:
                eid = hashlib.sha1(eid.encode(), usedforsecurity=False).hexdigest()[:12]
            seen.add(eid)
            infos.append(EntryInfo(eid, entry, record.result.timeout, record.result.timeout_style, self._note(eid)))
        ordered = self._ordered()
        before: str | None = None
        for other in ordered:
            if other is record:
                break
            if other.entries:
                before = other.entries[-1].id
        record.entries = infos
        for info in infos:
            self.emit(EntryAdded(info, before))
            before = info.id

    def find_entry(self, eid: str) -> tuple[Record, EntryInfo] | None:
        for record in self.records.values():
            for info in record.entries:
                if info.id == eid:
                    return record, info
        return None

    # --- what the last start left (issue 11: watchdog reset cause, attempt record) ---

    def _read_last_start(self) -> None:
        sysfs = self.machine.sysfs
        if sysfs is None:
            return
        if self.machine.efivars is not None:
            self._store = EfiStore(self.machine.efivars)
        self._read_pstore(sysfs)
        self._reset = watchdog.last_reset(sysfs)
        if self._reset is None:
            return
        self.say(Level.WARNING, f"the previous boot did not come up: {self._reset.label()} reset the machine")
        if self._store is not None:
            self._use_record(self._store)
        elif self.settings.state is not None:
            self._reason = f"The previous boot did not come up; waiting for the state filesystem {self.settings.state}"
        else:
            self._hold('no boot attempt record names it (set `state = "LABEL=..."` for a fallback)')

    def _read_pstore(self, sysfs: Path) -> None:
        source = sysfs / "fs" / "pstore"
        if self.machine.run is None or not source.is_dir():
            return
        if self.machine.mount_pstore:
            try:
                pstore.mount(source)
            except OSError as exc:
                log.warning("cannot mount pstore: %s", exc)
                return
        records = pstore.collect(source, self.machine.run / "pstore")
        for record in records:
            if not record.is_crash_log:
                log.info("pstore: %s (%d bytes) kept in %s", record.name, record.size, record.path)
                continue
            summary = record.summary()
            for line in record.tail():
                log.warning("%s: %s", record.name, line)
            self.say(
                Level.WARNING,
                f"the previous kernel left a crash log: {summary} ({record.name}, {record.size} bytes, in "
                f"{record.path}; its last lines are in the log: l)",
            )
            self._reason = self._reason or f"The previous kernel crashed: {summary}"

    def _found_state_fs(self, info: DeviceInfo, fs: Filesystem) -> None:
        spec = self.settings.state
        if spec is None or self.machine.sysfs is None or isinstance(self._store, EfiStore):
            return
        if not spec.matches(label=info.label, uuid=info.uuid):
            return
        self._store = FileStore(fs.root, remount=self.machine.remount)
        log.info("boot attempt records go to %s (%s)", self._store.describe(), spec)
        if self._reset is not None and not self._record_read:
            self._use_record(self._store)

    def _use_record(self, store: Store) -> None:
        self._record_read = True
        try:
            attempt = store.read()
        except (OSError, attempts.RecordError) as exc:
            self.say(Level.WARNING, f"cannot read the boot attempt record: {exc}")
            attempt = None
        if attempt is None:
            self._hold(f"no boot attempt record in {store.describe()}")
            return
        self._attempt = attempt
        self._failed = (*attempt.failed, attempt.entry_id)[-attempts.MAX_FAILED :]
        self._reason = f"The previous boot of '{attempt.title}' did not come up (watchdog reset)"
        self.say(
            Level.WARNING,
            f"'{attempt.title}' on {attempt.device}, booted {attempt.when()}, did not come up: "
            "it is marked and autoboot falls back to the next entry",
        )
        # Mark the failed entries already listed.
        for record in self._ordered():
            if any(i.id in self._failed for i in record.entries):
                self._replace_entries(record, [i.entry for i in record.entries])
        self._update_autoboot()

    def _hold(self, why: str) -> None:
        self._record_read = True
        self._reason = "The previous boot did not come up; autoboot is held until you choose an entry"
        self.say(Level.WARNING, f"autoboot held: the previous boot did not come up and {why}")
        self._update_autoboot()

    def _note(self, eid: str) -> str:
        if eid in self._failed:
            return "did not come up last time"
        return ""

    def _fallback(self) -> tuple[str | None, float | None]:
        """After a watchdog reset: nothing until the record is read; then the entry after the failed one, or none."""
        if self._attempt is None:
            return None, None
        order = [i.id for r in self._ordered() for i in r.entries if not i.entry.unresolved]
        eid = attempts.fallback(order, self._failed, self._attempt.entry_id)
        if eid is None:
            return None, None
        found = self.find_entry(eid)
        timeout = self.settings.effective_timeout(found[0].result.timeout if found else None)
        return eid, timeout

    # --- autoboot ---

    def _default(self) -> tuple[str | None, float | None]:
        if self._reset is not None:
            return self._fallback()
        for record in self._ordered():
            for info in record.entries:
                if info.entry.default and not info.entry.unresolved:
                    return info.id, self.settings.effective_timeout(record.result.timeout)
        return None, None

    def _update_autoboot(self) -> None:
        eid, timeout = self._default()
        before = self.autoboot
        self.autoboot = self.autoboot.offer(eid, timeout, self.clock())
        if before.started is None and self.autoboot.active:
            self.say(Level.INFO, f"autoboot in {timeout:g} s unless a key is pressed")
        self._send_countdown()
        self._check_due()

    def cancel_autoboot(self) -> None:
        if self.autoboot.cancelled:
            return
        was_active = self.autoboot.active
        self.autoboot = self.autoboot.cancel()
        if was_active:
            self.say(Level.INFO, "autoboot cancelled")
        self._send_countdown()

    def _send_countdown(self) -> None:
        countdown = self.countdown()
        # Whole seconds are what a UI shows; do not flood clients with sub-second changes.
        key = Countdown(
            countdown.entry_id, None if countdown.remaining is None else round(countdown.remaining), countdown.reason
        )
        if key != self._last_sent:
            self._last_sent = key
            self.emit(CountdownUpdate(countdown))

    def _check_due(self) -> None:
        due = self.autoboot.due(self.clock())
        if due is not None and not self._booting:
            self.autoboot = self.autoboot.fire()
            self._send_countdown()
            self.say(Level.INFO, "autoboot: booting the default entry")
            self.background(self.boot(due, autoboot=True))

    async def _countdown_loop(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            if self.autoboot.active:
                self._send_countdown()
                self._check_due()

    # --- requests from clients ---

    def request_rescan(self) -> None:
        """A client's `rescan`: requests arriving while one runs (its loads included) make one more run after it,
        so a flood of requests costs two rescans, not a thread per request and device."""
        if self._booting:
            # A rescan would re-DHCP the interface a network boot is fetching from (udhcpc deconfigures it first)
            # and remount what the boot path is unmounting: it runs when the boot comes back to the menu instead.
            if not self._rescan_after_boot:
                self.say(Level.INFO, "a boot is in progress: rescanning when it returns to the menu")
            self._rescan_after_boot = True
            return
        if self._rescan is not None and not self._rescan.done():
            self._rescan_again = True
            return
        self._rescan = self.background(self._rescans())

    def _boot_ended(self) -> None:
        self._booting = False
        if self._rescan_after_boot:
            self._rescan_after_boot = False
            self.request_rescan()

    async def _rescans(self) -> None:
        again = True
        while again:
            self._rescan_again = False
            await self.rescan()
            again = self._rescan_again

    async def rescan(self) -> None:
        self.say(Level.INFO, "rescanning devices")
        loads = []
        for record in list(self.records.values()):
            if record.fs is not None and record.info.kind != "network":  # (the network: DHCP again, below)
                fs = record.fs
                loads.append(self._spawn(record, functools.partial(self._reload_job, fs, record)))
        if self._network is not None and self._network.done():  # not while the first DHCP still runs
            from discovery import netboot

            self._network = self.background(netboot.start(self))
            loads.append(self._network)
        if self.source is not None:
            present = set()
            for event in self.source.existing():
                device = BlockDevice.from_event(event)
                present.add(device.name)
                if device.name not in self.records:
                    self.handle(event)
            for record in list(self.records.values()):
                if record.device is not None and record.info.name not in present:
                    await self._remove(record)
                elif record.device is not None and record.info.state is DeviceState.FAILED:
                    # A device that timed out or failed to mount gets another chance.
                    await self._reprobe(record, record.device)
        await asyncio.gather(*loads, return_exceptions=True)  # each ends by JOB_TIMEOUT at the latest

    def boot_api(self) -> BootApi:
        if self._boot_api is None:
            from kexec_core import boot

            self._boot_api = boot
        assert self._boot_api is not None
        return self._boot_api

    async def boot(
        self,
        eid: str,
        cmdline: str | None = None,
        *,
        console: str | None = None,
        autoboot: bool = False,
        kernel: str | None = None,
        initrds: tuple[str, ...] | None = None,
        devicetree: str | None = None,
    ) -> bool:
        """Boot entry `eid`; every step and any failure go to every client. Returns True when the kernel started
        (only ever reached in tests with a fake kexec) or, in dry run, when the plan was reported.

        `cmdline`, `kernel`, `initrds` and `devicetree` (the editor's, "" for no devicetree) replace the entry's own
        when given; the edited paths are looked up on the entry's device and checked like any entry's.

        `console` is the `console=` value of the menu that asked (its terminal); on autoboot the
        `autoboot_console` setting's. It is added when the command line names no console (issue 10)."""
        if self._booting:
            self.say(Level.WARNING, "a boot is already in progress")
            return False
        found = self.find_entry(eid)
        if found is None:
            self.say(Level.ERROR, f"no boot entry {quote(eid)} (it may have gone with its device)")
            return False
        self.cancel_autoboot()
        _, info = found
        entry = _edited(info.entry, cmdline, kernel, initrds, devicetree)
        if entry != info.entry:
            self.say(Level.INFO, f"booting an edit of {entry.title}: {_describe_edit(info.entry, entry)}")
        self._booting = True
        try:
            return await self._boot(eid, await self._hand_off(entry, console, autoboot))
        finally:
            self._boot_ended()

    async def check_paths(self, eid: str, paths: tuple[str, ...]) -> PathsChecked:
        """Which of `paths` are not files on entry `eid`'s device, looked up as `boot` will (Filesystem.host_path)."""
        found = self.find_entry(eid)
        record = self.records.get(found[1].entry.device) if found is not None else None
        if record is None or record.fs is None:
            return PathsChecked(eid, paths, paths, "")
        fs = record.fs
        # A network entry's files are URLs: whether the server has them is known only by fetching, which is the boot's
        # job (discovery.netboot.fetch), so they are neither found nor missing.
        remote = tuple(path for path in paths if "://" in path) if record.info.kind == "network" else ()
        local = tuple(path for path in paths if path not in remote)

        def missing() -> tuple[str, ...]:
            hosts = ((path, fs.host_path(path)) for path in local)
            return tuple(path for path, host in hosts if host is None or not host.is_file())

        absent = await asyncio.get_running_loop().run_in_executor(None, missing)
        return PathsChecked(eid, paths, absent, fs.name, remote)

    async def _hand_off(self, entry: BootEntry, console: str | None, autoboot: bool) -> BootEntry:
        """`entry` with `console=` for the console it is booted from, when its command line names none."""
        if not self.settings.console_handoff or names_console(entry.cmdline):
            return entry
        if autoboot:
            console = await self._autoboot_console()
        if not console:
            return entry
        word = f"console={console}"
        why = "autoboot" if autoboot else f"booted from {console.partition(',')[0]}"
        self.say(Level.INFO, f"{why}: adding {word} to the command line")
        return entry.replace(cmdline=f"{entry.cmdline} {word}".strip())

    async def _autoboot_console(self) -> str | None:
        name = self.settings.autoboot_console
        if name == "none":
            return None
        if not name:
            return preferred(self.payload_cmdline)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, functools.partial(describe_device, name, self.dev))
        except OSError as exc:
            self.say(Level.WARNING, f"autoboot_console {name}: {exc.filename}: {exc.strerror}; no console= added")
            return None

    async def _boot(self, eid: str, entry: BootEntry) -> bool:
        """The boot path, end to end (DESIGN.md): each step is announced before it runs, and any failure before the
        jump puts back what the steps changed and returns to the menu."""
        from kexec_core.errors import KexecCoreError

        loop = asyncio.get_running_loop()
        title = " > ".join((*entry.submenu, entry.title))
        machine = self.machine
        api = self.boot_api()
        # 0. a network entry's files (URLs) are fetched into its tmpfs directory first (discovery.netboot)
        net = self.records.get(entry.device)
        fetched = None
        if net is not None and net.info.kind == "network" and net.fs is not None:
            from discovery import netboot

            fetched = await netboot.fetch(self, net.info.name, net.fs, entry, title)
            if fetched is None:
                return False
        # 1. resolve the entry's files on their read-only mount (a network entry's: the fetched copies)
        resolved = self._resolve(entry, title, fetched)
        if resolved is None:
            return False
        record, paths = resolved
        fs = record.fs
        assert fs is not None
        kernel, rest = paths[0], paths[1:]
        initrds = rest[: len(entry.initrds)]
        devicetree = rest[len(entry.initrds)] if entry.devicetree else None
        mounted: list[Record] = []
        unbound: list[str] = []
        armed: watchdog.Armed | None = None
        try:
            # 2. inspect + preflight, choosing the load method
            self.say(Level.INFO, f"checking {title}: {fs.name}:{entry.kernel}")
            plan = await loop.run_in_executor(
                None, lambda: api.prepare(kernel, initrds, entry.kernel_cmdline(), devicetree=devicetree)
            )
            for warning in getattr(plan, "warnings", ()):
                self.say(Level.WARNING, f"{title}: {warning}")
            self.say(Level.INFO, f"checked {title}: the kernel can be loaded")
            # The plan, in dry run and for real: what is booted, with which command line (a debug boot's words).
            lines = [str(line) for line in plan.describe()]
            for line in lines:
                self.say(Level.INFO, line)
            self._keep_plan(title, lines)
            if self.dry_run:
                self.say(Level.INFO, f"dry run: {title} would be loaded and booted now; back to the menu")
                return True
            # 3. load: nothing irreversible yet
            self.say(Level.INFO, f"loading {title}")
            await loop.run_in_executor(None, lambda: api.load(plan))
            self.say(Level.INFO, f"loaded {title}; starting it")
            # 4. what the boot loader itself would write (issue 11 section 1: grubenv save_env, BLS boot counting,
            #    one line each), while the filesystems are still mounted; then the attempt record
            await self._loader_writes(entry)
            await self._record_attempt(eid, entry, title, loop)
            # 5. quiesce: unmount, then unbind the DMA-capable PCI drivers
            mounted = self._mounted()
            mounts = [str(r.fs.root) for r in mounted if r.fs is not None]
            with Kmsg(machine.kmsg) as kmsg:
                self._console_level()
                self.say(Level.INFO, f"quiesce: unmounting {len(mounts)} filesystem(s)")
                await loop.run_in_executor(None, lambda: api.release(mounts=mounts))
                unbound = await self._quiesce(kmsg, loop)
                # 6. the plan to the kernel log, then the watchdog, the very last thing before the jump
                seconds = self.settings.watchdog
                watchdog_plan = self._watchdog_plan(seconds)
                self.say(Level.INFO, f"evidence to the kernel log; watchdog: {watchdog_plan}")
                Evidence(
                    entry_id=eid,
                    title=title,
                    device=f"{fs.name} ({record.info.node})",
                    kernel=f"{fs.name}:{entry.kernel}",
                    initrds=tuple(f"{fs.name}:{i}" for i in entry.initrds),
                    cmdline=str(getattr(plan, "cmdline", entry.cmdline)),
                    method=str(getattr(plan, "method", "kexec_file_load")),
                    quiesce=tuple(unbound),
                    watchdog=watchdog_plan,
                    segments=_segment_lines(plan),
                ).write(kmsg)
                armed = self._arm_watchdog(seconds, kmsg)
            # 7. reboot(LINUX_REBOOT_CMD_KEXEC)
            self.say(Level.INFO, "jumping: reboot(LINUX_REBOOT_CMD_KEXEC)")
            await loop.run_in_executor(None, api.jump)
            return True
        except Exception as exc:
            if isinstance(exc, KexecCoreError | OSError):
                self.say(Level.ERROR, f"cannot boot {title}: {exc}")
            else:
                # A bug (or a module missing from the payload) must still reach every UI and the log, with the
                # menu kept alive: the daemon is the only thing between the user and a dead machine.
                log.exception("unexpected error while booting %s", title)
                self.say(Level.ERROR, f"cannot boot {title}: internal error {exc!r} (details with l)")
            await self._undo(armed, unbound, loop)
            if not self.dry_run:
                try:
                    await loop.run_in_executor(None, api.unload)
                except Exception as unload_exc:
                    log.warning("unloading after a failed boot: %s", unload_exc)
            # Last, so that the entries coming back find the boot over and can be booted again at once.
            await self._remount(mounted)
            return False

    def _keep_plan(self, title: str, lines: list[str]) -> None:
        """The last boot plan, for `bootmenu report` (tmpfs; nothing when the machine has no run directory)."""
        if self.machine.run is None:
            return
        text = f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} {title}\n" + "\n".join(lines) + "\n"
        try:
            self.machine.run.mkdir(parents=True, exist_ok=True)
            (self.machine.run / LAST_PLAN).write_text(text)
        except OSError as exc:
            log.warning("cannot keep the boot plan: %s", exc)

    def _resolve(
        self, entry: BootEntry, title: str, fetched: list[Path] | None = None
    ) -> tuple[Record, list[Path]] | None:
        if entry.unresolved:
            self.say(Level.ERROR, f"cannot boot {title}: {entry.unresolved} is not present")
            return None
        record = self.records.get(entry.device)
        if record is None or record.fs is None:
            self.say(Level.ERROR, f"cannot boot {title}: device {entry.device or '?'} is not mounted")
            return None
        fs = record.fs
        if fetched is not None:
            return record, fetched
        paths: list[Path] = []
        for path in (entry.kernel, *entry.initrds, *([entry.devicetree] if entry.devicetree else [])):
            host = fs.host_path(path)
            if host is None or not host.is_file():
                self.say(Level.ERROR, f"cannot boot {title}: {fs.name}:{path} does not exist")
                return None
            paths.append(host)
        return record, paths

    async def _record_attempt(self, eid: str, entry: BootEntry, title: str, loop: asyncio.AbstractEventLoop) -> None:
        store = self._store
        if store is None:
            log.info("no boot attempt record: no efivarfs and no state filesystem")
            return
        # After a watchdog reset the chain of failed entries goes on; after a normal start it begins anew.
        failed = self._failed if self._reset is not None else ()
        attempt = Attempt(eid, title, entry.device, time.time(), tuple(f for f in failed if f != eid))
        self.say(Level.INFO, f"recording the boot attempt in {store.describe()}")
        try:
            await loop.run_in_executor(None, lambda: store.write(attempt))
        except OSError as exc:
            self.say(Level.WARNING, f"cannot record the boot attempt: {exc.filename}: {exc.strerror}; booting anyway")

    def _console_level(self) -> None:
        """From here on the kernel log is the record of the jump: make sure the console prints all of it."""
        if self.machine.devkmsg is not None:
            try:
                limit = unlimit_devkmsg(self.machine.devkmsg)
            except OSError as exc:
                log.warning("%s: %s", exc.filename, exc.strerror)
            else:
                if limit is not None:
                    log.info("/dev/kmsg rate limit lifted (was %s) for the jump's evidence", limit)
        if self.machine.printk is None:
            return
        try:
            old = raise_console_level(self.machine.printk)
        except OSError as exc:
            log.warning("%s: %s", exc.filename, exc.strerror)
            return
        if old is not None:
            log.info("console log level raised from %d for the jump's evidence", old)

    async def _quiesce(self, kmsg: Kmsg, loop: asyncio.AbstractEventLoop) -> list[str]:
        sysfs = self.machine.sysfs
        if self.settings.quiesce is quiesce.Quiesce.OFF:
            kmsg.note('quiesce: off (setting quiesce = "off"): drivers stay bound')
            return []
        if sysfs is None:
            log.info("quiesce skipped: not the payload")
            return []
        self.say(Level.INFO, "quiesce: unbinding the drivers of DMA-capable PCI devices")
        return await loop.run_in_executor(None, lambda: quiesce.quiesce(sysfs, kmsg.note))

    def _watchdog_plan(self, seconds: int | None) -> str:
        if seconds is None:
            return "off"
        if self.machine.sysfs is None:
            return f"{seconds} s wanted, skipped: not the payload"
        found = watchdog.watchdogs(self.machine.sysfs)
        if not found:
            return f"{seconds} s wanted, but there is no watchdog device"
        return f"arming {found[0].label()} with {seconds} s next"

    def _arm_watchdog(self, seconds: int | None, kmsg: Kmsg) -> watchdog.Armed | None:
        if seconds is None or self.machine.sysfs is None:
            return None
        try:
            return watchdog.arm(seconds, sysfs=self.machine.sysfs, dev=self.machine.dev)
        except OSError as exc:
            kmsg.note(f"watchdog: not armed: {exc.filename}: {exc.strerror}")
            return None

    async def _undo(self, armed: watchdog.Armed | None, unbound: list[str], loop: asyncio.AbstractEventLoop) -> None:
        """After a failed jump: stop the watchdog first (the menu must not be reset under the user), then give the
        devices their drivers back (the caller remounts what was unmounted)."""
        if armed is not None:
            watchdog.disarm(armed)
            self.say(Level.INFO, f"watchdog {armed.path} stopped")
        if unbound and self.machine.sysfs is not None:
            sysfs = self.machine.sysfs
            await loop.run_in_executor(None, lambda: quiesce.rebind(unbound, sysfs))
            self.say(Level.INFO, f"asked for drivers again for {', '.join(unbound)}")

    def _mounted(self) -> list[Record]:
        """The records whose filesystem this daemon mounted (not `--root` directories)."""
        return [r for r in self.records.values() if r.fs is not None and r.stack is not None]

    async def _remount(self, mounted: Sequence[Record]) -> None:
        for r in mounted:
            if r.device is not None and r.info.name in self.records:
                await self._reprobe(r, r.device)

    async def power(self, word: str) -> bool:
        """Reboot or power off (`word`: reboot, poweroff) through kexec_core's guard; in dry run, report the plan.
        Returns True when the plan was reported (dry run) or a fake reboot(2) returned (tests)."""
        from kexec_core import power
        from kexec_core.errors import ExecRefused, KexecCoreError

        try:
            action = power.PowerAction(word)
        except ValueError:
            self.say(Level.ERROR, f"unknown power action {quote(word)}: reboot or poweroff")
            return False
        if self._booting:
            self.say(Level.WARNING, "a boot is in progress; not now")
            return False
        self.cancel_autoboot()
        mounted = self._mounted()
        mounts = [str(r.fs.root) for r in mounted if r.fs is not None]
        plan = power.steps(action, mounts)
        if self.dry_run:
            self.say(Level.INFO, f"dry run: would {action.verb}: {', '.join(plan)}")
            return True
        self.say(Level.INFO, f"{action.verb}: {', '.join(plan)}")
        self._booting = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, lambda: power.perform(action, mounts=mounts))
            return True
        except (KexecCoreError, OSError) as exc:
            self.say(Level.ERROR, f"cannot {action.verb}: {exc}")
            if not isinstance(exc, ExecRefused):
                # The guard refuses before anything is unmounted; a failed reboot(2) comes after the unmounts.
                await self._remount(mounted)
            return False
        finally:
            self._boot_ended()

    async def sysinfo(self) -> SystemInfo:
        """The system information screen's facts; each disk and partition says what this daemon found there."""
        found = {name: self._found(record) for name, record in self.records.items()}

        def lookup(name: str) -> tuple[str, str]:
            return found.get(name, ("", ""))

        loop = asyncio.get_running_loop()
        # sysfs reads are quick, but a driver's attribute can block: never on the loop.
        return await loop.run_in_executor(None, lambda: sysinfo.gather(self.sys_root, self.proc_root, lookup))

    @staticmethod
    def _found(record: Record) -> tuple[str, str]:
        info = record.info
        if info.state is DeviceState.MOUNTED:
            count = len(record.entries)
            note = f"{count} boot entr{'y' if count == 1 else 'ies'}" if count else "no boot configs"
            if info.message:
                note += f" ({info.message})"
            waiting = sum(1 for e in record.entries if e.entry.unresolved)
            if waiting:
                note += f", {waiting} waiting for another device"
            return info.fstype, note
        reason = info.message or {DeviceState.LOCKED: "encrypted: not opened", DeviceState.PROBING: "reading"}.get(
            info.state, ""
        )
        return info.fstype, f"{info.state}: {reason}" if reason else str(info.state)

    # --- the password (discovery/password.py) ---

    def gate(self, message: Message) -> str | None:
        """What `message` would do that needs the password, or None (no password set, or not a gated request).
        Autoboot of the default never comes through here: it needs no password."""
        if self.settings.password is None:
            return None
        if isinstance(message, Boot):
            if message.edited():
                return "boot an edited entry"
            if message.id != self._default()[0]:
                return "boot an entry other than the default"
        if isinstance(message, Power):
            return "reboot or power off"
        return None

    def refuse(self, what: str, console: str) -> None:
        self.say(Level.ERROR, f"the password is needed to {what} (request from {_clean(console)} refused)")

    async def authenticate(self, password: str, action: str, console: str) -> AuthResult:
        """Checks `password` (scrypt in a thread); a wrong one is logged and answered late."""
        action, where = _clean(action), _clean(console)
        async with self._auth_lock:
            hashed = self.settings.password
            if hashed is None:
                return AuthResult(True, action, "no password is set", AUTH_SECONDS)
            loop = asyncio.get_running_loop()
            try:
                ok = await loop.run_in_executor(None, hashed.matches, password)
            except ValueError as exc:  # no scrypt implementation: nobody gets in, and the log says why
                self.say(Level.ERROR, f"cannot check the password: {exc}")
                return AuthResult(False, action, "the password cannot be checked (see the log)")
            if ok:
                self._auth_failures = 0
                log.info("password accepted on %s to %s", where, action)
                return AuthResult(True, action, "", AUTH_SECONDS)
            self._auth_failures += 1
            delay = min(self.auth_delay * 2 ** min(self._auth_failures - 1, 10), AUTH_DELAY_MAX)
            self.say(Level.WARNING, f"wrong password on {where} to {action} ({self._auth_failures} in a row)")
            await asyncio.sleep(delay)
            return AuthResult(False, action, "wrong password")

    async def _loader_writes(self, entry: BootEntry) -> None:
        from discovery import loaderwrites

        # Taken on the loop thread (the only one that changes records); the writes run in a worker.
        targets = {
            r.info.name: loaderwrites.Target(r.device.node if r.device else None, r.fs)
            for r in self.records.values()
            if r.fs is not None
        }
        loop = asyncio.get_running_loop()
        for level, text in await loop.run_in_executor(None, loaderwrites.before_jump, entry, targets):
            self.say(level, text)

    def get_log(self) -> tuple[str, ...]:
        return tuple(self.log_lines())


def _clean(text: str, limit: int = 40) -> str:
    """Client-supplied words for a log line: short and printable."""
    return "".join(c for c in text[:limit] if c.isalnum() or c in "/_.:-") or "?"


def _close_late(future: concurrent.futures.Future[JobResult]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    stack = future.result().stack
    if stack is not None:
        stack.close()


def _segment_lines(plan: object) -> tuple[str, ...]:
    """`entry 0x... (trampoline)` and one line per kexec_load segment, for the kernel log; none for kexec_file_load."""
    segments = getattr(plan, "segments", None)
    describe = getattr(segments, "describe", None)
    return tuple(describe()) if callable(describe) else ()


def _edited(
    entry: BootEntry,
    cmdline: str | None,
    kernel: str | None,
    initrds: tuple[str, ...] | None,
    devicetree: str | None,
) -> BootEntry:
    """`entry` with the editor's changes; None leaves a part as found, an empty devicetree removes it."""
    changes: dict[str, object] = {}
    if cmdline is not None:
        changes["cmdline"] = cmdline
    if kernel is not None:
        changes["kernel"] = kernel
    if initrds is not None:
        changes["initrds"] = tuple(initrds)
    if devicetree is not None:
        changes["devicetree"] = devicetree or None
    return entry.replace(**changes) if changes else entry


def _describe_edit(before: BootEntry, after: BootEntry) -> str:
    parts = []
    if after.kernel != before.kernel:
        parts.append(f"kernel {after.kernel}")
    if after.initrds != before.initrds:
        parts.append(f"initrds {' '.join(after.initrds) or '(none)'}")
    if after.devicetree != before.devicetree:
        parts.append(f"devicetree {after.devicetree or '(none)'}")
    if after.cmdline != before.cmdline:
        parts.append("command line")
    return ", ".join(parts) or "unchanged"
