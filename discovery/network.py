"""Network boot, first slice (issue 14): DHCP leases through busybox udhcpc, pxelinux configs and files over TFTP.

The config lookup follows PXELINUX (syslinux wiki, "PXELINUX", Configuration): `pxelinux.cfg/01-<mac>` (ARP type 1,
lower-case hex, dashes), then the client address in upper-case hex narrowed one digit at a time, then `default`,
all under the path prefix: DHCP option 210 (RFC 5071) when given, else the directory of the bootfile. Option 209
(RFC 5071, the config file) replaces the lookup. The TFTP server is option 66 (RFC 2132), else the BOOTP siaddr,
else the DHCP server. Files are fetched with busybox `tftp` (RFC 1350, `-b` asks for RFC 2348 blksize).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# The script udhcpc runs on every event: on a lease it configures the address and the default route and writes the
# lease's variables (udhcpc(8) exports one per option; unknown ones as optNNN=hex) to $LEASE_DIR/$interface.lease.
UDHCPC_SCRIPT = """\
#!/bin/sh
# udhcpc event script of bootmenu (discovery/network.py writes it)
case "$1" in
deconfig)
    ip addr flush dev "$interface" 2>/dev/null
    ip link set dev "$interface" up
    ;;
bound | renew)
    ip addr flush dev "$interface" 2>/dev/null
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for gw in $router; do ip route add default via "$gw" dev "$interface" 2>/dev/null; break; done
    tmp="$LEASE_DIR/$interface.lease.tmp"
    {
        for var in interface ip mask router dns serverid siaddr boot_file tftp bootfile opt209 opt210; do
            eval "value=\\$$var"
            echo "$var=$value"
        done
    } >"$tmp" && mv "$tmp" "$LEASE_DIR/$interface.lease"
    ;;
esac
exit 0
"""
# udhcpc: 4 discovers 2 s apart; carrier within CARRIER_TIMEOUT; each TFTP transfer within TFTP_TIMEOUT.
DHCP_TRIES = 4
DHCP_PAUSE = 2
DHCP_TIMEOUT = 30.0
CARRIER_TIMEOUT = 10.0
TFTP_TIMEOUT = 120.0
TFTP_BLKSIZE = 1468  # fits a 1500-byte Ethernet MTU with IP and UDP headers
# A config file larger than this is not a pxelinux menu.
CONFIG_LIMIT = 1 << 20
ARPHRD_ETHER = "1"
# At most this many interfaces get DHCP (a machine with more is not booted from all of them).
MAX_INTERFACES = 8


class NetworkError(Exception):
    """DHCP failed, or a TFTP transfer failed, named with its URL."""


@dataclass(frozen=True)
class Lease:
    """What udhcpc's script recorded for one interface."""

    interface: str
    address: str
    mask: str = ""
    router: str = ""
    dns: tuple[str, ...] = ()
    dhcp_server: str = ""
    tftp_server: str = ""  # option 66, else siaddr, else the DHCP server
    bootfile: str = ""  # option 67, else the BOOTP file field
    config_file: str = ""  # option 209
    prefix: str = ""  # option 210
    mac: str = ""

    @classmethod
    def parse(cls, text: str, mac: str = "") -> Lease:
        values: dict[str, str] = {}
        for line in text.splitlines()[:64]:
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip()

        def option(name: str) -> str:
            raw = values.get(name, "")
            try:  # udhcpc passes options it has no name for as hex
                return bytes.fromhex(raw).decode("ascii", "replace").rstrip("\0") if raw else ""
            except ValueError:
                return raw

        siaddr = values.get("siaddr", "")
        server = (
            values.get("tftp", "") or (siaddr if siaddr not in ("", "0.0.0.0") else "") or values.get("serverid", "")
        )
        return cls(
            interface=values.get("interface", ""),
            address=values.get("ip", ""),
            mask=values.get("mask", ""),
            router=values.get("router", "").split(" ")[0],
            dns=tuple(values.get("dns", "").split()),
            dhcp_server=values.get("serverid", ""),
            tftp_server=server,
            bootfile=values.get("bootfile", "") or values.get("boot_file", ""),
            config_file=option("opt209"),
            prefix=option("opt210"),
            mac=mac,
        )

    @property
    def path_prefix(self) -> str:
        """Where relative paths start on the TFTP server, "" for its root (pxelinux: the bootfile's directory)."""
        if self.prefix:
            return self.prefix.lstrip("/")
        parent = str(PurePosixPath(self.bootfile.lstrip("/")).parent) if self.bootfile else "."
        return "" if parent == "." else parent + "/"

    def url(self, path: str) -> str:
        return f"tftp://{self.tftp_server}/{path.lstrip('/')}"

    def describe(self) -> str:
        """`10.0.2.15 from 10.0.2.2`: the menu's device header shows it after the interface name."""
        return f"{self.address} from {self.tftp_server or self.dhcp_server or '?'}"


def config_candidates(mac: str, address: str) -> list[str]:
    """The pxelinux.cfg names tried in order, relative to the prefix."""
    names = []
    if mac:
        names.append("pxelinux.cfg/01-" + mac.lower().replace(":", "-"))
    if address:
        try:
            hexip = "".join(f"{int(part):02X}" for part in address.split("."))
        except ValueError:
            hexip = ""
        if len(hexip) == 8:
            names.extend(f"pxelinux.cfg/{hexip[:n]}" for n in range(8, 0, -1))
    names.append("pxelinux.cfg/default")
    return names


def ethernet_interfaces(sys_root: Path = Path("/sys")) -> list[str]:
    """Interfaces with a driver-backed device (not lo, bridges or tunnels) of ARP type Ethernet, sorted."""
    found = []
    base = sys_root / "class" / "net"
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    for name in names:
        try:
            kind = (base / name / "type").read_text().strip()
        except OSError:
            continue
        if kind == ARPHRD_ETHER and (base / name / "device").exists():
            found.append(name)
    return found[:MAX_INTERFACES]


def _run(argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None) -> str:
    """One command with a time bound; its stderr (or exit status) in the NetworkError when it fails."""
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, errors="replace", timeout=timeout, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        raise NetworkError(f"{argv[0]}: no answer within {timeout:g} s") from None
    except OSError as exc:
        raise NetworkError(f"{argv[0]}: {exc.strerror}") from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise NetworkError(lines[-1] if lines else f"{argv[0]}: exit status {proc.returncode}")
    return proc.stdout


def wait_carrier(interface: str, sys_root: Path = Path("/sys"), timeout: float = CARRIER_TIMEOUT) -> bool:
    path = sys_root / "class" / "net" / interface / "carrier"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if path.read_text().strip() == "1":
                return True
        except OSError:
            pass  # EINVAL while the link is still down
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def dhcp(interface: str, run_dir: Path, sys_root: Path = Path("/sys")) -> Lease:
    """Brings `interface` up, waits for carrier and runs udhcpc once; the lease, or NetworkError."""
    run_dir.mkdir(parents=True, exist_ok=True)
    script = run_dir / "udhcpc.script"
    if not script.exists():
        script.write_text(UDHCPC_SCRIPT)
        script.chmod(0o755)
    _run(["ip", "link", "set", "dev", interface, "up"], 10)
    if not wait_carrier(interface, sys_root):
        raise NetworkError(f"{interface}: no carrier within {CARRIER_TIMEOUT:g} s")
    lease_file = run_dir / f"{interface}.lease"
    lease_file.unlink(missing_ok=True)
    argv = ["udhcpc", "-i", interface, "-f", "-q", "-n", "-t", str(DHCP_TRIES), "-T", str(DHCP_PAUSE)]
    argv += ["-s", str(script), "-V", "PXEClient:Arch:00000:UNDI:002001"]
    for option in ("tftp", "bootfile", "209", "210"):
        argv += ["-O", option]
    try:
        _run(argv, DHCP_TIMEOUT, env={**os.environ, "LEASE_DIR": str(run_dir)})
    except NetworkError as exc:
        raise NetworkError(f"{interface}: DHCP: {exc}") from None
    try:
        text = lease_file.read_text()
    except OSError as exc:
        raise NetworkError(f"{interface}: DHCP: no lease recorded ({lease_file}: {exc.strerror})") from None
    try:
        mac = (sys_root / "class" / "net" / interface / "address").read_text().strip()
    except OSError:
        mac = ""
    return Lease.parse(text, mac)


def tftp_get(server: str, remote: str, local: Path, limit: int) -> int:
    """Fetches `remote` from `server` into `local`; its size. NetworkError names the URL and the cause; a file over
    `limit` bytes is removed (busybox cannot stop at a size: the check comes after the transfer)."""
    url = f"tftp://{server}/{remote}"
    local.parent.mkdir(parents=True, exist_ok=True)
    argv = ["tftp", "-g", "-b", str(TFTP_BLKSIZE), "-r", remote, "-l", str(local), server]
    try:
        _run(argv, TFTP_TIMEOUT)
        size = local.stat().st_size
    except (NetworkError, OSError) as exc:
        local.unlink(missing_ok=True)
        raise NetworkError(f"{url}: {exc}") from None
    if size > limit:
        local.unlink(missing_ok=True)
        raise NetworkError(f"{url}: {size} bytes, more than the {limit}-byte limit")
    return size


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem of `path` (the tmpfs fetched files go to)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
