"""`make bench`: the payload against a bare busybox LinuxBoot /init, on the same Debian kernel in QEMU (TCG).

Measured in one run and printed as figures and ratios (no pass/fail; the host is shared, so read them as orders of
magnitude):
- QEMU start -> the menu showing every entry of two disks, against QEMU start -> a busybox /init's first line;
- Enter on an entry -> the second kernel's /init, against `kexec -s -l` + `kexec -e` from busybox (kexec-tools from
  the Debian archive, unpacked into .cache, never installed on the host);
- the same kernel through kexec_load: `bootmenu kexec load -c` + `bootmenu kexec exec` typed in the payload's rescue
  shell (segments built in user space, kexec_core/x86_64.py) -> the second kernel's /init, beside the kexec-tools
  figure (both are load + exec from a shell; the Enter figure above is kexec_file_load through the daemon);
- the payload's size;
- the peak resident memory (VmHWM) of the daemon plus one menu, read in the guest from a rescue shell while a second
  menu (on tty1) and the daemon keep running;
- the boot timeline (`bootmenu.timeline`, discovery/timeline.py) read from the guest's kernel log in that shell, as a
  table with deltas;
- each of issue 15's goals beside the ratio measured.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pexpect

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from discovery import timeline  # noqa: E402
from initramfs import guests  # noqa: E402
from initramfs.cpio import Compression  # noqa: E402
from initramfs.elf import DependencyWalker, ElfDependencyError, system_lib_dirs  # noqa: E402
from initramfs.guests import GuestError  # noqa: E402
from initramfs.qemu import Disk, VmConfig, kernel_in, modules_in  # noqa: E402
from initramfs.run import RunError, run  # noqa: E402
from tests.qemu.e2e_support import BASE_APPEND, KERNEL_CACHE, build_payload, make_test_disks, second_initrd  # noqa: E402
from tests.qemu.qemu_console import SerialVm  # noqa: E402
from tests.qemu.timeline_shell import read_in_shell  # noqa: E402

KEXEC_CACHE = REPO / ".cache" / "kexec-tools"
RETRY = REPO / "tools" / "retry"
BASELINE_LOG = REPO / ".cache" / "bench-baseline-console.log"
# Levels of Depends followed to find kexec's libraries (kexec-tools -> libxenmisc4.17 -> libxencall1... is 2).
MAX_FETCH_ROUNDS = 6
VM_TIMEOUT = 240.0
MENU_TITLES = ("E2E GRUB default", "E2E BLS Linux")
BOOT_TITLE = "E2E BLS Linux"
# On every frame of the menu, even before any entry: its key reminder.
FIRST_FRAME_TEXT = "h=help"
# Issue 15's goals (ratios against the bare busybox /init or kexec-tools; sizes and memory in MiB).
GOAL_FIRST_FRAME = 1.25
GOAL_MENU = 1.5
GOAL_KEXEC = 1.0
GOAL_PAYLOAD_MIB = 8.0
GOAL_RSS_MIB = 32.0
# Shell command printing the VmHWM (kB) of every bootmenu daemon and ui process, one line each.
# With it, the Pss of each (smaps_rollup: its private pages plus its share of pages mapped by several processes, such
# as libpython's; now, not a peak), since the menus and the daemon share their interpreter's file pages.
HWM_COMMAND = (
    "for d in /proc/[0-9]*; do c=$(tr '\\0' ' ' <$d/cmdline 2>/dev/null); case \"$c\" in "
    "*bootmenu*daemon*|*bootmenu*ui*) echo \"HWM $(grep VmHWM $d/status | tr -s ' \\t' ' ')"
    " $(grep '^Pss:' $d/smaps_rollup | tr -s ' \\t' ' ') :: $c\";; esac; done; "
    'echo HWM-""DONE'
)


class BenchError(Exception):
    """`make bench` cannot run on this machine; the message is the one line printed."""


def _installed(package: str) -> bool:
    out = run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", package], check=False, capture=True).stdout
    return out.decode().startswith("ii")


def _depends(package: str) -> list[str]:
    """The packages `package` Depends on (apt-cache; virtual packages, in <>, left out)."""
    out = run(["apt-cache", "depends", "--no-recommends", "--no-suggests", package], check=False, capture=True)
    names = []
    for line in out.stdout.decode().splitlines():
        key, _, value = line.strip().lstrip("|").partition(":")
        name = value.strip().split(":", 1)[0]  # "libc6:amd64" -> "libc6"
        if key == "Depends" and name and not name.startswith("<"):
            names.append(name)
    return names


def _unpack(packages: list[str], cache: Path) -> None:
    debs = cache / "debs"
    shutil.rmtree(debs, ignore_errors=True)
    debs.mkdir(parents=True)
    if not _depends("kexec-tools"):  # no package lists yet (a fresh machine): fetch them, as tools/fetch-kernel does
        run([str(RETRY), "--what", "apt-get update", "apt-get", "update", "-q", "--error-on=any"])
    run([str(RETRY), "--what", f"apt-get download {' '.join(packages)}", "apt-get", "download", *packages], cwd=debs)
    for deb in sorted(debs.glob("*.deb")):
        run(["dpkg", "-x", deb, cache / "root"])
    shutil.rmtree(debs)


def _missing_library(binary: Path, root: Path) -> str | None:
    """Why `binary` cannot be loaded with the libraries of `root` and the host's, or None when it can."""
    dirs = [str(root / d) for d in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib")]
    try:
        DependencyWalker([*dirs, *system_lib_dirs()]).walk([binary])
    except ElfDependencyError as e:
        return str(e)
    return None


def kexec_tools(cache: Path = KEXEC_CACHE) -> tuple[Path, Path]:
    """(kexec, the unpacked root holding it and the libraries the host lacks), from the Debian archive.

    Unpacked with dpkg -x, never installed (installing kexec-tools would arm kexec on the host's reboot). Its shared
    libraries are followed through DT_NEEDED: while one is missing on the host, the next level of the packages'
    Depends that are not installed here is downloaded and unpacked too (libxenctrl from libxenmisc4.17, and theirs).
    """
    root = cache / "root"
    binary = root / "sbin" / "kexec"
    if (cache / ".complete").exists():
        return binary, root
    shutil.rmtree(root, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    fetched: set[str] = set()
    wanted = ["kexec-tools"]
    for _ in range(MAX_FETCH_ROUNDS):
        _unpack(wanted, cache)
        fetched.update(wanted)
        if not binary.is_file():
            raise BenchError(f"kexec-tools from the archive has no {binary.relative_to(root)}")
        missing = _missing_library(binary, root)
        if missing is None:
            (cache / ".complete").touch()
            return binary, root
        wanted = sorted({d for p in fetched for d in _depends(p)} - fetched)
        wanted = [p for p in wanted if not _installed(p)]
        if not wanted:
            break
    raise BenchError(f"kexec-tools baseline: {missing}, and no package it depends on provides it")


def baseline(kernel: Path, initrd: Path, disk: Path) -> tuple[float, float, float]:
    """(QEMU start -> busybox /init, kexec load+exec -> second /init, kernel start -> /init on the guest's clock) for
    the bare payload."""
    config = VmConfig(kernel=kernel, initrd=initrd, append=BASE_APPEND, disks=(Disk(disk),))
    with SerialVm(config, timeout=VM_TIMEOUT, transcript=BASELINE_LOG) as vm:
        try:
            vm.expect(guests.BASELINE_MARKER + r" uptime=([0-9.]+)", timeout=120)
            to_init = vm.elapsed()
            guest_init = float(vm.child.match.group(1))
            vm.expect(guests.BASELINE_KEXEC, timeout=60)
            kexec_started = time.monotonic()
            vm.expect(guests.SECOND_STAGE_MARKER, timeout=120)
        except (pexpect.TIMEOUT, pexpect.EOF):
            last = vm.tail(1).strip()
            raise BenchError(
                f"the kexec-tools baseline VM did not reach the second kernel (last console line: {last!r}; "
                f"whole console in {BASELINE_LOG})"
            ) from None
        return to_init, time.monotonic() - kexec_started, guest_init


def select(vm: SerialVm, title: str) -> None:
    vm.send("home")
    vm.settle(0.7)
    for _ in range(12):
        rows = [line for line in vm.text().splitlines() if title in line]
        if rows and rows[0].lstrip().startswith(">"):
            return
        vm.send("down")
        vm.settle(0.7)
    raise RuntimeError(f"could not select {title!r}:\n{vm.text()}")


@dataclass(frozen=True)
class PayloadRun:
    first_frame: float  # QEMU start -> the menu's first frame on the serial console
    to_menu: float  # QEMU start -> every entry listed
    hwm: int | None  # daemon + one menu VmHWM, KiB
    detail: str
    kexec: float  # Enter -> the second kernel's /init
    stamps: list[timeline.Stamp]


def menu_vm(kernel: Path, payload: Path, grub: Path, bls: Path) -> VmConfig:
    """The bench's menu VM: the two test disks, no autoboot, `bootmenu.timeline`."""
    # console=tty0 first: /init starts a menu there too, which keeps running while ttyS0 is in the rescue shell.
    append = BASE_APPEND.replace("console=ttyS0", "console=tty0 console=ttyS0") + " bootmenu.timeout=off"
    return VmConfig(kernel=kernel, initrd=payload, append=f"{append} bootmenu.timeline", disks=(Disk(grub), Disk(bls)))


def wait_menu(vm: SerialVm) -> tuple[float, float]:
    """QEMU start -> the first frame, and -> every entry, on the serial screen (then the screen has settled)."""
    vm.wait_screen(FIRST_FRAME_TEXT, timeout=180)
    first_frame = vm.elapsed()
    for title in MENU_TITLES:
        vm.wait_screen(title, timeout=180)
    to_menu = vm.elapsed()
    vm.settle()
    return first_frame, to_menu


def payload_run(kernel: Path, payload: Path, grub: Path, bls: Path) -> PayloadRun:
    """The payload's figures, booted with `bootmenu.timeline`."""
    with SerialVm(menu_vm(kernel, payload, grub, bls), timeout=VM_TIMEOUT) as vm:
        first_frame, to_menu = wait_menu(vm)
        hwm: int | None = None
        detail = ""
        stamps: list[timeline.Stamp] = []
        try:
            vm.send("x")
            vm.settle(2.0)
            vm.child.sendline(HWM_COMMAND)
            vm.expect(r"HWM-DONE\r*\n", timeout=30)
            out = vm.child.before.decode("utf-8", "replace")
            found = re.findall(r"HWM VmHWM: (\d+) kB(?: Pss: (\d+) kB)? :: ([^\r\n]*)", out)
            # The daemon and the menu still on tty1: one daemon plus one menu.
            daemons = [(int(k), int(pss or 0)) for k, pss, cmd in found if "daemon" in cmd]
            uis = [(int(k), int(pss or 0)) for k, pss, cmd in found if " ui" in cmd]
            if daemons and uis:
                daemon, ui = max(daemons), max(uis)
                hwm = daemon[0] + ui[0]
                detail = (
                    f"daemon {daemon[0] / 1024:.1f} MiB + menu {ui[0] / 1024:.1f} MiB;"
                    f" Pss now {daemon[1] / 1024:.1f} + {ui[1] / 1024:.1f} MiB"
                )
            else:
                detail = f"processes not found in: {out.strip()[-300:]!r}"
            stamps, _ = read_in_shell(vm)
            vm.child.sendline("exit")
            for title in MENU_TITLES:
                vm.wait_screen(title, timeout=60)
            vm.settle()
        except Exception as exc:
            detail = f"not measured: {exc}"
        select(vm, BOOT_TITLE)
        started = time.monotonic()
        vm.send("enter")
        vm.expect(guests.SECOND_STAGE_MARKER, timeout=120)
        return PayloadRun(first_frame, to_menu, hwm, detail, time.monotonic() - started, stamps)


def boot_run(kernel: Path, payload: Path, grub: Path, bls: Path) -> None:
    """`python -m tools.bench --boot`: one boot of the menu VM as `payload_run` boots it (tty0 and ttyS0 menus,
    `bootmenu.timeline`), printing QEMU start -> first frame and -> every entry on the serial screen, and the timeline
    with the serial screen's every-entry moment placed on the guest's clock (through the first frame's two clocks)."""
    with SerialVm(menu_vm(kernel, payload, grub, bls), timeout=VM_TIMEOUT) as vm:
        first_frame, to_menu = wait_menu(vm)
        vm.send("x")
        vm.settle(2.0)
        stamps, _ = read_in_shell(vm)
    print(f"QEMU start -> first frame {first_frame:.1f} s, -> every entry on the serial screen {to_menu:.1f} s")
    print(timeline.table(stamps))
    frame = next((s.seconds for s in stamps if s.event == "first-frame"), None)
    if frame is not None:
        # The serial screen's frame reached the host at most a few ms after the guest stamped it.
        print(f"every entry on the serial screen at uptime ~{to_menu - first_frame + frame:.2f} s")


def init_uptime(kernel: Path, payload: Path) -> float | None:
    """Kernel start -> the payload's /init (what unpacking this payload costs), from its `init` timeline stamp, read
    in the rescue shell (`bootmenu.shell=1`: no menu or daemon started)."""
    config = VmConfig(kernel=kernel, initrd=payload, append=f"{BASE_APPEND} bootmenu.shell=1 bootmenu.timeline")
    with SerialVm(config, timeout=VM_TIMEOUT) as vm:
        vm.expect("rescue shell", timeout=180)
        vm.settle(1.0)
        stamps, _ = read_in_shell(vm)
    return next((s.seconds for s in stamps if s.event == "init"), None)


# Typed in the payload's rescue shell: the GRUB disk's kernel and second initrd through kexec_load (-c).
SEGMENTS_COMMAND = (
    "mkdir -p /mnt/k && mount -o ro /dev/vda1 /mnt/k && echo KEXEC-LOAD-''START && "
    "bootmenu kexec load -c /mnt/k/boot/vmlinuz --initrd /mnt/k/boot/second.img "
    "--append 'console=ttyS0,115200 panic=-1 quiet bench=kexec-load' && bootmenu kexec exec"
)


def segments_run(kernel: Path, payload: Path, grub: Path) -> float:
    """`bootmenu kexec load -c` + `exec` from the payload's rescue shell -> the second kernel's /init, seconds."""
    config = VmConfig(kernel=kernel, initrd=payload, append=f"{BASE_APPEND} bootmenu.shell=1", disks=(Disk(grub),))
    with SerialVm(config, timeout=VM_TIMEOUT) as vm:
        vm.expect(b"rescue shell", timeout=180)
        vm.child.sendline(SEGMENTS_COMMAND)
        vm.expect(b"KEXEC-LOAD-START", timeout=60)
        started = time.monotonic()
        vm.expect(guests.SECOND_STAGE_MARKER, timeout=180)
        return time.monotonic() - started


def goal_line(goal: str, value: float | None, limit: float, unit: str, where: str = "not measured here") -> str:
    """One goal of issue 15 beside the figure measured (`value` None: not measured by this bench; `where` says what
    checks it instead)."""
    target = f"goal <= {limit:g}{unit}"
    if value is None:
        return f"  {goal:<40} {'-':>13}  {target:<16} {where}"
    verdict = "met" if value <= limit else "NOT met"
    return f"  {goal:<40} {f'{value:.2f}{unit}':>13}  {target:<16} {verdict}"


def main() -> int:
    """The figures; on a machine where they cannot be measured, one line saying why and exit status 1."""
    try:
        return measure()
    except (BenchError, GuestError, RunError, ElfDependencyError) as e:
        print(f"make bench: {e}", file=sys.stderr)
        return 1
    except pexpect.ExceptionPexpect as e:  # a VM that stopped answering: its first line, not pexpect's dump
        print(f"make bench: a VM's console: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1


def measure() -> int:
    kernel = kernel_in(KERNEL_CACHE)
    modules = modules_in(KERNEL_CACHE)
    if "--boot" in sys.argv[1:]:
        with tempfile.TemporaryDirectory(prefix="bootmenu-bench-") as tmp:
            disks = make_test_disks(Path(tmp), kernel, second_initrd(Path(tmp)))
            boot_run(kernel, build_payload(modules, Compression.ZSTD), disks.grub, disks.bls)
        return 0
    payload = build_payload(modules)
    # The same tree in xz (the size goal is stated in xz) and zstd (the builder's default, picked from the unpack
    # costs printed below, and what the menu VM boots); the tests and the kexec_load VM boot the gzip build.
    shipped = build_payload(modules, Compression.XZ)
    zstd = build_payload(modules, Compression.ZSTD)
    with tempfile.TemporaryDirectory(prefix="bootmenu-bench-") as tmp:
        base = Path(tmp)
        second = second_initrd(base)
        disks = make_test_disks(base, kernel, second)
        kexec, kexec_root = kexec_tools()
        bare = guests.baseline_initrd(
            base / "baseline.img",
            modules_dir=modules,
            kexec_binary=kexec,
            second_kernel=kernel,
            second_initrd=second,
            library_roots=[kexec_root],
        )
        bare_size = bare.stat().st_size
        bare_init, bare_kexec, bare_guest_init = baseline(kernel, bare, disks.grub)
        # The menu VM boots what the builder ships by default (zstd).
        got = payload_run(kernel, zstd, disks.grub, disks.bls)
        segments_kexec = segments_run(kernel, payload, disks.grub)
        # What each compressor costs at boot: the same tree, kernel start -> /init (the zstd one from its run).
        unpack = {
            Compression.GZIP: init_uptime(kernel, payload),
            Compression.XZ: init_uptime(kernel, shipped),
            Compression.ZSTD: next((s.seconds for s in got.stamps if s.event == "init"), None),
        }
    to_menu, hwm, detail, menu_kexec = got.to_menu, got.hwm, got.detail, got.kexec
    mib = 1 << 20
    print(f"kernel: {kernel.name}, QEMU TCG, q35, 1 vCPU, 1024 MiB")
    print(f"QEMU start -> menu's first frame:      {got.first_frame:6.1f} s")
    print(f"QEMU start -> menu with all entries:   {to_menu:6.1f} s")
    print(f"QEMU start -> bare busybox /init:      {bare_init:6.1f} s   (menu / bare: {to_menu / bare_init:.1f}x)")
    frame = next((s.seconds for s in got.stamps if s.event == "first-frame"), None)
    if frame is not None:
        # The serial screen's every-entry moment on the guest's clock, through the first frame's two clocks: without
        # QEMU's own start (firmware, loading kernel and initrd), which the host's load stretches most.
        entries = to_menu - got.first_frame + frame
        print(
            f"kernel start -> every entry (guest clock): {entries:6.2f} s, -> bare /init {bare_guest_init:.2f} s"
            f"   (ratio {entries / bare_guest_init:.1f}x); QEMU start -> kernel start: menu VM"
            f" {got.first_frame - frame:.1f} s, bare VM {bare_init - bare_guest_init:.1f} s"
        )
    print(f"Enter -> second kernel's /init:        {menu_kexec:6.1f} s")
    print(
        f"kexec -s -l + kexec -e -> second /init: {bare_kexec:6.1f} s"
        f"   (menu / kexec-tools: {menu_kexec / bare_kexec:.1f}x)"
    )
    print(
        f"bootmenu kexec load -c + exec -> second /init (kexec_load): {segments_kexec:6.1f} s"
        f"   (kexec_load / kexec-tools: {segments_kexec / bare_kexec:.1f}x)"
    )
    print(
        f"payload size: {shipped.stat().st_size / mib:.2f} MiB (xz), {payload.stat().st_size / mib:.2f} MiB (gzip),"
        f" {zstd.stat().st_size / mib:.2f} MiB (zstd, the builder's default, booted by the menu VM);"
        f" bare baseline with kexec-tools and a second kernel: {bare_size / mib:.2f} MiB"
    )
    costs = ", ".join(f"{c} {'-' if t is None else f'{t:.2f} s'}" for c, t in unpack.items())
    print(f"kernel start -> payload's /init (unpacking it) by compressor: {costs}")
    if hwm is not None:
        print(f"peak memory, daemon + one menu (VmHWM): {hwm / 1024:.1f} MiB ({detail})")
    else:
        print(f"peak memory, daemon + one menu: {detail}")
    print()
    if got.stamps:
        print("boot timeline (guest uptime, bootmenu.timeline; kernel start = 0):")
        print(timeline.table(got.stamps))
        for problem in timeline.out_of_order(got.stamps):
            print(f"  timeline: {problem}")
    else:
        print("boot timeline: not read (the rescue shell did not answer)")
    print()
    print("issue 15 goals (one run; read as orders of magnitude on a shared host):")
    rss = None if hwm is None else hwm / 1024
    for goal, value, limit, unit in (
        ("first menu frame / bare /init", got.first_frame / bare_init, GOAL_FIRST_FRAME, "x"),
        ("menu with every entry / bare /init", to_menu / bare_init, GOAL_MENU, "x"),
        ("Enter -> second /init / kexec-tools", menu_kexec / bare_kexec, GOAL_KEXEC, "x"),
        ("payload size (xz)", shipped.stat().st_size / mib, GOAL_PAYLOAD_MIB, " MiB"),
        ("daemon + one menu peak RSS (VmHWM)", rss, GOAL_RSS_MIB, " MiB"),
    ):
        print(goal_line(goal, value, limit, unit))
    # Not measured here: tests/qemu/test_small_memory.py boots the whole path at 256 MiB (kexec_load chosen, since
    # kexec_file_load's two copies of the 20 MiB initrd would not fit).
    print(goal_line("whole path in a -m 256M VM", None, 256, " MiB", "met (tests/qemu/test_small_memory.py)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
