"""The network as a device of the daemon (issue 14): one record per Ethernet interface with a lease.

Each interface gets DHCP (discovery.network); its pxelinux config is fetched into a tmpfs directory that stands for
the network (a `Filesystem` whose root is the TFTP server's root; `/http/<host>/...` holds `http://<host>/...`, see
network.url_of), parsed by the syslinux loader, and its entries are listed like a disk's, each file named by its URL.
The kernel and initrds are fetched only when an entry is booted, with progress on every menu's status line; then
the daemon's usual prepare/load/execute path runs on the local copies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from discovery import network, syslinux
from discovery.entry import BootEntry, LoadResult
from discovery.fs import Filesystem
from discovery.network import Lease, NetworkError
from discovery.protocol import DeviceInfo, DeviceState, Level
from kexec_core.guard import MARKER

if TYPE_CHECKING:
    from discovery.daemon import Daemon

log = logging.getLogger(__name__)

KIND = "network"
RUN_DIR = Path("/run/bootmenu/net")
# Left free in the tmpfs after a fetch: the menu, Python and kexec's own copies need memory too.
RESERVE = 64 << 20
# INCLUDE/CONFIG files fetched for one config at most (real menus have a few; each costs a transfer).
MAX_CONFIGS = 64


def load_pxelinux(lease: Lease, fs: Filesystem, sys_root: Path = Path("/sys")) -> LoadResult:
    """The first config of the pxelinux lookup order the server has, parsed (its INCLUDE and CONFIG files fetched as
    the parser meets them); an empty result when none is there. Its entries name their files by URL."""
    uuid = network.client_uuid(sys_root)
    names = [lease.config_file] if lease.config_file else network.config_candidates(lease.mac, lease.address, uuid)
    misses = []
    for name in names:
        path = lease.config_path(name)
        url = lease.url(path)
        try:
            network.fetch(url, fs.root / path.lstrip("/"), network.CONFIG_LIMIT)
        except NetworkError as exc:
            misses.append(str(exc))
            continue
        log.info("%s: pxelinux config %s", lease.interface, url)
        return with_urls(lease, syslinux.load_config(fs, path, workdir=lease.workdir, fetch=_fetcher(lease, fs)))
    log.info("%s: no pxelinux config: %s", lease.interface, "; ".join(misses))
    return LoadResult()


def _fetcher(lease: Lease, fs: Filesystem) -> Callable[[str], None]:
    """What the syslinux loader calls for an INCLUDE or CONFIG file it does not have: at most MAX_CONFIGS files
    per config (the loader bounds depth and steps; this bounds transfers). A failure is logged; the loader then
    says the file was not found, on the line naming it."""
    count = 0

    def fetch(path: str) -> None:
        nonlocal count
        count += 1
        if count > MAX_CONFIGS:
            log.warning("%s: more than %d config files; %s not fetched", lease.interface, MAX_CONFIGS, path)
            return
        try:
            network.fetch(lease.url(path), fs.root / path.lstrip("/"), network.CONFIG_LIMIT)
        except NetworkError as exc:
            log.info("%s: %s", lease.interface, exc)

    return fetch


def with_urls(lease: Lease, result: LoadResult) -> LoadResult:
    """`result` with every entry's kernel, initrds and devicetree as URLs (what the menu shows and boot fetches)."""

    def url(path: str) -> str:
        return path if "://" in path else lease.url(path)

    entries = tuple(
        e.replace(
            kernel=url(e.kernel),
            initrds=tuple(url(i) for i in e.initrds),
            devicetree=url(e.devicetree) if e.devicetree else None,
        )
        for e in result.entries
    )
    return dataclasses.replace(result, entries=entries)


async def start(daemon: Daemon, run_dir: Path = RUN_DIR, marker: Path = MARKER) -> None:
    """DHCP on every Ethernet interface (those of `network_interfaces` only, when given), each in its own task;
    nothing at all when `network = false`, and never outside the payload (a daemon run on a workstation must not
    reconfigure its network). Run again by a rescan: every interface gets DHCP again, a new one its first."""
    if not daemon.settings.network:
        log.info("network = false: no interface is touched")
        return
    if not marker.exists():
        log.info("not in the payload (%s missing): no network boot", marker)
        return
    loop = asyncio.get_running_loop()
    found = await loop.run_in_executor(None, network.ethernet_interfaces, daemon.sys_root)
    names = chosen(daemon, found)
    jobs = [_interface(daemon, name, run_dir, first=name == names[0]) for name in names]
    await asyncio.gather(*jobs)


def chosen(daemon: Daemon, found: list[str]) -> list[str]:
    """The interfaces to use, in the order of `network_interfaces` when it names some; a named one that is not an
    Ethernet interface here is said on the status line."""
    wanted = daemon.settings.network_interfaces
    if not wanted:
        return found
    for name in wanted:
        if name not in found:
            daemon.say(
                Level.WARNING,
                f"network_interfaces: {name} is not an Ethernet interface here (found: {', '.join(found) or 'none'})",
            )
    return [name for name in wanted if name in found]


async def _interface(daemon: Daemon, name: str, run_dir: Path, *, first: bool) -> None:
    from discovery.daemon import JobResult

    loop = asyncio.get_running_loop()
    record = daemon.records.get(name)
    if record is None:
        record = daemon._new_record(DeviceInfo(name=name, node=name, kind=KIND, message="DHCP"))
    else:
        daemon._set_info(record, message="DHCP")
    try:
        lease = await loop.run_in_executor(None, _lease, daemon, name, run_dir, first)
    except NetworkError as exc:
        daemon._set_info(record, state=DeviceState.FAILED, message=str(exc))
        daemon.say(Level.WARNING, f"{name}: {exc}")
        return
    daemon.net_leases[name] = lease
    if lease.dhcp_server:
        daemon.say(Level.INFO, f"{name}: lease {lease.address} from {lease.dhcp_server}, TFTP {lease.tftp_server}")
    fs = Filesystem(root=run_dir / name / "tftp", name=name, fstype="tftp")
    fs.root.mkdir(parents=True, exist_ok=True)
    result = await loop.run_in_executor(None, load_pxelinux, lease, fs, daemon.sys_root)
    daemon._apply(record, JobResult(None, fs, result, None, DeviceState.MOUNTED, ""))
    daemon._set_info(record, fstype=lease.describe())


def _lease(daemon: Daemon, name: str, run_dir: Path, first: bool) -> Lease:
    """DHCP, or the static address of `bootmenu.ip=` for this interface (its `dev`, else the first interface):
    instead of DHCP with autoconf off/none, else when DHCP gets no lease."""
    ip = daemon.settings.ip
    mine = ip is not None and (ip.device == name or (not ip.device and first))
    if ip is None or not mine or ip.dhcp_first:
        try:
            return network.dhcp(name, run_dir, daemon.sys_root)
        except NetworkError as exc:
            if ip is None or not mine:
                raise
            log.warning("%s; the static address of bootmenu.ip= instead", exc)
    network.static(name, ip.client, ip.prefix_length, ip.gateway, daemon.sys_root)
    log.info("%s: static address %s/%d (bootmenu.ip=)", name, ip.client, ip.prefix_length)
    return Lease(
        interface=name,
        address=ip.client,
        mask=str(ip.prefix_length),
        router=ip.gateway,
        dns=ip.dns,
        tftp_server=ip.server or ip.gateway,
        mac=network.mac_of(name, daemon.sys_root),
    )


# A progress line at most this often per file (the first at once, so even a fast transfer shows one).
PROGRESS_EVERY = 1.0
MIB = 1 << 20


class _Progress:
    """Called from the fetching thread; says `<url>: 3.1 of 20.0 MiB (15%), 2.4 MiB/s` on every menu's status line
    through the daemon's loop, at most every PROGRESS_EVERY seconds."""

    def __init__(self, daemon: Daemon, loop: asyncio.AbstractEventLoop, url: str) -> None:
        self.daemon, self.loop, self.url = daemon, loop, url
        self.started = time.monotonic()
        self.last = -PROGRESS_EVERY

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY or (total is not None and done >= total):
            return
        self.last = now
        self.loop.call_soon_threadsafe(
            self.daemon.say, Level.INFO, f"{self.url}: {progress_text(done, total, now - self.started)}"
        )


def progress_text(done: int, total: int | None, seconds: float) -> str:
    rate = f"{done / MIB / seconds:.1f} MiB/s" if seconds > 0 else "? MiB/s"
    if total:
        return f"{done / MIB:.1f} of {total / MIB:.1f} MiB ({100 * done // total}%), {rate}"
    return f"{done / MIB:.1f} MiB, {rate}"


async def fetch(daemon: Daemon, name: str, fs: Filesystem, entry: BootEntry, title: str) -> list[Path] | None:
    """Fetches the entry's kernel, initrds and devicetree (URLs) into `fs`: their local paths, in that order, or
    None (said why, with the URL) on a failure. Each file may use what is free in the tmpfs but RESERVE."""
    if daemon.net_leases.get(name) is None:
        daemon.say(Level.ERROR, f"cannot boot {title}: {name} has no lease")
        return None
    loop = asyncio.get_running_loop()
    fetched: list[Path] = []
    for index, url in enumerate((entry.kernel, *entry.initrds, *([entry.devicetree] if entry.devicetree else []))):
        # One name per file of the boot (two initrds may share a basename on different servers).
        local = fs.root / ".boot" / f"{index}-{url.rpartition('/')[2] or 'file'}"
        limit = max(network.free_bytes(fs.root) - RESERVE, 0)
        daemon.say(Level.INFO, f"fetching {url}")
        started = time.monotonic()
        try:
            size = await loop.run_in_executor(None, network.fetch, url, local, limit, _Progress(daemon, loop, url))
        except NetworkError as exc:
            daemon.say(Level.ERROR, f"cannot boot {title}: {exc}")
            for done in fetched:  # the tmpfs is memory: do not keep half an entry
                done.unlink(missing_ok=True)
            return None
        fetched.append(local)
        seconds = time.monotonic() - started
        daemon.say(
            Level.INFO, f"fetched {url}: {size} bytes in {seconds:.1f} s, {size / MIB / max(seconds, 1e-3):.1f} MiB/s"
        )
    return fetched
