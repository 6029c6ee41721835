"""The network as a device of the daemon (issue 14): one record per Ethernet interface with a lease.

Each interface gets DHCP (discovery.network), or the static address of `bootmenu.ip=`; its config is fetched into a
tmpfs directory that stands for the network (a `Filesystem` whose root is the TFTP server's root; `/http/<host>/...`
holds `http://<host>/...`, see network.url_of): a pxelinux config (PXELINUX's lookup order) parsed by the syslinux
loader, or a GRUB config (when DHCP names GRUB; GRUB's net boot lookup order) evaluated by the GRUB interpreter with
GRUB's network devices and variables. Files these read (INCLUDE, CONFIG, source, configfile) are fetched as they
are met. Its entries are listed like a disk's, each file named by its URL. The kernel and initrds are fetched only
when an entry is booted, with progress on every menu's status line; then the daemon's usual prepare/load/execute
path runs on the local copies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from discovery import dmi, network, syslinux
from discovery.entry import BootEntry, LoadResult, SourceFormat
from discovery.fs import Filesystem, Platform
from discovery.grub import loader as grub_loader
from discovery.grub.evaluator import Network
from discovery.loaders import LoadContext
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
# Where a boot's files are fetched to, in the interface's tree (a name no URL maps to: see network.url_of).
BOOT_DIR = ".boot"
# INCLUDE/CONFIG files fetched for one config at most (real menus have a few; each costs a transfer).
MAX_CONFIGS = 64


# A bootfile that is GRUB (grub-mknetdir's core.0/core.efi, distributions' grub*.efi and the shim that loads it):
# its config is GRUB's, looked up as GRUB's net boot does.
GRUB_IMAGE = re.compile(r"^(core\.(0|efi)|grub.*\.(efi|0|pxe|img)|shim.*\.efi|bootx64\.efi|bootaa64\.efi)$", re.I)
# grub-mknetdir puts the image in a platform directory below the prefix (`/boot/grub/x86_64-efi/core.efi`).
GRUB_PLATFORM_DIR = re.compile(r"^[a-z0-9_]+-(pc|efi|ieee1275|coreboot|xen|uboot|emu)$")
# Network boot programs a PXE ROM runs (pxelinux.0, iPXE's undionly.kpxe, GRUB's and shim's .efi, lkrn/com
# images): a bootfile named so is never taken for a kernel.
NBP = re.compile(r"\.(0|pxe|kpxe|kkpxe|kkkpxe|lkrn|krn|efi|com|n12|c32|cfg)$", re.I)
# How long reading one network config may take, its INCLUDE/source transfers included.
CONFIG_DEADLINE = 60.0


@dataclass(frozen=True)
class Plan:
    """Which loader reads the interface's config, the config paths tried in order (in the network tree) and, for
    GRUB, its `$prefix` directory."""

    grub: bool
    candidates: tuple[str, ...]
    prefix: str = "/"


def plan(lease: Lease, uuid: str = "") -> Plan:
    """GRUB when option 209 or the bootfile names a `grub*` config, or the bootfile is a GRUB image; else pxelinux."""
    if lease.config_file:
        path = lease.config_path(lease.config_file)
        grub = PurePosixPath(path).name.lower().startswith("grub")
        return Plan(grub, (path,), str(PurePosixPath(path).parent))
    boot = lease.bootfile
    name = boot.rpartition("/")[2]
    if name.lower().startswith("grub") and ".cfg" in name.lower():
        path = network.local_path(boot) if "://" in boot else "/" + boot.lstrip("/")
        return Plan(True, (path,), str(PurePosixPath(path).parent))
    if GRUB_IMAGE.match(name):
        if lease.prefix:
            prefix = lease.workdir
        else:
            image_dir = PurePosixPath(network.local_path(boot) if "://" in boot else "/" + boot.lstrip("/")).parent
            prefix = str(image_dir.parent if GRUB_PLATFORM_DIR.match(image_dir.name) else image_dir)
        names = network.grub_config_candidates(lease.mac, lease.address)
        return Plan(True, tuple(f"{prefix.rstrip('/')}/{n}" for n in names), prefix)
    names = network.config_candidates(lease.mac, lease.address, uuid)
    return Plan(False, tuple(lease.config_path(n) for n in names))


def load_network_config(lease: Lease, fs: Filesystem, sys_root: Path = Path("/sys")) -> LoadResult:
    """The first config of the lookup order the server has, parsed by the syslinux loader or evaluated by the GRUB
    interpreter (the files it INCLUDEs, CONFIGs, `source`s fetched as they are met); an empty result when none is
    there. Its entries name their files by URL."""
    chosen = plan(lease, network.client_uuid(sys_root))
    what = "GRUB" if chosen.grub else "pxelinux"
    misses = []
    for path in chosen.candidates:
        url = lease.url(path)
        try:
            network.fetch(url, fs.root / path.lstrip("/"), network.CONFIG_LIMIT)
        except NetworkError as exc:
            misses.append(str(exc))
            continue
        log.info("%s: %s config %s", lease.interface, what, url)
        fetch = _fetcher(lease, fs)
        if chosen.grub:
            ctx = LoadContext(platform=Platform.detect(), deadline=time.monotonic() + CONFIG_DEADLINE)
            result, _ = grub_loader.evaluate(fs, path, ctx, network=grub_network(lease, chosen.prefix, path, fetch))
        else:
            result = syslinux.load_config(fs, path, workdir=lease.workdir, fetch=fetch, sysappend=dmi.machine())
        return with_urls(lease, result)
    log.info("%s: no %s config: %s", lease.interface, what, "; ".join(misses))
    entry = bootfile_entry(lease, chosen, fs.name)
    return LoadResult(entries=(entry,)) if entry is not None else LoadResult()


def bootfile_entry(lease: Lease, chosen: Plan, device: str) -> BootEntry | None:
    """Petitboot's answer to a DHCP bootfile that no config goes with: the bootfile itself is the kernel, one entry
    with no command line (the boot fetches and inspects it like any kernel, so a program that is not one is refused
    then, naming its URL). A network boot program's name (NBP) or a GRUB lookup never makes one."""
    name = lease.bootfile.rpartition("/")[2]
    if chosen.grub or not name or NBP.search(name):
        return None
    # The bootfile (option 67, the BOOTP file field) is a path from the TFTP server's root, not from option 210.
    url = lease.bootfile if "://" in lease.bootfile else lease.url("/" + lease.bootfile.lstrip("/"))
    return BootEntry(
        title=f"{name} (DHCP bootfile)",
        kernel=url,
        format=SourceFormat.DHCP,
        config=url,
        device=device,
        config_device=device,
        default=True,
    )


def _device_of(lease: Lease, path: str) -> str:
    """`(tftp,SERVER)/dir` or `(http,HOST)/dir`: a directory of the network tree as GRUB names it."""
    url = lease.url(path)
    scheme, _, rest = url.partition("://")
    host, _, tail = rest.partition("/")
    return f"({scheme},{host})/{tail}".rstrip("/") if tail else f"({scheme},{host})"


def grub_network(lease: Lease, prefix: str, config: str, fetch: Callable[[str], None]) -> Network:
    """What GRUB's net boot sets (grub-core/net/bootp.c, net.c) from the lease, and its network devices. `<if>` in
    `$net_<if>_*` is the Linux interface name (GRUB's own names, efinet0 or pxe, depend on the firmware)."""
    server = lease.tftp_server
    card = lease.interface
    directory = str(PurePosixPath(config).parent)
    env = {
        "root": f"tftp,{server}",
        "prefix": _device_of(lease, prefix),
        "cmdpath": _device_of(lease, prefix),
        "config_directory": _device_of(lease, directory),
        "config_file": f"{_device_of(lease, directory)}/{PurePosixPath(config).name}",
        "net_default_interface": card,
        "net_default_ip": lease.address,
        "net_default_mac": lease.mac.lower(),
        "net_default_server": server,
        "pxe_default_server": server,
        f"net_{card}_ip": lease.address,
        f"net_{card}_mac": lease.mac.lower(),
        f"net_{card}_boot_file": lease.bootfile,
        f"net_{card}_next_server": server,
        f"net_{card}_dhcp_server_name": lease.dhcp_server,
    }

    def path(device: str, file: str) -> str | None:
        kind, _, host = device.partition(",")
        kind = kind.lower()
        host = host or server
        if kind in ("tftp", "pxe"):
            return file if host == server else f"/tftp/{host}{file}"
        if kind == "http":
            return f"/http/{host}{file}"
        return None

    return Network(env=tuple(env.items()), path=path, fetch=fetch)


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
        # A rescan whose DHCP fails: the old address is gone (udhcpc deconfigured it), so are its entries.
        daemon.net_leases.pop(name, None)
        daemon._drop_entries(record)
        daemon._set_info(record, state=DeviceState.FAILED, message=str(exc))
        daemon.say(Level.WARNING, f"{name}: {exc}")
        return
    daemon.net_leases[name] = lease
    if lease.dhcp_server:
        daemon.say(Level.INFO, f"{name}: lease {lease.address} from {lease.dhcp_server}, TFTP {lease.tftp_server}")
    fs = Filesystem(root=run_dir / name / "tftp", name=name, fstype="tftp")
    fs.root.mkdir(parents=True, exist_ok=True)
    result = await loop.run_in_executor(None, load_network_config, lease, fs, daemon.sys_root)
    daemon._apply(record, JobResult(None, fs, result, None, DeviceState.MOUNTED, ""))
    daemon._set_info(record, fstype=lease.describe())
    if lease.link_up:  # the figure `make bench` reads (tools/bench_net.py)
        now = time.monotonic()
        daemon.say(
            Level.INFO,
            f"{name}: {len(result.entries)} network entries listed {now - lease.link_up:.2f} s after the link came up "
            f"(DHCP {lease.leased - lease.link_up:.2f} s, config {now - lease.leased:.2f} s)",
        )


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
    boot_dir = fs.root / BOOT_DIR
    # What an earlier boot of this interface fetched (its kexec failed, or it was a dry run): memory, given back.
    for old in boot_dir.iterdir() if boot_dir.is_dir() else ():
        old.unlink(missing_ok=True)
    for index, url in enumerate((entry.kernel, *entry.initrds, *([entry.devicetree] if entry.devicetree else []))):
        # One name per file of the boot (two initrds may share a basename on different servers).
        local = boot_dir / f"{index}-{url.rpartition('/')[2] or 'file'}"
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
