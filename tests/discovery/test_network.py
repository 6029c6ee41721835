"""discovery.network on the host: the pxelinux lookup order, the lease udhcpc's script records, and a daemon that
never touches an interface outside the payload or with `network = false`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from discovery import netboot, network
from discovery.daemon import Daemon
from discovery.network import Lease, NetworkError, config_candidates, ethernet_interfaces
from discovery.settings import Settings

# What tests/data-free udhcpc writes for QEMU's user network (slirp fills siaddr, not option 66).
SLIRP_LEASE = """\
interface=eth0
ip=10.0.2.15
mask=24
router=10.0.2.2
dns=10.0.2.3
serverid=10.0.2.2
siaddr=10.0.2.2
boot_file=pxelinux.0
tftp=
bootfile=
opt209=
opt210=
"""


def test_lookup_order_is_mac_then_hex_address_narrowed_then_default() -> None:
    # The example of the syslinux wiki's PXELINUX page: 88:99:AA:BB:CC:DD at 192.168.2.91 (C0A8025B).
    assert config_candidates("88:99:AA:BB:CC:DD", "192.168.2.91") == [
        "pxelinux.cfg/01-88-99-aa-bb-cc-dd",
        "pxelinux.cfg/C0A8025B",
        "pxelinux.cfg/C0A8025",
        "pxelinux.cfg/C0A802",
        "pxelinux.cfg/C0A80",
        "pxelinux.cfg/C0A8",
        "pxelinux.cfg/C0A",
        "pxelinux.cfg/C0",
        "pxelinux.cfg/C",
        "pxelinux.cfg/default",
    ]


def test_a_malformed_address_still_tries_mac_and_default() -> None:
    assert config_candidates("52:54:00:12:34:56", "10.0.2") == [
        "pxelinux.cfg/01-52-54-00-12-34-56",
        "pxelinux.cfg/default",
    ]


def test_slirp_lease_names_siaddr_as_the_tftp_server_and_the_root_as_prefix() -> None:
    lease = Lease.parse(SLIRP_LEASE, "52:54:00:12:34:56")
    assert (lease.interface, lease.address, lease.router, lease.dns) == ("eth0", "10.0.2.15", "10.0.2.2", ("10.0.2.3",))
    assert lease.tftp_server == "10.0.2.2"
    assert lease.path_prefix == ""
    assert lease.describe() == "10.0.2.15 from 10.0.2.2"
    assert lease.url(lease.path_prefix + "vmlinuz") == "tftp://10.0.2.2/vmlinuz"


def test_options_66_209_210_win_and_unnamed_ones_are_decoded_from_hex() -> None:
    text = SLIRP_LEASE.replace("tftp=", "tftp=192.0.2.7").replace("bootfile=", "bootfile=boot/x86/pxelinux.0")
    lease = Lease.parse(text)
    assert lease.tftp_server == "192.0.2.7"
    assert lease.path_prefix == "boot/x86/", "without option 210 the prefix is the bootfile's directory"
    lease = Lease.parse(
        text.replace("opt210=", "opt210=" + b"/fleet/".hex()).replace("opt209=", "opt209=" + b"x.cfg".hex())
    )
    assert (lease.prefix, lease.path_prefix, lease.config_file) == ("/fleet/", "fleet/", "x.cfg")


def test_ethernet_interfaces_are_driver_backed_type_1(tmp_path: Path) -> None:
    net = tmp_path / "class" / "net"
    for name, kind, device in (("eth0", "1", True), ("lo", "772", False), ("br0", "1", False), ("enp1s0", "1", True)):
        (net / name).mkdir(parents=True)
        (net / name / "type").write_text(kind + "\n")
        if device:
            (net / name / "device").mkdir()
    assert ethernet_interfaces(tmp_path) == ["enp1s0", "eth0"]


def _daemon(network: bool, sys_root: Path) -> Daemon:
    return Daemon(settings=Settings(network=network), mounts=None, sys_root=sys_root)


def test_no_interface_is_touched_with_network_false_or_outside_the_payload(tmp_path: Path) -> None:
    sys_root = tmp_path / "sys"
    (sys_root / "class" / "net" / "eth0" / "device").mkdir(parents=True)
    (sys_root / "class" / "net" / "eth0" / "type").write_text("1\n")
    marker = tmp_path / "bootmenu-payload"
    marker.write_text("")

    async def records(network: bool, marker: Path) -> list[str]:
        daemon = _daemon(network, sys_root)
        await netboot.start(daemon, tmp_path / "run", marker)
        return list(daemon.records)

    assert asyncio.run(records(False, marker)) == []
    assert asyncio.run(records(True, tmp_path / "absent")) == []
    assert not (tmp_path / "run").exists()


def _net_daemon(settings: Settings, sys_root: Path) -> Daemon:
    return Daemon(settings=settings, mounts=None, sys_root=sys_root)


def test_network_interfaces_keeps_its_order_and_names_the_missing(tmp_path: Path) -> None:
    daemon = _net_daemon(Settings(network_interfaces=("eth1", "eth9", "eth0")), tmp_path)
    assert netboot.chosen(daemon, ["eth0", "eth1", "eth2"]) == ["eth1", "eth0"]
    [line] = [s.message for s in daemon.status]
    assert line == "network_interfaces: eth9 is not an Ethernet interface here (found: eth0, eth1, eth2)"
    assert netboot.chosen(_net_daemon(Settings(), tmp_path), ["eth0", "eth1"]) == ["eth0", "eth1"]


STATIC = "10.0.2.15:10.0.2.2:10.0.2.1:255.255.255.0::{dev}:{auto}"


@pytest.mark.parametrize(
    ("ip", "name", "first", "dhcp_ok", "expect"),
    [
        (STATIC.format(dev="", auto="none"), "eth0", True, True, "static"),  # autoconf none: no DHCP at all
        (STATIC.format(dev="", auto="dhcp"), "eth0", True, True, "dhcp"),  # DHCP first, it answers
        (STATIC.format(dev="", auto="dhcp"), "eth0", True, False, "static"),  # the fallback
        (STATIC.format(dev="", auto="none"), "eth1", False, True, "dhcp"),  # not the first interface
        (STATIC.format(dev="eth1", auto=""), "eth1", False, False, "static"),  # its device
        (STATIC.format(dev="eth1", auto=""), "eth0", True, False, "error"),
    ],
)
def test_static_address_of_bootmenu_ip(
    *, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ip: str, name: str, first: bool, dhcp_ok: bool, expect: str
) -> None:
    calls: list[str] = []

    def fake_dhcp(interface: str, run_dir: Path, sys_root: Path) -> Lease:
        calls.append("dhcp")
        if not dhcp_ok:
            raise NetworkError(f"{interface}: DHCP: no lease")
        return Lease.parse(SLIRP_LEASE)

    def fake_static(interface: str, address: str, prefix: int, gateway: str, sys_root: Path) -> None:
        calls.append(f"static {interface} {address}/{prefix} via {gateway}")

    monkeypatch.setattr(network, "dhcp", fake_dhcp)
    monkeypatch.setattr(network, "static", fake_static)
    settings = Settings().with_cmdline(f"bootmenu.ip={ip}")
    assert settings.warnings == ()
    daemon = _net_daemon(settings, tmp_path)
    if expect == "error":
        with pytest.raises(NetworkError, match="no lease"):
            netboot._lease(daemon, name, tmp_path, first)
        return
    lease = netboot._lease(daemon, name, tmp_path, first)
    if expect == "static":
        assert calls[-1] == f"static {name} 10.0.2.15/24 via 10.0.2.1"
        assert (lease.address, lease.tftp_server, lease.describe()) == (
            "10.0.2.15", "10.0.2.2", "10.0.2.15 static, TFTP 10.0.2.2",
        )  # fmt: skip
    else:
        assert calls == ["dhcp"]
        assert lease.dhcp_server == "10.0.2.2"


def test_a_rescan_runs_dhcp_again_and_a_failed_one_drops_the_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sys_root = tmp_path / "sys"
    (sys_root / "class" / "net" / "eth0" / "device").mkdir(parents=True)
    (sys_root / "class" / "net" / "eth0" / "type").write_text("1\n")
    marker = tmp_path / "bootmenu-payload"
    marker.write_text("")
    answers = [True, False]
    calls: list[str] = []

    def fake_dhcp(interface: str, run_dir: Path, sys_root: Path) -> Lease:
        calls.append(interface)
        if not answers.pop(0):
            raise NetworkError(f"{interface}: DHCP: udhcpc: no lease, failing")
        return Lease.parse(SLIRP_LEASE)

    def fake_fetch(url: str, local: Path, limit: int, progress: object = None) -> int:
        if not url.endswith("/pxelinux.cfg/default"):
            raise NetworkError(f"{url}: tftp: server error: (1) File not found")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text("LABEL a\n    MENU LABEL Net A\n    KERNEL vmlinuz\n")
        return 1

    monkeypatch.setattr(network, "dhcp", fake_dhcp)
    monkeypatch.setattr(network, "fetch", fake_fetch)

    async def scans() -> tuple[list[str], list[str], str]:
        daemon = _daemon(True, sys_root)
        await netboot.start(daemon, tmp_path / "run", marker)
        first = [i.entry.kernel for i in daemon.records["eth0"].entries]
        await netboot.start(daemon, tmp_path / "run", marker)  # what a rescan runs
        second = [i.entry.kernel for i in daemon.records["eth0"].entries]
        return first, second, daemon.records["eth0"].info.message

    first, second, message = asyncio.run(scans())
    assert calls == ["eth0", "eth0"]
    assert first == ["tftp://10.0.2.2/vmlinuz"]
    assert second == []
    assert message == "eth0: DHCP: udhcpc: no lease, failing"


def test_daemon_rescan_runs_the_network_start_again_once_the_first_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[str] = []

    async def fake_start(daemon: Daemon) -> None:
        runs.append("start")

    monkeypatch.setattr(netboot, "start", fake_start)

    async def scenario() -> list[str]:
        daemon = _daemon(True, tmp_path)
        await daemon.rescan()  # no network start yet (dry run or no udev): nothing
        first = list(runs)
        loop = asyncio.get_running_loop()
        running: asyncio.Future[None] = loop.create_future()
        daemon._network = running
        await daemon.rescan()  # the first DHCP still runs: not twice at once
        running.set_result(None)
        await daemon.rescan()
        return [*first, "|", *runs]

    assert asyncio.run(scenario()) == ["|", "start"]
