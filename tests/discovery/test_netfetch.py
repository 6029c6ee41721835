"""discovery.network's fetches on the host: HTTP against a real http.server bound on 127.0.0.1 (no other traffic),
TFTP through a fake `tftp` program at the subprocess boundary (the real one runs in tests/qemu/test_netboot.py),
and the mapping between the network tree's paths and URLs."""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from discovery import netboot, network
from discovery.daemon import Daemon, JobResult
from discovery.entry import BootEntry, LoadResult
from discovery.fs import Filesystem
from discovery.network import Lease, NetworkError
from discovery.protocol import DeviceInfo, DeviceState, PathsChecked
from discovery.settings import Settings

BODY = bytes(range(256)) * 1024  # 256 KiB: several CHUNKs


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[dict[str, int]] = {}

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path == "/vmlinuz":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/vmlinuz")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/busy":
            self.send_error(503, "Busy")
        elif self.path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[:1000])
        elif self.path == "/tls":
            self.send_response(301)
            self.send_header("Location", "https://example.invalid/x")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_error(404, "Not Found")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(network, "RETRY_PAUSE", 0.0)
    _Handler.hits = {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_http_fetch_writes_the_body_and_reports_progress_against_the_total(server: str, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    size = network.fetch(f"{server}/vmlinuz", tmp_path / "k", 1 << 30, lambda done, total: seen.append((done, total)))
    assert size == len(BODY)
    assert (tmp_path / "k").read_bytes() == BODY
    assert all(total == len(BODY) for _, total in seen)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert seen[-1] == (len(BODY), len(BODY))
    assert len(seen) > 2


def test_http_redirect_is_followed(server: str, tmp_path: Path) -> None:
    assert network.http_get(f"{server}/moved", tmp_path / "k", 1 << 30) == len(BODY)


def test_a_missing_file_is_one_try_and_the_error_names_url_and_status(server: str, tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match=r"^http://127\.0\.0\.1:\d+/absent: HTTP 404 Not Found$"):
        network.http_get(f"{server}/absent", tmp_path / "k", 1 << 30)
    assert _Handler.hits["/absent"] == 1
    assert not list(tmp_path.iterdir()), "no partial file is left in the tmpfs"


def test_a_server_error_is_tried_again_a_bounded_number_of_times(server: str, tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match=rf"/busy: HTTP 503 Busy \({network.FETCH_TRIES} tries\)"):
        network.http_get(f"{server}/busy", tmp_path / "k", 1 << 30)
    assert _Handler.hits["/busy"] == network.FETCH_TRIES


def test_a_file_over_the_size_cap_is_refused_before_its_body(server: str, tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match=r"/vmlinuz: 262144 bytes, more than the 1000-byte limit \(free memory\)"):
        network.http_get(f"{server}/vmlinuz", tmp_path / "k", 1000)
    assert _Handler.hits["/vmlinuz"] == 1
    assert not list(tmp_path.iterdir())


def test_a_cut_transfer_says_how_much_came(server: str, tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match=r"/short: connection closed after 1000 of 262144 bytes \(3 tries\)$"):
        network.http_get(f"{server}/short", tmp_path / "k", 1 << 30)
    assert not (tmp_path / "k").exists()


def test_https_is_refused_with_the_reason(server: str, tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match=r"/tls: redirected to https://example.invalid/x: only http://"):
        network.http_get(f"{server}/tls", tmp_path / "k", 1 << 30)


def test_a_closed_port_names_the_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network, "RETRY_PAUSE", 0.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(NetworkError, match=rf"^http://127\.0\.0\.1:{port}/x: Connection refused \(3 tries\)$"):
            network.http_get(f"http://127.0.0.1:{port}/x", tmp_path / "k", 1 << 30)


def test_a_server_that_never_answers_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network, "RETRY_PAUSE", 0.0)
    monkeypatch.setattr(network, "HTTP_TIMEOUT", 0.3)
    monkeypatch.setattr(network, "FETCH_TRIES", 2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)  # accepted by the kernel, never read
        port = s.getsockname()[1]
        with pytest.raises(NetworkError, match=r"/x: no answer within 0.3 s \(2 tries\)$"):
            network.http_get(f"http://127.0.0.1:{port}/x", tmp_path / "k", 1 << 30)


FAKE_TFTP = """\
#!/bin/sh
# fake busybox tftp: -g -b N -r REMOTE -l LOCAL SERVER
while [ $# -gt 1 ]; do case "$1" in -r) remote=$2; shift;; -l) local=$2; shift;; esac; shift; done
case "$remote" in
absent) echo "tftp: server error: (1) File not found" >&2; exit 1;;
huge) while :; do head -c 65536 /dev/zero >>"$local"; done;;
*) head -c 300000 /dev/zero >"$local";;
esac
"""


@pytest.fixture
def fake_tftp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tftp").write_text(FAKE_TFTP)
    (bin_dir / "tftp").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setattr(network, "RETRY_PAUSE", 0.0)


@pytest.mark.usefixtures("fake_tftp")
def test_tftp_fetch_ends_with_progress_at_the_size(tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    assert network.fetch("tftp://10.0.2.2/vmlinuz", tmp_path / "k", 1 << 30, lambda *a: seen.append(a)) == 300000
    assert seen[-1] == (300000, 300000)


@pytest.mark.usefixtures("fake_tftp")
def test_tftp_missing_file_names_url_and_server_error(tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match=r"^tftp://10\.0\.2\.2/absent: tftp: server error: \(1\) File not found$"):
        network.fetch("tftp://10.0.2.2/absent", tmp_path / "k", 1 << 30)


@pytest.mark.usefixtures("fake_tftp")
def test_tftp_transfer_is_stopped_at_the_size_cap(tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match=r"^tftp://10\.0\.2\.2/huge: more than the 1000000-byte limit"):
        network.fetch("tftp://10.0.2.2/huge", tmp_path / "k", 1_000_000)
    assert not (tmp_path / "k").exists()


def test_other_schemes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NetworkError, match=r"^ftp://h/x: only tftp:// and http:// URLs can be fetched$"):
        network.fetch("ftp://h/x", tmp_path / "k", 1)


def test_network_tree_paths_and_urls() -> None:
    assert network.url_of("10.0.2.2", "/images/vmlinuz") == "tftp://10.0.2.2/images/vmlinuz"
    assert network.url_of("10.0.2.2", "/http/10.0.2.100:8080/k") == "http://10.0.2.100:8080/k"
    assert network.local_path("http://10.0.2.100/a/b") == "/http/10.0.2.100/a/b"
    lease = Lease(interface="eth0", address="10.0.2.15", tftp_server="10.0.2.2", bootfile="boot/x86/pxelinux.0")
    assert lease.workdir == "/boot/x86"
    assert lease.config_path("menu.cfg") == "/boot/x86/menu.cfg", "option 209 relative to the prefix"
    assert lease.config_path("::fleet/menu.cfg") == "/fleet/menu.cfg"
    assert lease.config_path("http://10.0.2.100/m.cfg") == "/http/10.0.2.100/m.cfg"
    web = Lease(interface="eth0", address="10.0.2.15", bootfile="http://10.0.2.100/boot/lpxelinux.0")
    assert web.workdir == "/http/10.0.2.100/boot"


def test_progress_text() -> None:
    assert netboot.progress_text(3 << 20, 20 << 20, 2.0) == "3.0 of 20.0 MiB (15%), 1.5 MiB/s"
    assert netboot.progress_text(5 << 20, None, 0.0) == "5.0 MiB, ? MiB/s"


PXE_CONFIG = """\
DEFAULT web
LABEL web
    MENU LABEL Web kernel
    KERNEL http://10.0.2.100/boot/vmlinuz
    INITRD ::images/initrd.img,rel.img
    APPEND console=ttyS0 from=http
"""


def _serve(monkeypatch: pytest.MonkeyPatch, server: dict[str, str]) -> list[str]:
    asked: list[str] = []

    def fake_fetch(url: str, local: Path, limit: int, progress: object = None) -> int:
        asked.append(url)
        if url not in server:
            raise NetworkError(f"{url}: tftp: server error: (1) File not found")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(server[url])
        return len(server[url])

    monkeypatch.setattr(network, "fetch", fake_fetch)
    return asked


def test_pxelinux_entries_carry_urls_for_http_absolute_and_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = {"tftp://10.0.2.2/x86/pxelinux.cfg/default": PXE_CONFIG}
    _serve(monkeypatch, server)
    lease = Lease(interface="eth0", address="10.0.2.15", tftp_server="10.0.2.2", bootfile="x86/pxelinux.0")
    fs = Filesystem(root=tmp_path, name="eth0", fstype="tftp")
    result = netboot.load_network_config(lease, fs)
    [entry] = result.entries
    assert entry.kernel == "http://10.0.2.100/boot/vmlinuz"
    assert entry.initrds == ("tftp://10.0.2.2/images/initrd.img", "tftp://10.0.2.2/x86/rel.img")
    assert entry.cmdline == "console=ttyS0 from=http"


def test_client_uuid_comes_first_and_placeholders_are_skipped(tmp_path: Path) -> None:
    dmi = tmp_path / "class" / "dmi" / "id"
    dmi.mkdir(parents=True)
    (dmi / "product_uuid").write_text("B8945908-D6A6-41A9-611D-74A6AB80B83D\n")
    uuid = network.client_uuid(tmp_path)
    assert uuid == "b8945908-d6a6-41a9-611d-74a6ab80b83d"  # the syslinux wiki's example
    assert network.config_candidates("88:99:aa:bb:cc:dd", "192.168.2.91", uuid)[:2] == [
        "pxelinux.cfg/b8945908-d6a6-41a9-611d-74a6ab80b83d",
        "pxelinux.cfg/01-88-99-aa-bb-cc-dd",
    ]
    for placeholder in ("00000000-0000-0000-0000-000000000000", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", "garbage"):
        (dmi / "product_uuid").write_text(placeholder + "\n")
        assert network.client_uuid(tmp_path) == ""
    (dmi / "product_uuid").unlink()
    assert network.client_uuid(tmp_path) == ""


def test_dhcp_sends_what_pxe_clients_send() -> None:
    argv = network.pxe_options("x86_64", "b8945908-d6a6-41a9-611d-74a6ab80b83d")
    assert argv[:2] == ["-V", "PXEClient:Arch:00000:UNDI:002001"]
    sent = [argv[i + 1] for i, word in enumerate(argv) if word == "-x"]
    assert sent == ["0x5d:0000", "0x5e:010201", "0x61:00b8945908d6a641a9611d74a6ab80b83d"]
    asked = [argv[i + 1] for i, word in enumerate(argv) if word == "-O"]
    assert asked == ["43", "tftp", "bootfile", "209", "210"]
    arm = network.pxe_options("aarch64", "")
    assert arm[1] == "PXEClient:Arch:00011:UNDI:002001"
    assert "0x5d:000b" in arm
    assert not any(word.startswith("0x61:") for word in arm)


INCLUDING = """\
MENU TITLE fleet
INCLUDE common.cfg
LABEL more
    MENU LABEL More
    CONFIG ::menus/more.cfg
INCLUDE absent.cfg
"""
COMMON = "LABEL common\n    MENU LABEL Common kernel\n    KERNEL vmlinuz\n    APPEND from=include\n"
MORE = "LABEL deep\n    MENU LABEL Deep kernel\n    KERNEL ::k/vmlinuz\n"


def test_include_and_config_files_are_fetched_as_the_parser_meets_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = {
        "tftp://10.0.2.2/x86/pxelinux.cfg/default": INCLUDING,
        "tftp://10.0.2.2/x86/common.cfg": COMMON,
        "tftp://10.0.2.2/menus/more.cfg": MORE,
    }
    asked = _serve(monkeypatch, server)
    lease = Lease(interface="eth0", address="10.0.2.15", tftp_server="10.0.2.2", bootfile="x86/pxelinux.0")
    result = netboot.load_network_config(lease, Filesystem(root=tmp_path, name="eth0", fstype="tftp"), tmp_path)
    assert [(e.title, e.kernel, e.submenu) for e in result.entries] == [
        ("Common kernel", "tftp://10.0.2.2/x86/vmlinuz", ()),
        ("Deep kernel", "tftp://10.0.2.2/k/vmlinuz", ("More",)),
    ]
    assert "tftp://10.0.2.2/x86/absent.cfg" in asked
    assert any("absent.cfg" in d.message and "not found" in d.message for d in result.diagnostics)


NET_GRUB = """\
set timeout=5
source $prefix/common.cfg
menuentry "Net GRUB $net_default_ip" --id net {
    linux (tftp)/images/vmlinuz console=ttyS0 mac=$net_default_mac ip=$net_eth0_ip $common
    initrd (http,10.0.2.100)/initrd.img
}
menuentry "Other server" {
    linux (tftp,192.0.2.9)/k
}
menuentry "On root" {
    linux /boot/vmlinuz-root from=$root
}
"""


def test_grub_config_over_the_network_found_as_grub_looks_it_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _serve(
        monkeypatch,
        {
            "tftp://10.0.2.2/boot/grub/grub.cfg-0A00020": NET_GRUB,
            "tftp://10.0.2.2/boot/grub/grub.cfg": "menuentry decoy { linux /decoy }\n",
            "tftp://10.0.2.2/boot/grub/common.cfg": "set common=from-common\n",
        },
    )
    lease = Lease(
        interface="eth0",
        address="10.0.2.15",
        tftp_server="10.0.2.2",
        dhcp_server="10.0.2.2",
        bootfile="boot/grub/x86_64-efi/core.efi",
        mac="52:54:00:12:34:56",
    )
    result = netboot.load_network_config(lease, Filesystem(root=tmp_path, name="eth0", fstype="tftp"), tmp_path)
    assert asked[:3] == [
        "tftp://10.0.2.2/boot/grub/grub.cfg-01-52-54-00-12-34-56",
        "tftp://10.0.2.2/boot/grub/grub.cfg-0A00020F",
        "tftp://10.0.2.2/boot/grub/grub.cfg-0A00020",
    ]
    assert "tftp://10.0.2.2/boot/grub/common.cfg" in asked, "a sourced file is fetched when it is read"
    got = [(e.title, e.kernel, e.initrds, e.cmdline) for e in result.entries]
    assert got == [
        (
            "Net GRUB 10.0.2.15",
            "tftp://10.0.2.2/images/vmlinuz",
            ("http://10.0.2.100/initrd.img",),
            "console=ttyS0 mac=52:54:00:12:34:56 ip=10.0.2.15 from-common",
        ),
        ("Other server", "tftp://192.0.2.9/k", (), ""),
        ("On root", "tftp://10.0.2.2/boot/vmlinuz-root", (), "from=tftp,10.0.2.2"),
    ]
    assert result.entries[0].default
    assert result.timeout == 5


def test_which_loader_reads_the_network_config() -> None:
    base = Lease(interface="eth0", address="10.0.2.15", tftp_server="10.0.2.2", mac="52:54:00:12:34:56")
    assert not netboot.plan(base.__class__(**{**base.__dict__, "bootfile": "pxelinux.0"})).grub
    opt209 = netboot.plan(base.__class__(**{**base.__dict__, "config_file": "grub/grub.cfg-fleet"}))
    assert (opt209.grub, opt209.candidates) == (True, ("/grub/grub.cfg-fleet",))
    named = netboot.plan(base.__class__(**{**base.__dict__, "bootfile": "http://10.0.2.100/efi/grub.cfg"}))
    assert (named.grub, named.candidates, named.prefix) == (
        True,
        ("/http/10.0.2.100/efi/grub.cfg",),
        "/http/10.0.2.100/efi",
    )
    image = netboot.plan(base.__class__(**{**base.__dict__, "bootfile": "grubx64.efi", "prefix": "/fleet/grub"}))
    assert image.grub
    assert image.candidates[0] == "/fleet/grub/grub.cfg-01-52-54-00-12-34-56"
    assert image.candidates[-1] == "/fleet/grub/grub.cfg"


def test_boot_fetch_says_progress_and_gives_memory_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_fetch(url: str, local: Path, limit: int, progress: network.Progress | None = None) -> int:
        if "absent" in url:
            raise NetworkError(f"{url}: HTTP 404 Not Found")
        assert progress is not None
        for done in (1 << 20, 2 << 20, 3 << 20):
            progress(done, 3 << 20)
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(b"x" * 10)
        return 3 << 20

    monkeypatch.setattr(network, "fetch", fake_fetch)
    monkeypatch.setattr(netboot, "PROGRESS_EVERY", 0.0)
    fs = Filesystem(root=tmp_path, name="eth0", fstype="tftp")
    (tmp_path / netboot.BOOT_DIR).mkdir()
    (tmp_path / netboot.BOOT_DIR / "0-earlier").write_bytes(b"left by a boot that failed")
    good = BootEntry(title="Net", kernel="http://10.0.2.100/vmlinuz", initrds=("tftp://10.0.2.2/initrd.img",))
    bad = good.replace(initrds=("http://10.0.2.100/absent.img",))

    async def run(entry: BootEntry) -> tuple[list[Path] | None, list[str]]:
        daemon = Daemon(settings=Settings(), mounts=None, sys_root=tmp_path)
        daemon.net_leases["eth0"] = Lease(interface="eth0", address="10.0.2.15", tftp_server="10.0.2.2")
        paths = await netboot.fetch(daemon, "eth0", fs, entry, entry.title)
        await asyncio.sleep(0)  # the progress lines come through the loop
        return paths, [s.message for s in daemon.status]

    paths, lines = asyncio.run(run(good))
    assert paths == [tmp_path / ".boot" / "0-vmlinuz", tmp_path / ".boot" / "1-initrd.img"]
    assert not (tmp_path / ".boot" / "0-earlier").exists()
    assert "http://10.0.2.100/vmlinuz: 1.0 of 3.0 MiB (33%)" in "\n".join(lines)
    assert any(line.startswith("fetched tftp://10.0.2.2/initrd.img: 3145728 bytes in ") for line in lines)
    paths, lines = asyncio.run(run(bad))
    assert paths is None
    assert lines[-1] == "cannot boot Net: http://10.0.2.100/absent.img: HTTP 404 Not Found"
    assert not list((tmp_path / ".boot").iterdir()), "the kernel fetched before the failure is removed"


def test_a_bootfile_no_config_goes_with_is_one_kernel_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def nothing_there(url: str, local: Path, limit: int, progress: object = None) -> int:
        asked.append(url)
        raise NetworkError(f"{url}: tftp: server error: (1) File not found")

    monkeypatch.setattr(network, "fetch", nothing_there)
    fs = Filesystem(root=tmp_path, name="eth0", fstype="tftp")
    kernel = Lease(interface="eth0", address="10.0.2.15", tftp_server="10.0.2.2", bootfile="boot/vmlinuz-6.1")
    [entry] = netboot.load_network_config(kernel, fs).entries
    assert entry.kernel == "tftp://10.0.2.2/boot/vmlinuz-6.1"
    assert (entry.title, entry.cmdline, entry.initrds) == ("vmlinuz-6.1 (DHCP bootfile)", "", ())
    assert entry.device == "eth0"
    assert entry.format == "dhcp"
    assert entry.default
    assert not any("vmlinuz" in url for url in asked), "the kernel is fetched only when the entry is booted"
    http = Lease(interface="eth0", address="10.0.2.15", tftp_server="10.0.2.2", bootfile="http://10.0.2.100/bzImage")
    [entry] = netboot.load_network_config(http, fs).entries
    assert entry.kernel == "http://10.0.2.100/bzImage"
    # A network boot program (pxelinux, iPXE, GRUB, shim) is never taken for a kernel.
    for program in ("pxelinux.0", "undionly.kpxe", "x86/lpxelinux.0", "ipxe.lkrn", "grubx64.efi", "shimx64.efi"):
        lease = Lease(interface="eth0", address="10.0.2.15", tftp_server="10.0.2.2", bootfile=program)
        assert netboot.load_network_config(lease, fs).entries == (), program


def test_the_editor_check_of_a_network_entry_leaves_its_urls_to_the_fetch(tmp_path: Path) -> None:
    entry = BootEntry(title="Net", kernel="http://10.0.2.100/vmlinuz", initrds=("tftp://10.0.2.2/initrd.img",))

    async def run() -> PathsChecked:
        daemon = Daemon(settings=Settings(), mounts=None, sys_root=tmp_path)
        record = daemon._new_record(DeviceInfo(name="eth0", node="eth0", kind=netboot.KIND, message="DHCP"))
        fs = Filesystem(root=tmp_path, name="eth0", fstype="tftp")
        daemon._apply(
            record,
            JobResult(None, fs, LoadResult(entries=(entry.replace(device="eth0"),)), None, DeviceState.MOUNTED, ""),
        )
        [info] = record.entries
        return await daemon.check_paths(info.id, (entry.kernel, *entry.initrds, "/boot/local"))

    checked = asyncio.run(run())
    # Before: every URL was "not on eth0" although the boot fetches it; a path on the tmpfs is still checked.
    assert checked.missing == ("/boot/local",)
    assert checked.remote == ("http://10.0.2.100/vmlinuz", "tftp://10.0.2.2/initrd.img")
