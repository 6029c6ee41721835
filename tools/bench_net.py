"""`make bench`, network part (issue 14): one QEMU VM (TCG) on `-netdev user,restrict=on` with QEMU's DHCP/TFTP and
an HTTP server bound on 127.0.0.1 (reached through guestfwd, as in tests/qemu/test_netboot.py); no other traffic.

Printed, as the daemon measured them inside the guest (its status lines, read back from its log in the rescue
shell): the time from the link coming up to the network entries being listed (DHCP and config apart), and the
TFTP and HTTP throughput of a 20 MiB initrd. Each is fetched by booting an entry whose kernel is not a kernel: both
files come over the network, then the inspection refuses the kernel and the menu stays up for the next one.

    .venv/bin/python -m tools.bench_net      # alone (it is also the last part of `make bench`)
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import pexpect

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from initramfs.guests import GuestError  # noqa: E402
from initramfs.qemu import VmConfig, kernel_in, modules_in  # noqa: E402
from initramfs.run import RunError  # noqa: E402
from tests.qemu.e2e_support import BASE_APPEND, KERNEL_CACHE, build_payload  # noqa: E402
from tests.qemu.qemu_console import SerialVm  # noqa: E402
from tests.qemu.test_netboot import HTTP_HOST, guestfwd, http_server  # noqa: E402
from tools.bench import select  # noqa: E402

VM_TIMEOUT = 400.0
CONSOLE_LOG = REPO / ".cache" / "bench-net-console.log"
INITRD_MIB = 20
TFTP_TITLE = "Bench TFTP 20 MiB"
HTTP_TITLE = "Bench HTTP 20 MiB"
CONFIG = f"""\
MENU TITLE bench
LABEL tftp
    MENU LABEL {TFTP_TITLE}
    KERNEL notakernel
    INITRD big.img
LABEL http
    MENU LABEL {HTTP_TITLE}
    KERNEL http://{HTTP_HOST}/notakernel
    INITRD http://{HTTP_HOST}/big.img
"""
LISTED = re.compile(
    rb"eth0: \d+ network entries listed ([\d.]+) s after the link came up \(DHCP ([\d.]+) s, config ([\d.]+) s\)"
)
FETCHED = re.compile(rb"fetched (\w+)://[^ ]*/big\.img: (\d+) bytes in ([\d.]+) s, ([\d.]+) MiB/s")


class BenchError(Exception):
    """The figures could not be measured; the message is the one line printed."""


def _select(vm: SerialVm, title: str) -> None:
    try:
        select(vm, title)  # the bench's own menu walk
    except RuntimeError as exc:
        raise BenchError(str(exc).splitlines()[0]) from None


def measure() -> int:
    kernel = kernel_in(KERNEL_CACHE)
    payload = build_payload(modules_in(KERNEL_CACHE))
    with tempfile.TemporaryDirectory(prefix="bootmenu-bench-net-") as tmp:
        root = Path(tmp) / "tftp"
        (root / "pxelinux.cfg").mkdir(parents=True)
        (root / "pxelinux.cfg" / "default").write_text(CONFIG)
        (root / "notakernel").write_bytes(b"not a kernel\n" * 64)
        # Random bytes: nothing on the way can shrink them.
        (root / "big.img").write_bytes(os.urandom(INITRD_MIB << 20))
        with http_server(root) as (port, _):
            netdev = f"user,id=net0,restrict=on,tftp={root},bootfile=pxelinux.0,{guestfwd(port)}"
            config = VmConfig(
                kernel=kernel,
                initrd=payload,
                append=f"{BASE_APPEND} bootmenu.timeout=off",
                extra=("-netdev", netdev, "-device", "virtio-net-pci,netdev=net0"),
            )
            with SerialVm(config, timeout=VM_TIMEOUT, transcript=CONSOLE_LOG) as vm:
                for title in (TFTP_TITLE, HTTP_TITLE):
                    vm.wait_screen(title, timeout=240)
                vm.settle()
                for title in (TFTP_TITLE, HTTP_TITLE):
                    _select(vm, title)
                    vm.send("enter")
                    vm.wait_screen(f"cannot boot {title}", timeout=240)
                    vm.send("esc")
                    vm.settle()
                vm.send("esc", "esc", "x")
                vm.settle(2.0)
                # Short lines (a line typed faster than a TCG guest reads it may lose characters); the end marker
                # is computed by the shell, so the echo of the command line does not match it.
                vm.child.sendline("cd /run/bootmenu")
                vm.settle()
                vm.child.sendline("grep -E 'listed|fetched' daemon.log; echo BENCH-$((6*7))")
                vm.expect(r"BENCH-42\r*\n", timeout=60)
                out: bytes = vm.child.before
    listed = LISTED.search(out)
    fetched = {m[1].decode(): m for m in FETCHED.finditer(out)}
    if listed is None or set(fetched) != {"tftp", "http"}:
        raise BenchError(f"the daemon's figures are not in its log (whole console in {CONSOLE_LOG})")
    print("network boot (QEMU TCG, user network, restrict=on; figures measured by the daemon in the guest):")
    print(
        f"link up -> network entries listed:     {float(listed[1]):6.2f} s"
        f"   (DHCP {float(listed[2]):.2f} s, pxelinux config {float(listed[3]):.2f} s)"
    )
    for scheme in ("tftp", "http"):
        m = fetched[scheme]
        print(
            f"{scheme.upper():4} fetch of a {INITRD_MIB} MiB initrd:         {float(m[3]):6.2f} s"
            f"   ({float(m[4]):.1f} MiB/s, {int(m[2])} bytes)"
        )
    return 0


def main() -> int:
    try:
        return measure()
    except (BenchError, GuestError, RunError) as e:
        print(f"make bench (network): {e}", file=sys.stderr)
        return 1
    except pexpect.ExceptionPexpect as e:
        print(f"make bench (network): a VM's console: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    except AssertionError as e:  # SerialVm.wait_screen
        print(f"make bench (network): {str(e).splitlines()[0]}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
