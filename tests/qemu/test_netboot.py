"""End-to-end network boot (issue 14): QEMU's user network with `restrict=on`, its built-in DHCP and TFTP servers,
and an HTTP server this test binds on 127.0.0.1, which the guest reaches as 10.0.2.100:80 through
`guestfwd=...-cmd:tcp_pipe.py` (one pipe per guest connection, to 127.0.0.1 only); no other traffic. The TFTP tree
is a pxelinux tree: a decoy `pxelinux.cfg/default` and the real config under the client address in hex, narrowed
(`0A00020` for 10.0.2.15), which the lookup reaches first.

First VM: the menu shows the network device with its lease and the entries next to a disk's (one of them from a
file the config INCLUDEs, fetched over TFTP); a second NIC on its own user network (10.0.3.0/24) whose bootfile is
a GRUB image lists the entries of the GRUB config found as GRUB's net boot finds it, evaluated with `$prefix`,
`$net_default_ip` and a `source`d file; an entry whose kernel is not on the server says which URL failed and the
menu stays; the good entry's kernel comes over HTTP (an
`http://` URL in the config) and its initrd over TFTP, one boot for both paths: the progress line of the HTTP
transfer is seen on the serial menu and the second kernel's /proc/cmdline holds the entry's APPEND words. Second
VM, `bootmenu.network=0`: no network device in the menu, the interface never brought up, no lease recorded.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from initramfs.guests import SECOND_STAGE_MARKER
from initramfs.qemu import Disk, VmConfig
from tests.qemu.e2e_support import BASE_APPEND, VM_TIMEOUT, E2eDisks
from tests.qemu.qemu_console import SerialVm
from tests.qemu.test_e2e import NO_AUTOBOOT, guest_logs, second_kernel_cmdline, select, wait_menu

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(480)]

GOOD = "E2E network kernel"
MISSING = "E2E network missing kernel"
APPEND = f"{BASE_APPEND} e2e=netboot e2e.from=http+tftp"
HTTP_HOST = "10.0.2.100"
TCP_PIPE = Path(__file__).with_name("tcp_pipe.py")
CONFIG = f"""\
UI menu.c32
TIMEOUT 0
MENU TITLE E2E pxelinux
LABEL good
    MENU LABEL {GOOD}
    KERNEL http://{HTTP_HOST}/vmlinuz
    INITRD second.img
    APPEND {APPEND}
INCLUDE menus/more.cfg
"""
# Fetched over TFTP when the parser meets the INCLUDE.
INCLUDED = f"""\
LABEL missing
    MENU LABEL {MISSING}
    KERNEL ::images/absent-vmlinuz
    APPEND {BASE_APPEND} e2e=missing
"""
# The second NIC's network: its own QEMU user network (10.0.3.0/24) whose bootfile is a GRUB image, so its config
# is GRUB's, looked up in $prefix (/boot/grub) as grub.cfg-01-<mac> before the decoy grub.cfg.
GRUB_MAC = "52:54:00:12:34:57"
GRUB_TITLE = "E2E GRUB over TFTP"
GRUB_NET = f"""\
set timeout=30
source $prefix/common.cfg
menuentry "{GRUB_TITLE} $net_default_ip $common" {{
    linux (tftp)/vmlinuz {BASE_APPEND} e2e=grub-net
    initrd (tftp)/second.img
}}
"""
DECOY = "DEFAULT decoy\nLABEL decoy\n    MENU LABEL E2E decoy default\n    KERNEL vmlinuz\n"


@pytest.fixture
def tftp_root(tmp_path: Path, kernel: Path, test_disks: E2eDisks) -> Path:
    root = tmp_path / "tftp"
    (root / "pxelinux.cfg").mkdir(parents=True)
    (root / "pxelinux.cfg" / "0A00020").write_text(CONFIG)
    (root / "pxelinux.cfg" / "default").write_text(DECOY)
    (root / "pxelinux.0").write_bytes(b"not used: the payload reads the config itself\n")
    (root / "vmlinuz").write_bytes(kernel.read_bytes())
    second = test_disks.grub.parent / "second.img"
    (root / "second.img").write_bytes(second.read_bytes())
    (root / "menus").mkdir()
    (root / "menus" / "more.cfg").write_text(INCLUDED)
    grub = tmp_path / "tftp-grub" / "boot" / "grub"
    (grub / "x86_64-efi").mkdir(parents=True)
    (grub / "x86_64-efi" / "core.efi").write_bytes(b"not used: the payload reads the config itself\n")
    (grub / f"grub.cfg-01-{GRUB_MAC.replace(':', '-')}").write_text(GRUB_NET)
    (grub / "common.cfg").write_text("set common=sourced\n")
    (grub / "grub.cfg").write_text("menuentry 'E2E GRUB decoy' { linux /vmlinuz }\n")
    return root


class _Files(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format: str, *args: object) -> None:
        self.requests.append(self.requestline)


@contextlib.contextmanager
def http_server(root: Path) -> Iterator[tuple[int, list[str]]]:
    """`root` served over HTTP on 127.0.0.1 (an ephemeral port); the request lines it answered."""
    requests: list[str] = []
    handler = functools.partial(type("Files", (_Files,), {"requests": requests}), directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def guestfwd(port: int) -> str:
    """The -netdev user option that makes HTTP_HOST:80 in the guest the server on 127.0.0.1:`port`. QEMU runs the
    pipe per connection; its words are split on spaces, so no path may hold one."""
    assert " " not in sys.executable + str(TCP_PIPE)
    return f"guestfwd=tcp:{HTTP_HOST}:80-cmd:{sys.executable} {TCP_PIPE} 127.0.0.1 {port}"


@pytest.fixture
def http_port(tftp_root: Path) -> Iterator[tuple[int, list[str]]]:
    """The TFTP tree also served over HTTP."""
    with http_server(tftp_root) as served:
        yield served


def _vm(
    kernel: Path, payload: Path, disks: E2eDisks, tftp_root: Path, tmp_path: Path, *, append: str, port: int = 0
) -> SerialVm:
    netdev = f"user,id=net0,restrict=on,tftp={tftp_root},bootfile=pxelinux.0"
    grub_root = tftp_root.parent / "tftp-grub"
    grub_netdev = (
        f"user,id=net1,restrict=on,net=10.0.3.0/24,host=10.0.3.2,dhcpstart=10.0.3.15,tftp={grub_root},"
        "bootfile=boot/grub/x86_64-efi/core.efi"
    )
    if port:
        netdev += "," + guestfwd(port)
    config = VmConfig(
        kernel=kernel,
        initrd=payload,
        append=f"{BASE_APPEND} {NO_AUTOBOOT} {append}".strip(),
        disks=(Disk(disks.grub),),
        extra=(
            *("-netdev", netdev, "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56"),
            *("-netdev", grub_netdev, "-device", f"virtio-net-pci,netdev=net1,mac={GRUB_MAC}"),
        ),
    )
    return SerialVm(config, timeout=VM_TIMEOUT, transcript=tmp_path / "console.log")


def _wait_row(vm: SerialVm, pattern: str, timeout: float) -> str:
    """Reads the console until a row of the rendered screen matches `pattern`; that row."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [row for row in vm.text().splitlines() if re.search(pattern, row)]
        if rows:
            return rows[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no screen row matched {pattern!r} within {timeout:g} s:\n{vm.text()}")
        with contextlib.suppress(pexpect.TIMEOUT):
            vm.child.read_nonblocking(65536, timeout=0.5)


def test_pxelinux_entry_over_http_and_tftp_boots_with_its_append_line(
    *,
    kernel: Path,
    payload: Path,
    test_disks: E2eDisks,
    tftp_root: Path,
    tmp_path: Path,
    http_port: tuple[int, list[str]],
) -> None:
    port, requests = http_port
    vm = _vm(kernel, payload, test_disks, tftp_root, tmp_path, append="", port=port)
    try:
        took = wait_menu(vm, "E2E GRUB default", GOOD, MISSING)
        print(f"\nnetwork entries in the menu {took:.1f} s after QEMU started")
        screen = vm.wait_screen("[Network: eth0 10.0.2.15 from 10.0.2.2]", timeout=30)
        assert "E2E decoy default" not in screen, "the hex-address config comes before pxelinux.cfg/default"
        # The GRUB config of the second NIC, evaluated with its lease's variables and a file it sources over TFTP.
        screen = vm.wait_screen(f"{GRUB_TITLE} 10.0.3.15 sourced", timeout=60)
        assert "[Network: eth1 10.0.3.15 from 10.0.3.2]" in screen
        assert "E2E GRUB decoy" not in screen, "grub.cfg-01-<mac> comes before grub.cfg"

        select(vm, MISSING)
        vm.send("enter")
        screen = vm.wait_screen("tftp://10.0.2.2/images/absent-vmlinuz", timeout=60)
        assert SECOND_STAGE_MARKER not in vm.transcript.decode("utf-8", "replace")
        vm.send("esc")
        vm.settle()
        vm.wait_screen(GOOD, timeout=30)

        select(vm, GOOD)
        vm.send("enter")
        # The progress line of the HTTP transfer (bytes of the total, the rate) on the serial menu's status line.
        row = _wait_row(vm, rf"http://{HTTP_HOST}/vmlinuz: \d+\.\d of \d+\.\d MiB \(\d+%\), \d+\.\d MiB/s", 120)
        print(f"\nprogress row: {row.strip()}")
        words = second_kernel_cmdline(vm, timeout=180).split()
        assert "GET /vmlinuz HTTP/1.1" in requests, requests
        for word in APPEND.split():
            assert word in words, (word, words)
        assert "e2e=missing" not in words
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nguest logs:\n{guest_logs(vm)}") from None
    finally:
        vm.close()


def test_network_off_never_touches_the_interface(
    kernel: Path, payload: Path, test_disks: E2eDisks, tftp_root: Path, tmp_path: Path
) -> None:
    vm = _vm(kernel, payload, test_disks, tftp_root, tmp_path, append="bootmenu.network=0")
    try:
        wait_menu(vm, "E2E GRUB default")
        vm.settle()
        assert "Network:" not in vm.text()
        assert GOOD not in vm.text()
        vm.send("esc", "esc", "x")  # the rescue shell
        vm.settle(2.0)
        vm.child.sendline("echo NETCHECK flags=$(cat /sys/class/net/eth0/flags) leases=$(ls /run/bootmenu/net | wc -l)")
        match = vm.expect(r"NETCHECK flags=(0x[0-9a-f]+) leases=(\d+)[\r\n]", timeout=30)
        flags, leases = int(match[1], 16), int(match[2])
        assert flags & 1 == 0, f"eth0 was brought up (IFF_UP in {flags:#x})"
        assert leases == 0
    finally:
        vm.close()
