"""The network as a device of the daemon (issue 14, first slice): one record per Ethernet interface with a lease.

Each interface gets DHCP (discovery.network); its pxelinux config is fetched over TFTP into a tmpfs directory that
stands for the TFTP prefix (a `Filesystem` whose root is that directory), parsed by the syslinux loader, and its
entries are listed like a disk's. The kernel and initrds are fetched into the same directory only when an entry is
booted; then the daemon's usual prepare/load/execute path runs on the local copies.
"""

from __future__ import annotations

import asyncio
import logging
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


def load_pxelinux(lease: Lease, fs: Filesystem) -> LoadResult:
    """The first config of the pxelinux lookup order the server has, parsed; an empty result when none is there."""
    names = (
        [lease.config_file.lstrip("/")] if lease.config_file else network.config_candidates(lease.mac, lease.address)
    )
    misses = []
    for name in names:
        remote = lease.path_prefix + name if not lease.config_file else name
        try:
            network.tftp_get(lease.tftp_server, remote, fs.root / name, network.CONFIG_LIMIT)
        except NetworkError as exc:
            misses.append(str(exc))
            continue
        log.info("%s: pxelinux config %s", lease.interface, lease.url(remote))
        return syslinux.load_config(fs, "/" + name, workdir="/")
    log.info("%s: no pxelinux config: %s", lease.interface, "; ".join(misses))
    return LoadResult()


async def start(daemon: Daemon, run_dir: Path = RUN_DIR, marker: Path = MARKER) -> None:
    """DHCP on every Ethernet interface, each in its own task; nothing at all when `network = false`, and never
    outside the payload (a daemon run on a workstation must not reconfigure its network)."""
    if not daemon.settings.network:
        log.info("network = false: no interface is touched")
        return
    if not marker.exists():
        log.info("not in the payload (%s missing): no network boot", marker)
        return
    loop = asyncio.get_running_loop()
    names = await loop.run_in_executor(None, network.ethernet_interfaces, daemon.sys_root)
    for name in names:
        if name not in daemon.records:
            daemon.background(_interface(daemon, name, run_dir))


async def _interface(daemon: Daemon, name: str, run_dir: Path) -> None:
    from discovery.daemon import JobResult

    loop = asyncio.get_running_loop()
    record = daemon._new_record(DeviceInfo(name=name, node=name, kind=KIND, message="DHCP"))
    try:
        lease = await loop.run_in_executor(None, network.dhcp, name, run_dir, daemon.sys_root)
    except NetworkError as exc:
        daemon._set_info(record, state=DeviceState.FAILED, message=str(exc))
        daemon.say(Level.WARNING, f"{name}: {exc}")
        return
    daemon.net_leases[name] = lease
    daemon.say(Level.INFO, f"{name}: lease {lease.address} from {lease.dhcp_server}, TFTP {lease.tftp_server}")
    fs = Filesystem(root=run_dir / name / "tftp", name=name, fstype="tftp")
    fs.root.mkdir(parents=True, exist_ok=True)
    result = await loop.run_in_executor(None, load_pxelinux, lease, fs)
    daemon._apply(record, JobResult(None, fs, result, None, DeviceState.MOUNTED, ""))
    daemon._set_info(record, fstype=lease.describe())


async def fetch(daemon: Daemon, name: str, fs: Filesystem, entry: BootEntry, title: str) -> bool:
    """Fetches the entry's kernel, initrds and devicetree into `fs` over TFTP; False (said why) on a failure."""
    lease = daemon.net_leases.get(name)
    if lease is None:
        daemon.say(Level.ERROR, f"cannot boot {title}: {name} has no lease")
        return False
    loop = asyncio.get_running_loop()
    fetched: list[Path] = []
    for path in (entry.kernel, *entry.initrds, *([entry.devicetree] if entry.devicetree else [])):
        remote = lease.path_prefix + path.lstrip("/")
        local = fs.root / path.lstrip("/")
        limit = max(network.free_bytes(fs.root) - RESERVE, 0)
        daemon.say(Level.INFO, f"fetching {lease.url(remote)}")
        try:
            size = await loop.run_in_executor(None, network.tftp_get, lease.tftp_server, remote, local, limit)
        except NetworkError as exc:
            daemon.say(Level.ERROR, f"cannot boot {title}: {exc}")
            for done in fetched:  # the tmpfs is memory: do not keep half an entry
                done.unlink(missing_ok=True)
            return False
        fetched.append(local)
        daemon.say(Level.INFO, f"fetched {lease.url(remote)}: {size} bytes")
    return True
