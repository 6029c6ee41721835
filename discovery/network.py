"""Network boot, first slice (issue 14): DHCP leases through busybox udhcpc, pxelinux configs and files over TFTP.

The config lookup follows PXELINUX (syslinux wiki, "PXELINUX", Configuration): `pxelinux.cfg/<uuid>` (the client
UUID PXE clients send as option 97, RFC 4578: SMBIOS's, lower-case with dashes), `pxelinux.cfg/01-<mac>` (ARP type
1, lower-case hex, dashes), then the client address in upper-case hex narrowed one digit at a time, then `default`,
all under the path prefix: DHCP option 210 (RFC 5071) when given, else the directory of the bootfile. Option 209
(RFC 5071, the config file) replaces the lookup. The TFTP server is option 66 (RFC 2132), else the BOOTP siaddr,
else the DHCP server. Files are fetched with busybox `tftp` (RFC 1350, `-b` asks for RFC 2348 blksize), or over
HTTP/1.1 (RFC 9110/9112) with Python's http.client for `http://` URLs (lpxelinux, GRUB's `(http)`).

Every fetched file lives in one tmpfs tree that stands for the network: a path `/x` there is `tftp://<server>/x`
on the lease's TFTP server, `/<scheme>/<host>/x` is `<scheme>://<host>/x` (`local_path` and `url_of`).
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import http.client

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
        for var in interface ip mask router dns serverid siaddr boot_file tftp bootfile opt43 opt209 opt210; do
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
# HTTP: each connect and read within HTTP_TIMEOUT; a transfer tried FETCH_TRIES times (a missing file once), waiting
# RETRY_PAUSE, then twice that, between tries; at most MAX_REDIRECTS redirects, to http:// only; read in CHUNK bytes.
HTTP_TIMEOUT = 20.0
FETCH_TRIES = 3
RETRY_PAUSE = 1.0
MAX_REDIRECTS = 4
CHUNK = 1 << 16
# While a TFTP transfer runs, its file's size is looked at this often (progress, and the size cap mid-transfer).
POLL = 0.25
URL_SCHEMES = ("tftp", "http")
# A config file larger than this is not a pxelinux menu.
CONFIG_LIMIT = 1 << 20
ARPHRD_ETHER = "1"
# At most this many interfaces get DHCP (a machine with more is not booted from all of them).
MAX_INTERFACES = 8


class NetworkError(Exception):
    """DHCP failed, or a transfer failed, named with its URL."""


class _Missing(NetworkError):
    """The server says the file is not there: trying again will not help."""


# Called with (bytes so far, total or None when the server does not say) while a file arrives.
Progress = Callable[[int, "int | None"], None]


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
    link_up: float = 0.0  # time.monotonic() when the carrier was seen (0: not known)
    leased: float = 0.0  # time.monotonic() when the address was set

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
        """Where relative paths start on the TFTP server, "" for its root (pxelinux: the bootfile's directory). An
        `http://` prefix or bootfile (lpxelinux, iPXE) is kept as a URL."""
        if self.prefix:
            return self.prefix if _is_url(self.prefix) else self.prefix.lstrip("/")
        if _is_url(self.bootfile):
            return self.bootfile.rpartition("/")[0] + "/"
        parent = str(PurePosixPath(self.bootfile.lstrip("/")).parent) if self.bootfile else "."
        return "" if parent == "." else parent + "/"

    @property
    def workdir(self) -> str:
        """The path prefix as a directory of the network tree (see url_of): where a config's relative paths start."""
        prefix = self.path_prefix
        local = local_path(prefix) if _is_url(prefix) else "/" + prefix
        return local.rstrip("/") or "/"

    def config_path(self, name: str) -> str:
        """Where the config `name` is in the network tree: a URL as it says, `/x` and `::x` from the server's root,
        anything else under the path prefix (option 209 relative to option 210, RFC 5071)."""
        if _is_url(name):
            return local_path(name)
        if name.startswith(("/", "::")):
            return "/" + name.lstrip(":/")
        return f"{self.workdir.rstrip('/')}/{name}"

    def url(self, path: str) -> str:
        return url_of(self.tftp_server, path)

    def describe(self) -> str:
        """`10.0.2.15 from 10.0.2.2`: the menu's device header shows it after the interface name (`static` for an
        address of bootmenu.ip=)."""
        how = "from" if self.dhcp_server else "static, TFTP"
        return f"{self.address} {how} {self.tftp_server or self.dhcp_server or '?'}"


def _is_url(text: str) -> bool:
    return text.partition("://")[0].lower() in URL_SCHEMES and "://" in text


def config_candidates(mac: str, address: str, uuid: str = "") -> list[str]:
    """The pxelinux.cfg names tried in order, relative to the prefix."""
    names = []
    if uuid:
        names.append("pxelinux.cfg/" + uuid)
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


def grub_config_candidates(mac: str, address: str) -> list[str]:
    """The config names GRUB's net boot tries in `$prefix` (grub-core/net/net.c, grub_net_search_config_file; the
    manual's "Network" node): `grub.cfg-01-<mac>`, `grub.cfg-<HEXIP>` narrowed one digit at a time, `grub.cfg`. (The
    UUID name GRUB tries only with a client UUID the DHCP server echoed, which udhcpc does not report.)"""
    return [
        name.replace("pxelinux.cfg/", "grub.cfg-").replace("grub.cfg-default", "grub.cfg")
        for name in config_candidates(mac, address)
    ]


def client_uuid(sys_root: Path = Path("/sys")) -> str:
    """SMBIOS's system UUID as Linux shows it (lower-case, dashes), "" when absent or a placeholder (all 0 or all
    1 bits: "not set" in SMBIOS 2.6 section 7.2.1)."""
    try:
        text = (sys_root / "class" / "dmi" / "id" / "product_uuid").read_text().strip().lower()
    except OSError:  # EACCES for non-root, ENOENT without DMI
        return ""
    digits = text.replace("-", "")
    if (
        len(digits) != 32
        or any(c not in "0123456789abcdef" for c in digits)
        or set(digits) <= {"0"}
        or set(digits) <= {"f"}
    ):
        return ""
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


# RFC 4578 client system architecture types (option 93; the `Arch:` of the vendor class, option 60): x86 BIOS, so a
# server answers with the pxelinux it offers BIOS clients, whose config this reads; arm64 and others as UEFI.
CLIENT_ARCH = {"x86_64": 0x0000, "i686": 0x0000, "aarch64": 0x000B, "riscv64": 0x001B, "ppc64le": 0x000E}


def pxe_options(machine: str, uuid: str) -> list[str]:
    """udhcpc arguments sending what a PXE client sends (PXE 2.1 spec, RFC 4578): option 60 `PXEClient:Arch:...:
    UNDI:002001`, 93 (architecture), 94 (network interface: UNDI 2.1), 97 (client UUID) when known; and asking for
    43 (vendor options: PXE menus), 66, 67, 209 and 210."""
    arch = CLIENT_ARCH.get(machine, 0x0000)
    argv = ["-V", f"PXEClient:Arch:{arch:05d}:UNDI:002001", "-x", f"0x5d:{arch:04x}", "-x", "0x5e:010201"]
    if uuid:
        argv += ["-x", "0x61:00" + uuid.replace("-", "")]
    for option in ("43", "tftp", "bootfile", "209", "210"):
        argv += ["-O", option]
    return argv


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


def _run(
    argv: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
    watch: Callable[[], None] | None = None,
) -> str:
    """One command with a time bound; its stderr (or exit status) in the NetworkError when it fails. `watch` is
    called every POLL seconds while it runs; what it raises stops the command (killed) and is raised."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=env,
        )
    except OSError as exc:
        raise NetworkError(f"{argv[0]}: {exc.strerror}") from None
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=POLL if watch is not None else timeout)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    raise NetworkError(f"{argv[0]}: no answer within {timeout:g} s") from None
                if watch is not None:
                    watch()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode != 0:
        lines = (err or out).strip().splitlines()
        raise NetworkError(lines[-1] if lines else f"{argv[0]}: exit status {proc.returncode}")
    return out


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
    link_up = time.monotonic()
    lease_file = run_dir / f"{interface}.lease"
    lease_file.unlink(missing_ok=True)
    argv = ["udhcpc", "-i", interface, "-f", "-q", "-n", "-t", str(DHCP_TRIES), "-T", str(DHCP_PAUSE)]
    argv += ["-s", str(script), *pxe_options(os.uname().machine, client_uuid(sys_root))]
    try:
        _run(argv, DHCP_TIMEOUT, env={**os.environ, "LEASE_DIR": str(run_dir)})
    except NetworkError as exc:
        raise NetworkError(f"{interface}: DHCP: {exc}") from None
    try:
        text = lease_file.read_text()
    except OSError as exc:
        raise NetworkError(f"{interface}: DHCP: no lease recorded ({lease_file}: {exc.strerror})") from None
    return replace(Lease.parse(text, mac_of(interface, sys_root)), link_up=link_up, leased=time.monotonic())


def static(interface: str, address: str, prefix_length: int, gateway: str, sys_root: Path = Path("/sys")) -> None:
    """Sets a static address (bootmenu.ip=) on `interface` and the default route; NetworkError on a failure. No
    carrier within CARRIER_TIMEOUT is an error too: nothing could be fetched."""
    _run(["ip", "link", "set", "dev", interface, "up"], 10)
    if not wait_carrier(interface, sys_root):
        raise NetworkError(f"{interface}: no carrier within {CARRIER_TIMEOUT:g} s")
    _run(["ip", "addr", "flush", "dev", interface], 10)
    _run(["ip", "addr", "add", f"{address}/{prefix_length}", "dev", interface], 10)
    if gateway:
        _run(["ip", "route", "replace", "default", "via", gateway, "dev", interface], 10)


def mac_of(interface: str, sys_root: Path = Path("/sys")) -> str:
    try:
        return (sys_root / "class" / "net" / interface / "address").read_text().strip()
    except OSError:
        return ""


def tftp_get(server: str, remote: str, local: Path, limit: int, progress: Progress | None = None) -> int:
    """Fetches `remote` from `server` into `local`; its size. NetworkError names the URL and the cause. The file's
    size is watched while it arrives: progress (busybox does not tell the total) and the `limit`, which stops the
    transfer. A timeout is tried again (FETCH_TRIES in all), a server error (file not found) is not."""
    url = f"tftp://{server}/{remote.lstrip('/')}"
    local.parent.mkdir(parents=True, exist_ok=True)
    argv = ["tftp", "-g", "-b", str(TFTP_BLKSIZE), "-r", remote.lstrip("/"), "-l", str(local), server]

    def watch() -> None:
        try:
            size = local.stat().st_size
        except OSError:
            return
        if size > limit:
            raise NetworkError(f"more than the {limit}-byte limit (free memory)")
        if progress is not None:
            progress(size, None)

    def once() -> int:
        try:
            _run(argv, TFTP_TIMEOUT, watch=watch)
            size = local.stat().st_size
        except OSError as exc:
            raise NetworkError(exc.strerror or str(exc)) from None
        except NetworkError as exc:
            # busybox: "tftp: server error: (1) File not found"; a refused size or a timeout may pass
            if "server error" in str(exc) or "limit" in str(exc):
                raise _Missing(str(exc)) from None
            raise
        if size > limit:
            raise _Missing(f"{size} bytes, more than the {limit}-byte limit")
        return size

    try:
        size = _tries(once)
    except NetworkError as exc:
        local.unlink(missing_ok=True)
        raise NetworkError(f"{url}: {exc}") from None
    if progress is not None:
        progress(size, size)
    return size


def _tries(once: Callable[[], int]) -> int:
    """`once()` up to FETCH_TRIES times while it fails with a NetworkError that is not _Missing."""
    pause = RETRY_PAUSE
    for attempt in range(1, FETCH_TRIES + 1):
        try:
            return once()
        except _Missing:
            raise
        except NetworkError as exc:
            if attempt == FETCH_TRIES:
                raise NetworkError(f"{exc} ({FETCH_TRIES} tries)") from None
        time.sleep(pause)  # the server or the link may be back by then
        pause *= 2
    raise AssertionError("unreachable")


def http_get(url: str, local: Path, limit: int, progress: Progress | None = None) -> int:
    """Fetches an `http://` URL into `local` with http.client; its size. A Content-Length over `limit` is refused
    before the body, a body growing past it is cut; connection errors, timeouts and 5xx answers are tried again
    (FETCH_TRIES), 4xx are not. NetworkError names the URL and the cause."""
    # Here, not at the top: http.client imports the email package, 1 s of the daemon's start under QEMU TCG that
    # only an http:// fetch needs (issue 15).
    import http.client

    local.parent.mkdir(parents=True, exist_ok=True)
    partial = local.with_name(local.name + ".part")

    def once() -> int:
        target = url
        for _ in range(MAX_REDIRECTS + 1):
            parts = urllib.parse.urlsplit(target)
            if parts.scheme != "http":
                raise _Missing(f"redirected to {target}: only http:// is supported (the payload has no TLS)")
            if not parts.hostname:
                raise _Missing("no host in the URL")
            try:
                conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=HTTP_TIMEOUT)
            except ValueError as exc:  # a port that is not a number
                raise _Missing(str(exc)) from None
            try:
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                conn.request("GET", path, headers={"User-Agent": "bootmenu", "Accept-Encoding": "identity"})
                answer = conn.getresponse()
                if answer.status in (301, 302, 303, 307, 308) and answer.getheader("Location"):
                    target = urllib.parse.urljoin(target, answer.getheader("Location", ""))
                    continue
                if answer.status != 200:
                    error = NetworkError if answer.status >= 500 else _Missing
                    raise error(f"HTTP {answer.status} {answer.reason}")
                return _body(answer, partial, limit, progress)
            except (OSError, http.client.HTTPException) as exc:
                raise NetworkError(_cause(exc)) from None
            finally:
                conn.close()
        raise _Missing(f"more than {MAX_REDIRECTS} redirects")

    try:
        size = _tries(once)
        partial.replace(local)
    except (NetworkError, OSError) as exc:
        partial.unlink(missing_ok=True)
        cause = exc if isinstance(exc, NetworkError) else _cause(exc)
        raise NetworkError(f"{url}: {cause}") from None
    return size


def _body(answer: http.client.HTTPResponse, partial: Path, limit: int, progress: Progress | None) -> int:
    import http.client  # (imported by http_get already)

    length = answer.getheader("Content-Length")
    total = int(length) if length and length.isdigit() else None
    if total is not None and total > limit:
        raise _Missing(f"{total} bytes, more than the {limit}-byte limit (free memory)")
    done = 0
    with partial.open("wb") as out:
        while True:
            try:
                chunk = answer.read(CHUNK)
            except http.client.IncompleteRead as exc:
                done += len(exc.partial)
                break
            if not chunk:
                break
            done += len(chunk)
            if done > limit:
                raise _Missing(f"more than the {limit}-byte limit (free memory)")
            out.write(chunk)
            if progress is not None:
                progress(done, total)
    if total is not None and done != total:
        raise NetworkError(f"connection closed after {done} of {total} bytes")
    if progress is not None:
        progress(done, done)
    return done


def _cause(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {HTTP_TIMEOUT:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def url_of(tftp_server: str, path: str) -> str:
    """The URL of a path of the network tree: `/<scheme>/<host>/x` is `<scheme>://<host>/x`, any other path is on
    the lease's TFTP server."""
    parts = path.lstrip("/").split("/", 2)
    if len(parts) == 3 and parts[0] in URL_SCHEMES and parts[1]:
        return f"{parts[0]}://{parts[1]}/{parts[2]}"
    return f"tftp://{tftp_server}/{path.lstrip('/')}"


def local_path(url: str) -> str:
    """Where a URL's file is in the network tree (the inverse of url_of for another server's URL)."""
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    return f"/{scheme.lower()}/{host}/{path}"


def fetch(url: str, local: Path, limit: int, progress: Progress | None = None) -> int:
    """A `tftp://` or `http://` URL into `local`; its size (NetworkError names the URL and the cause)."""
    scheme, _, rest = url.partition("://")
    if scheme == "http":
        return http_get(url, local, limit, progress)
    if scheme == "tftp":
        host, _, path = rest.partition("/")
        return tftp_get(host, path, local, limit, progress)
    raise NetworkError(f"{url}: only tftp:// and http:// URLs can be fetched")


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem of `path` (the tmpfs fetched files go to)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
