"""Real syslinux 6.04 (Debian's isolinux, syslinux-common, syslinux) booted in QEMU TCG as the oracle for
bootmenu's syslinux loader.

How it is driven: the fixture's tree is copied, `SERIAL 0 115200` is put first in the config the scan starts with,
every `.c32` the tree or its configs name becomes the real module (with libcom32/libutil beside it), and every kernel
and initrd a config names becomes the Debian test kernel and a small test initrd whose /init prints /proc/cmdline and
the marker of every initrd the kernel was given, framed by markers with a length (initramfs.guests.parse_framed).
A config on an ISO 9660 tree, or named isolinux.cfg, boots from an ISO made with genisoimage (isolinux.bin in the
config's directory, which isolinux searches first); any other from an unpartitioned FAT image that `syslinux
--install -d <config directory>` (the mtools installer: it writes only the image file) made bootable, so ldlinux's
working directory is the config's directory, as with extlinux on an installed system.

The menu (menu.c32 or vesamenu.c32: both write their menu to the serial console too) is read with pyte: Ctrl-L
stops the countdown and shows a hidden menu, Home goes to the first item, Down moves through the selectable ones;
the highlighted row is the one drawn in the `sel` colours. Each item is booted in a fresh VM by its key path (Home,
Down x k, Enter per level), and what the kernel received is read from the console. A config without a UI (the
`boot:` prompt) has each LABEL typed at the prompt. The default is what boots when nothing is pressed (the timeout),
or Enter on the first screen when nothing counts down.

Every QEMU run is TCG (`-accel tcg`), on copies in a scratch directory; nothing is written outside it.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
import shutil
import struct
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pexpect
import pyte

from initramfs import guests
from initramfs.cpio import Compression, CpioEntry, write_cpio
from initramfs.qemu import QemuError, Qmp
from initramfs.run import run
from tests.conformance.digest import files_digest

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"
MODULES = CACHE / "syslinux-common" / "root" / "usr" / "lib" / "syslinux" / "modules" / "bios"
ISOLINUX_BIN = CACHE / "isolinux" / "root" / "usr" / "lib" / "ISOLINUX" / "isolinux.bin"
SYSLINUX_INSTALLER = CACHE / "syslinux" / "root" / "usr" / "bin" / "syslinux"
KERNEL_BOOT = CACHE / "kernel" / "root" / "boot"
# Bumped when the staging, the driving or the parsing changes, so cached answers are recomputed. Kept at 2 through the
# one-VM walk (savevm/loadvm) and the ramdisk probe: re-run on the 10 fixture configs and 11 of the corpus's (not the
# three archiso ones), they gave the same items, titles, command lines and initrds, except where an old answer had
# `silent` for a kernel given no initrd (the probe now reads its command line: those answers stay as recorded until
# their input changes) or saw no menu (Fedora 27, Qubes 3.2: re-recorded).
HARNESS_VERSION = "2"
# Libraries the menu and the if*.c32/whichsys.c32 modules load, put beside every module.
LIBRARIES = ("ldlinux.c32", "libcom32.c32", "libutil.c32", "libmenu.c32", "libgpl.c32")
CONFIG_SUFFIXES = (".cfg", ".conf")
KERNEL_NAMES = re.compile(r"^(vmlinu[xz]|bzimage|linux|image|kernel)", re.IGNORECASE)
CMDLINE_MARK = "BM-SYSLINUX-CMDLINE="
CMDLINE_END = "BM-SYSLINUX-CMDLINE-END"
INITRDS_MARK = "BM-SYSLINUX-INITRDS="
INITRDS_END = "BM-SYSLINUX-INITRDS-END"
KEYS = {"down": b"\x1b[B", "up": b"\x1b[A", "home": b"\x1b[H", "enter": b"\r", "redraw": b"\x0c", "esc": b"\x1b"}
# vesamenu's text grid on its 640x480 framebuffer is 80x30 (menu.c32 draws in the first 25 rows): rows 26-30 (help
# text, a VSHIFTed menu) would otherwise be clamped onto the last row.
COLUMNS, ROWS = 80, 30
# `MENU COLOR sel|hotsel <ansi> ...`: the ANSI attributes the menu writes to the serial console for the highlighted
# row. Some configs give the same ones as `unsel` (lorax's `sel 0`: the highlight is in the framebuffer colours
# only), so the harness makes them bold reverse video in every config it stages: the highlight becomes visible on the
# serial console, and nothing a menu shows or boots depends on its colours.
SELECTED_COLOUR = re.compile(rb"(?im)^([ \t]*menu[ \t]+colou?r[ \t]+(?:sel|hotsel)[ \t]+)\S+")
LOW_MEMORY = 0xA0000  # conventional memory, where the loader puts the kernel's real-mode header (BootParams)
COMMAND_LINE_MAX = 4096  # read at cmd_line_ptr: more than x86's COMMAND_LINE_SIZE (2048)
MAX_ITEMS = 256  # per menu level: a bound on the enumeration whatever a config does (Debian 9's submenu has 79)
MAX_DEPTH = 4  # submenu levels followed
# Bounds of one run: the firmware and ldlinux up to the first screen; from Enter to /init's markers or the boot header
# of a kernel given no initrd (what started no kernel and said nothing is recorded as `silent` when this runs out).
FIRST_SCREEN_TIMEOUT = 60.0
BOOT_TIMEOUT = 60.0
AUTOBOOT_TIMEOUT = 90.0  # the longest countdown waited for in the default run
AUTOBOOT_QUIET = 6.0  # a console quiet this long after the banner shows a screen that waits for the user
CHANGE_QUIET = 2.5  # seconds of quiet after Down with the same row highlighted: the last item
PROBE_INTERVAL = 0.25  # seconds between reads of the boot header while a kernel may be starting
QUIET = 0.6  # seconds without console output after which a redraw is taken as finished
FAILURES = (
    b"Could not find kernel image",
    b"Invalid or corrupt kernel image",
    b"Boot failed",
    b"No bootable device",
    b"Booting from Hard Disk",
    b"Booting from Floppy",
    b"Booting from DVD",
    b"Loading boot sector",
    b"boot: ",
)

INIT = f"""#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox dmesg -n 1 2>/dev/null
c=$(/bin/busybox cat /proc/cmdline)
m=$(/bin/busybox cat /bm-initrd/* 2>/dev/null | /bin/busybox tr '\\n' ' ')
printf '%s\\n%s length=%s\\n' "{CMDLINE_MARK}$c" "{CMDLINE_END}" "${{#c}}" > /dev/ttyS0
printf '%s\\n%s length=%s\\n' "{INITRDS_MARK}$m" "{INITRDS_END}" "${{#m}}" > /dev/ttyS0
/bin/busybox poweroff -f
"""


class SyslinuxUnavailable(Exception):
    """The syslinux packages, the kernel or QEMU are not here (`make conformance` fetches them)."""


@dataclass(frozen=True)
class Item:
    """One menu item (or typed label) booted: its menu path, what happened, and what the kernel received."""

    path: tuple[str, ...]
    # linux (the markers of /init read, or for a kernel given no initrd its boot header: see _probed), silent (no
    # Linux kernel started and nothing on the console: a module such as hdt.c32), failed, menu, none
    outcome: str
    cmdline: str | None = None
    initrds: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Answer:
    """syslinux's answer for one config: the UI kind, every item in menu order, the default run's result."""

    config: str
    device: str
    medium: str  # iso or fat
    ui: str  # menu, prompt (labels typed at `boot:`) or direct (the default boots at once: only it is seen)
    items: tuple[Item, ...] = ()
    default: Item | None = None
    highlighted: tuple[str, ...] = ()  # the item highlighted on the first screen (menu UI)
    seconds_per_boot: float = 0.0
    dmi: str = ""  # the SMBIOS structure table the firmware gave syslinux (hex): what its SYSAPPEND words came from

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @staticmethod
    def item_from_json(d: dict[str, Any]) -> Item:
        return Item(
            path=tuple(d["path"]),
            outcome=str(d["outcome"]),
            cmdline=d["cmdline"],
            initrds=tuple(d["initrds"]),
            note=str(d.get("note", "")),
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Answer:
        item = cls.item_from_json
        return cls(
            config=str(data["config"]),
            device=str(data["device"]),
            medium=str(data["medium"]),
            ui=str(data["ui"]),
            items=tuple(item(i) for i in data["items"]),
            default=item(data["default"]) if data.get("default") else None,
            highlighted=tuple(data.get("highlighted", ())),
            seconds_per_boot=float(data.get("seconds_per_boot", 0.0)),
            dmi=str(data.get("dmi", "")),
        )


def test_kernel() -> Path:
    """The Debian test kernel (its version derived from the unpacked package, never written here)."""
    found = sorted(KERNEL_BOOT.glob("vmlinuz-*"))
    if not found:
        raise SyslinuxUnavailable(f"no kernel in {KERNEL_BOOT}: run `make kernel`")
    return found[-1]


def available() -> bool:
    return (
        MODULES.is_dir()
        and ISOLINUX_BIN.is_file()
        and SYSLINUX_INSTALLER.is_file()
        and bool(list(KERNEL_BOOT.glob("vmlinuz-*")))
        and shutil.which("qemu-system-x86_64") is not None
        and shutil.which("genisoimage") is not None
        and shutil.which("mcopy") is not None
    )


def tree_digest(tree: Path, config: str) -> str:
    """A hash of every file of the tree (names, modes as git records them, contents), the config and the harness."""
    return files_digest(tree, f"syslinux {HARNESS_VERSION}\0{config}\0")


# ----------------------------------------------------------------------------------------------------- staging


def _configs(tree: Path) -> list[Path]:
    return sorted(
        p for p in tree.rglob("*") if p.is_file() and p.suffix.lower() in CONFIG_SUFFIXES and p.stat().st_size < 1 << 20
    )


def _named_files(tree: Path) -> tuple[set[str], set[str], set[str]]:
    """(kernels, initrds, modules) the configs of the tree name, as written: a crude reading of every line (KERNEL,
    LINUX, INITRD, `initrd=` words, any `*.c32` word), independent of bootmenu's parser."""
    kernels: set[str] = set()
    initrds: set[str] = set()
    modules: set[str] = set()
    for config in _configs(tree):
        for raw in config.read_text(errors="replace").splitlines():
            words = raw.split()
            if not words or words[0].startswith("#"):
                continue
            key = words[0].lower()
            for word in words:
                for part in word.split(","):
                    if part.lower().endswith(".c32"):
                        modules.add(PurePosixPath(part.removeprefix("::")).name)
            if key in ("kernel", "linux") and len(words) > 1 and not words[1].lower().endswith(".c32"):
                kernels.add(words[1])
            elif key == "initrd" and len(words) > 1:
                initrds.update(p for p in words[1].split(",") if p)
            for word in words:
                if word.startswith("initrd="):
                    initrds.update(p for p in word[len("initrd=") :].split(",") if p)
    return kernels, initrds, modules


def _targets(tree: Path, config_dir: str, name: str) -> list[Path]:
    """Where a name written in a config may live: as written from the root, and from the config's directory."""
    name = name.removeprefix("::")
    if "$" in name or "{" in name or not name:
        return []
    if name.startswith("/"):
        return [tree / name.lstrip("/")]
    # Relative to the working directory, which CONFIG can move: also every file of the tree the name could mean.
    tail = PurePosixPath(name).parts
    others = [p for p in tree.rglob(tail[-1]) if p.is_file() and p.parts[-len(tail) :] == tail]
    return [tree / config_dir.lstrip("/") / name, *others]


def _slug(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", path.strip("/")) or "root"


def test_initrd(output: Path, marker: str, busybox: Path) -> Path:
    """A test initrd: busybox, the /init above and /bm-initrd/<slug> holding `marker` (the path it stands for). The
    marker is an uncompressed newc archive of its own, followed by the gzip-compressed rest (the kernel unpacks a
    concatenation of archives, as with early microcode), so the harness can also read it straight from the ramdisk
    syslinux loaded (`initrd_markers`) without waiting for /init."""
    rest = [
        CpioEntry.directory("dev"),
        CpioEntry.char_device("dev/console", 5, 1),
        CpioEntry.char_device("dev/ttyS0", 4, 64),
        CpioEntry.directory("proc"),
        CpioEntry.file("bin/busybox", source=busybox, perm=0o755),
        CpioEntry.symlink("bin/sh", "busybox"),
        CpioEntry.file("init", INIT.encode(), perm=0o755),
    ]
    with output.open("wb") as f:
        write_cpio([CpioEntry.file(f"{MARKER_DIR}/{_slug(marker)}", f"{marker}\n".encode())], f)
    head = output.read_bytes()
    with output.open("wb") as f:
        write_cpio(rest, f)
    output.write_bytes(head + Compression.GZIP.compress(output.read_bytes()))
    return output


# A newc member header (magic, 13 fields of 8 hex digits) whose name is in MARKER_DIR: one of the test initrds' markers.
MARKER_DIR = "bm-initrd"
MARKER_MEMBER = re.compile(rb"070701([0-9A-Fa-f]{8}){13}" + re.escape(MARKER_DIR.encode()) + rb"/")
NEWC_HEADER = 110
RAMDISK_MAX = 256 << 20  # the most of a ramdisk read back from guest memory


def initrd_markers(ramdisk: bytes) -> tuple[str, ...] | None:
    """The markers of the test initrds in a dump of the ramdisk syslinux loaded (the initrds one after another, each
    starting with its uncompressed marker archive), in load order; None when it does not start with a newc archive
    (not one of the harness's initrds, or memory the kernel already reused)."""
    if not ramdisk.startswith(b"070701"):
        return None
    found = []
    for match in MARKER_MEMBER.finditer(ramdisk):
        at = match.start()
        namesize = int(ramdisk[at + 94 : at + 102], 16)
        filesize = int(ramdisk[at + 54 : at + 62], 16)
        head = NEWC_HEADER + namesize
        data_at = at + head + (-head % 4)  # members are 4-aligned within their archive, so relative to `at`
        found.append(ramdisk[data_at : data_at + filesize].decode("utf-8", "replace").strip())
    return tuple(found) or None


def stage(
    tree: Path, config: str, scratch: Path, extra_kernels: Sequence[str] = (), extra_initrds: Sequence[str] = ()
) -> Path:
    """A copy of `tree` ready to boot `config` (absolute within the tree): SERIAL first in it, real modules, the test
    kernel at every kernel path and a test initrd at every initrd path the configs (or `extra_*`) name."""
    staged = scratch / "tree"
    shutil.copytree(tree, staged, symlinks=False, ignore=lambda _d, names: [n for n in names if n == ".bootmenu-fs"])
    config_dir = str(PurePosixPath(config).parent)
    start = staged / config.lstrip("/")
    start.write_bytes(b"SERIAL 0 115200\n" + start.read_bytes())
    for path in _configs(staged):
        text = path.read_bytes()
        shown = SELECTED_COLOUR.sub(rb"\1 1;7", text)
        if shown != text:
            path.write_bytes(shown)
    kernels, initrds, modules = _named_files(staged)
    kernel = test_kernel()
    busybox = guests.find_busybox()
    placed: set[Path] = set()
    present = {p.name.lower() for p in staged.rglob("*") if p.is_file()}

    def wanted(target: Path) -> bool:
        # A file the tree has is replaced; a missing one is made only when the tree has no file of that name anywhere
        # (a config alone, as in the corpus): otherwise where syslinux looks for it is part of the question.
        return not target.is_dir() and (target.is_file() or target.name.lower() not in present)

    for name in sorted({*kernels, *extra_kernels}):
        for target in _targets(staged, config_dir, name):
            if not wanted(target):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            shutil.copyfile(kernel, target)
            placed.add(target)
    for path in staged.rglob("*"):  # kernels a label names by its own name (LABEL vmlinuz) or a bare file
        if (
            path.is_file()
            and path not in placed
            and KERNEL_NAMES.match(path.name)
            and path.suffix.lower() not in (".cfg", ".conf", ".c32", ".dtb", ".txt", ".png")
        ):
            shutil.copyfile(kernel, path)
            placed.add(path)
    for name in sorted({*initrds, *extra_initrds}):
        for target in _targets(staged, config_dir, name):
            if target in placed or not wanted(target):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            test_initrd(target, "/" + str(target.relative_to(staged)), busybox)
            placed.add(target)
    # Real modules: every .c32 file of the tree, and the named ones that are missing, in the config's directory.
    module_dirs = {staged / config_dir.lstrip("/")}
    for path in list(staged.rglob("*.c32")) + list(staged.rglob("*.C32")):
        real = MODULES / path.name.lower()
        if real.is_file():
            path.unlink()
            shutil.copyfile(real, path)
            module_dirs.add(path.parent)
    for name in modules:
        if not any(p.name.lower() == name.lower() for p in staged.rglob("*")) and (MODULES / name.lower()).is_file():
            shutil.copyfile(MODULES / name.lower(), staged / config_dir.lstrip("/") / name)
    for directory in module_dirs:
        for lib in LIBRARIES:
            if not any(p.name.lower() == lib for p in directory.iterdir()):
                shutil.copyfile(MODULES / lib, directory / lib)
    return staged


# The machine's SMBIOS strings (SeaBIOS builds its tables from QEMU's): blanks inside, around and alone, so the
# SYSAPPEND words show how syslinux trims and joins them; the UUID's byte 6 as stored makes it one syslinux shows.
SMBIOS = (
    "-smbios", "type=0,vendor=  BM  Firmware ,version=1.2.3",
    "-smbios", "type=1,manufacturer=  Bootmenu  Labs ,product=Test Machine,version=   ,serial=SN 0042,"
               "uuid=00112233-4455-6677-8899-aabbccddeeff,sku=SKU-9,family=Family  X",
    "-smbios", "type=2,manufacturer=Board Co,product=B-1,version=rev  2,serial=BSN-7,asset=Asset #7",
)  # fmt: skip


def make_iso(staged: Path, config: str, image: Path) -> Path:
    """An El Torito ISO of `staged` booting isolinux.bin from the config's directory (searched first by isolinux)."""
    config_dir = PurePosixPath(config).parent
    boot_dir = staged / str(config_dir).lstrip("/")
    shutil.copyfile(ISOLINUX_BIN, boot_dir / "isolinux.bin")
    rel = str(PurePosixPath(str(config_dir).lstrip("/")) / "isolinux.bin").lstrip("./") or "isolinux.bin"
    catalog = str(PurePosixPath(str(config_dir).lstrip("/")) / "boot.cat").lstrip("./") or "boot.cat"
    rel = str(PurePosixPath(rel))
    run(
        ["genisoimage", "-quiet", "-o", image, "-R", "-J", "-l", "-b", rel, "-c", catalog, "-no-emul-boot",
         "-boot-load-size", "4", "-boot-info-table", staged],
        capture=True,
    )  # fmt: skip
    return image


def make_fat(staged: Path, config: str, image: Path, uuid: str = "") -> Path:
    """An unpartitioned FAT image of `staged` with syslinux installed into the config's directory (mtools installer:
    it writes the image file only); its volume id is `uuid` (XXXX-XXXX, as blkid shows it) when given, so the
    FSUUID= word syslinux makes from it is the one bootmenu makes from the fixture's `.bootmenu-fs`."""
    size = sum(p.stat().st_size for p in staged.rglob("*") if p.is_file())
    size = max(32 << 20, size * 5 // 4 + (8 << 20))
    with image.open("wb") as f:
        f.truncate(size)
    volume_id = ["-i", uuid.replace("-", "")] if re.fullmatch(r"[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}", uuid) else []
    run(["mkfs.vfat", "-n", "BMSYSLINUX", *volume_id, image], capture=True)
    members = sorted(staged.iterdir())
    if members:
        run(["mcopy", "-s", "-i", image, *members, "::/"], capture=True, env={"MTOOLS_SKIP_CHECK": "1"})
    directory = str(PurePosixPath(config).parent)
    run([SYSLINUX_INSTALLER, "--install", "-d", directory, image], capture=True, env={"MTOOLS_SKIP_CHECK": "1"})
    return image


def medium_of(config: str, fstype: str) -> str:
    return "iso" if fstype == "iso9660" or PurePosixPath(config).name.lower() == "isolinux.cfg" else "fat"


# ----------------------------------------------------------------------------------------------------- driving


class Console:
    """One QEMU (TCG) booting the image, its serial console a pexpect child rendered by pyte."""

    def __init__(self, image: Path, medium: str, *, snapshots: bool = False) -> None:
        drive = (
            ["-drive", f"file={image},format=raw,media=cdrom,readonly=on", "-boot", "d"]
            if medium == "iso"
            else ["-drive", f"file={image},format=raw,if=ide,snapshot=on", "-boot", "c"]
        )
        self.scratch = Path(tempfile.mkdtemp(prefix="bootmenu-syslinux-vm-"))
        self.monitor_path = self.scratch / "qmp.sock"
        argv = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-m", "512", "-display", "none", "-vga",
                "std", "-nodefaults", "-serial", "stdio", "-no-reboot",
                "-qmp", f"unix:{self.monitor_path},server=on,wait=off", *SMBIOS, *drive]  # fmt: skip
        if snapshots:
            # Paused until the vmstate disk is made: a menu's countdown must not run (or end) meanwhile, and the
            # banner must come after, where _first_screen looks for it.
            argv.append("-S")
        self.monitor: Qmp | None = None
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.ended = False
        self.child = pexpect.spawn(argv[0], argv[1:], timeout=FIRST_SCREEN_TIMEOUT, dimensions=(ROWS, COLUMNS))
        self.saved: dict[str, pyte.Screen] = {}
        if snapshots:
            self._vmstate_disk()
            self._qmp().execute("cont")

    def _qmp(self) -> Qmp:
        if self.monitor is None:
            self.monitor = Qmp(self.monitor_path, timeout=30.0)
        return self.monitor

    def _vmstate_disk(self) -> None:
        """An empty qcow2 image (made by QEMU itself: blockdev-create) for savevm to keep the VM's states in: the only
        writable disk that supports snapshots (the boot medium is read-only or snapshot=on)."""
        path = self.scratch / "vmstate.qcow2"
        path.write_bytes(b"")
        qmp = self._qmp()
        qmp.execute("blockdev-add", {"driver": "file", "node-name": "vmstate-file", "filename": str(path)})
        qmp.execute("blockdev-create", {"job-id": "vmstate", "options": {"driver": "qcow2", "file": "vmstate-file",
                                                                       "size": 64 << 20}})  # fmt: skip
        deadline = time.monotonic() + 30.0
        while any(j["status"] != "concluded" for j in qmp.execute("query-jobs")):
            if time.monotonic() > deadline:
                raise SyslinuxUnavailable("QEMU did not make the vmstate qcow2 image within 30 s")
            self.read(0.05)
        qmp.execute("job-dismiss", {"id": "vmstate"})
        qmp.events.clear()
        # Opened again as a child of the qcow2 node (a node of its own would be a writable disk without snapshots).
        qmp.execute("blockdev-del", {"node-name": "vmstate-file"})
        qmp.execute("blockdev-add", {"driver": "qcow2", "node-name": "vmstate",
                                     "file": {"driver": "file", "filename": str(path)}})  # fmt: skip

    def _hmp(self, command: str) -> None:
        answer = self._qmp().execute("human-monitor-command", {"command-line": command})
        if answer:  # savevm/loadvm print nothing unless they failed
            raise QemuError(f"{command}: {str(answer).strip()}")

    def save(self, name: str) -> None:
        """Keeps the VM's whole state (savevm) and the console's screen as drawn up to now, under `name`. Taken on a
        quiet console, so no byte is in flight between the guest and the screen."""
        self._hmp(f"savevm {name}")
        self.saved[name] = copy.deepcopy(self.screen)

    def restore(self, name: str) -> None:
        """Back to the state saved under `name` (loadvm), running, with the screen as it was then."""
        self._hmp(f"loadvm {name}")
        self._qmp().execute("cont")
        self._qmp().events.clear()  # savevm/loadvm's STOP/RESUME events: nothing here waits for them
        self.screen = copy.deepcopy(self.saved[name])
        self.stream = pyte.ByteStream(self.screen)

    def pause(self) -> None:
        self._qmp().execute("stop")

    def resume(self) -> None:
        self._qmp().execute("cont")

    def read(self, timeout: float) -> bytes:
        """Console bytes that arrive within `timeout` (b"" when none); EOF ends the run."""
        if self.ended:
            return b""
        try:
            data: bytes = self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            return b""
        except pexpect.EOF:
            self.ended = True  # QEMU exited (the test /init powers off): what was read stays
            return b""
        self.raw.extend(data)
        self.stream.feed(data)
        return data

    def settle(self, quiet: float = QUIET, limit: float = 20.0) -> None:
        """Reads until the console has been quiet for `quiet` seconds (a redraw finished), at most `limit`."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and self.read(quiet):
            pass

    def wait_for(self, needle: bytes, timeout: float) -> bool:
        start = len(self.raw)
        deadline = time.monotonic() + timeout
        while needle not in self.raw[start:]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.read(min(remaining, 1.0))
        return True

    def send(self, key: str) -> None:
        self.child.send(KEYS.get(key, key.encode()))

    def memory(self, address: int, size: int) -> bytes:
        """`size` bytes of guest physical memory from `address` (QMP pmemsave into the scratch directory)."""
        dump = self.scratch / "memory.bin"
        dump.unlink(missing_ok=True)
        self._qmp().execute("pmemsave", {"val": address, "size": size, "filename": str(dump)})
        return dump.read_bytes() if dump.is_file() else b""

    def started_kernel(self) -> BootParams | None:
        """The boot protocol header syslinux put in low memory for the kernel it started, if it started one: see
        BootParams. None while (or when) no Linux kernel was handed control. Only read while QEMU runs."""
        if self.ended or self.child.isalive() is False:
            return None
        try:
            low = self.memory(0, LOW_MEMORY)
            found = BootParams.find(low)
            if found is None or found.cmd_line_ptr == 0:
                return None
            text = self.memory(found.cmd_line_ptr, COMMAND_LINE_MAX)
        except (OSError, QemuError):
            return None
        return dataclasses.replace(found, cmdline=text.split(b"\0", 1)[0].decode("utf-8", "replace"))

    def ramdisk(self, params: BootParams) -> tuple[str, ...] | None:
        """The test initrds' markers in the ramdisk the started kernel was given (see initrd_markers), read while the
        VM is paused; None when they cannot be read."""
        try:
            return initrd_markers(self.memory(params.ramdisk_image, min(params.ramdisk_size, RAMDISK_MAX)))
        except (OSError, QemuError):
            return None

    def dmi_table(self) -> bytes:
        """The SMBIOS structure table the firmware built, found as syslinux finds it (core/dmi.c): a `_SM_` entry
        point on a paragraph in 0xF0000-0xFFFFF with its `_DMI_` part 16 bytes on, which gives the table's address and
        length. Empty when there is none."""
        try:
            segment = self.memory(0xF0000, 0x10000)
            at = segment.find(b"_SM_")
            while at >= 0:
                legacy = at + 16
                if at % 16 == 0 and segment[legacy : legacy + 5] == b"_DMI_":
                    length, address = struct.unpack_from("<HI", segment, legacy + 6)
                    return self.memory(address, length)
                at = segment.find(b"_SM_", at + 1)
        except (OSError, QemuError):
            pass
        return b""

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
        self.child.close(force=True)
        shutil.rmtree(self.scratch, ignore_errors=True)


@dataclass(frozen=True)
class BootParams:
    """The real-mode kernel header (Linux's boot protocol, Documentation/arch/x86/boot.rst) as the boot loader filled
    it in and copied to low memory just before jumping to the kernel's setup code: boot_flag 0xAA55 at 0x1fe, "HdrS"
    at 0x202, ramdisk_image/ramdisk_size at 0x218/0x21c, cmd_line_ptr at 0x228 (protocol 2.02+). syslinux moves the
    setup code there only when it hands over control (its own copy lives in its heap above 1 MiB), and Linux keeps
    the first MiB reserved, so the header found there is what the started kernel received. The command line is the
    NUL-terminated string at cmd_line_ptr: the bytes /proc/cmdline shows."""

    base: int
    ramdisk_image: int
    ramdisk_size: int
    cmd_line_ptr: int
    cmdline: str = ""

    @classmethod
    def find(cls, low: bytes) -> BootParams | None:
        """The header in a dump of low memory: the paragraph-aligned one with the signature and a command line."""
        at = low.find(b"HdrS")
        while at >= 0:
            base = at - 0x202
            if (
                base >= 0
                and base % 16 == 0
                and len(low) >= base + 0x230
                and low[base + 0x1FE : base + 0x200] == b"\x55\xaa"
            ):
                ramdisk_image, ramdisk_size = struct.unpack_from("<II", low, base + 0x218)
                (cmd_line_ptr,) = struct.unpack_from("<I", low, base + 0x228)
                if cmd_line_ptr:
                    return cls(base, ramdisk_image, ramdisk_size, cmd_line_ptr)
            at = low.find(b"HdrS", at + 1)
        return None


@contextmanager
def console(image: Path, medium: str, *, snapshots: bool = False) -> Iterator[Console]:
    c = Console(image, medium, snapshots=snapshots)
    try:
        yield c
    finally:
        c.close()


def _first_screen(c: Console) -> None:
    """Up to the menu or prompt: the banner, then quiet; Ctrl-L stops a countdown and shows a hidden menu."""
    if b"LINUX 6." not in c.raw and not c.wait_for(b"LINUX 6.", FIRST_SCREEN_TIMEOUT):
        raise SyslinuxUnavailable(f"no syslinux banner on the serial console: {bytes(c.raw[-400:])!r}")
    c.settle(QUIET)
    c.send("redraw")
    c.settle(QUIET)


def _framed(raw: bytes, start: str, end: str) -> str | None:
    begin = raw.rfind(start.encode())
    if begin < 0:
        return None
    tail = raw[begin + len(start) :]
    match = re.search(re.escape(end.encode()) + rb" length=(\d+)", tail)
    if match is None:
        return None
    return guests.parse_framed(tail[: match.start()], int(match.group(1)))


def _loading(c: Console, start: int) -> str:
    """The files syslinux said it loaded ("Loading /path... ok"), in order: evidence of the kernel's and initrds'
    paths and order (vesamenu and ldlinux print them; menu.c32 hides them)."""
    found = re.findall(rb"Loading (\S+?)\.\.\.", bytes(c.raw[start:]))
    return " ".join(f.decode("utf-8", "replace") for f in found)


def _outcome(c: Console, path: tuple[str, ...], style: Style | None, timeout: float = BOOT_TIMEOUT) -> Item:
    """After Enter: the markers of /init (linux), the boot header of a kernel given no initrd (linux, see _probed), a
    failure message or a redrawn menu, or silence until `timeout`. Once a kernel has been started, what it prints
    (console= on its command line) is not taken for syslinux's failure messages or menu."""
    start = len(c.raw)
    deadline = time.monotonic() + timeout
    redraw_seen = False
    started = False  # a kernel with an initrd was started: its /init's markers are awaited
    probed_at = 0.0
    while time.monotonic() < deadline:
        got = c.read(PROBE_INTERVAL)
        new = bytes(c.raw[start:])
        if INITRDS_END.encode() in new and re.search(re.escape(INITRDS_END.encode()) + rb" length=\d+[\r\n]", new):
            cmdline = _framed(new, CMDLINE_MARK, CMDLINE_END)
            initrds = _framed(new, INITRDS_MARK, INITRDS_END) or ""
            return Item(
                path=path,
                outcome="linux",
                cmdline=cmdline,
                initrds=tuple(initrds.split()),
                note=_loading(c, start),
            )
        if c.ended:
            return Item(path=path, outcome="failed", note="QEMU ended without the markers")
        if started:
            continue
        failure = next((f for f in FAILURES if f in new), None)
        if failure is not None or time.monotonic() - probed_at >= PROBE_INTERVAL:
            probed_at = time.monotonic()
            params = c.started_kernel()
            if params is not None:
                item = _probed(c, path, start, params)
                if item is not None:
                    return item
                started = True
                continue
        if failure is not None:
            c.settle(QUIET, 5.0)
            return Item(path=path, outcome="failed", note=failure.decode().strip())
        if b"\x1b[2J" in new:
            redraw_seen = True
        # A menu drawn again (MENU EXIT, or a module that shows another menu): its highlighted row is back.
        if redraw_seen and not got and style is not None and _highlighted(c, style) is not None:
            return Item(path=path, outcome="menu", note=_screen_text(c)[:200])
    return Item(path=path, outcome="silent")


def _probed(c: Console, path: tuple[str, ...], start: int, params: BootParams) -> Item | None:
    """What a started kernel received, read from the boot header syslinux handed it and, for one given an initrd,
    from the ramdisk it loaded (the VM paused first, so the kernel has not yet unpacked and freed it): the same
    command line and markers its /init would print, without booting to /init (a kernel without console=ttyS0 says
    nothing on the serial console, and one given no initrd runs no /init). None when the ramdisk holds no markers
    (the VM runs on and /init's markers are awaited)."""
    loading = _loading(c, start)
    if not params.ramdisk_size:
        note = " ".join(filter(None, (loading, "(command line read from the boot header: no initrd)")))
        return Item(path=path, outcome="linux", cmdline=params.cmdline, initrds=(), note=note)
    c.pause()
    markers = c.ramdisk(params)
    if markers is None:
        c.resume()
        return None
    # As /init lists them (`cat /bm-initrd/*`): one per file name, in the order of the names.
    seen = {_slug(m): m for m in markers}
    return Item(path=path, outcome="linux", cmdline=params.cmdline, initrds=tuple(seen[k] for k in sorted(seen)),
                note=loading)  # fmt: skip


def _screen_text(c: Console) -> str:
    return "\n".join(line.rstrip() for line in c.screen.display)


Style = tuple[str, str, bool, bool]
# Box drawing (as Unicode, or VT100 line-drawing letters) and the scrollbar a menu longer than MENU ROWS draws.
BORDER = "│─┌┐└┘├┤┬┴┼xqlkmjtu▒░▓█"
# The scrollbar's thumb in the right border column, as the VT100 line-drawing `a` (a checkerboard) pyte leaves as the
# letter: after the blanks that pad a title to the menu's width (and a submenu's `>` or an exit's `<`), so not a
# title's own last letter unless the title ends in a blank and `a`.
SCROLLBAR = re.compile(r"(\s+[<>])?\s+a$")


def _rows(c: Console) -> list[tuple[int, str, Style]]:
    """(row, text, style) of every screen row with text: the style most of its characters have (a hotkey letter is
    drawn in the `hotkey`/`hotsel` colours, so the first character's is not the row's)."""
    out = []
    for y in range(ROWS):
        line = c.screen.buffer[y]
        chars = [line[x] for x in range(COLUMNS)]
        text = "".join(ch.data for ch in chars)
        stripped = SCROLLBAR.sub(r"\1", text.strip().strip(BORDER).strip()).strip()
        if not stripped:
            continue
        shown = [ch for ch in chars if ch.data.strip() and ch.data not in BORDER] or chars[:1]
        style = Counter((ch.fg, ch.bg, ch.reverse, ch.bold) for ch in shown).most_common(1)[0][0]
        out.append((y, stripped, style))
    return out


def _highlight_style(before: list[tuple[int, str, Style]], after: list[tuple[int, str, Style]]) -> Style | None:
    """The `sel` style: that of the row whose style changed when the highlight moved away from it."""
    was = {y: (t, s) for y, t, s in before}
    for y, text, style in after:
        if y in was and was[y][0] == text and was[y][1] != style:
            return was[y][1]
    return None


def _highlighted(c: Console, style: Style | None) -> str | None:
    rows = _rows(c)
    if style is not None:
        hits = [t for _, t, s in rows if s == style]
        return hits[0] if len(hits) == 1 else None
    reverse = [t for _, t, s in rows if s[2]]
    return reverse[0] if len(reverse) == 1 else None


def _await_change(c: Console, style: Style | None, previous: str | None) -> str | None:
    """The highlighted row once it differs from `previous` and the console is quiet; `previous` when the console
    stays quiet for CHANGE_QUIET with nothing new highlighted (the end of the menu: Down does not wrap). vesamenu
    draws on the framebuffer between its serial bytes, which under TCG can pause longer than QUIET."""
    quiet_since = time.monotonic()
    deadline = quiet_since + 20.0
    while time.monotonic() < deadline:
        got = c.read(0.3)
        now = time.monotonic()
        if got:
            quiet_since = now
            continue
        text = _highlighted(c, style)
        if text is not None and text != previous and now - quiet_since >= QUIET:
            return text
        if now - quiet_since >= CHANGE_QUIET:
            return text if text != previous else previous
    return _highlighted(c, style)


def _title(text: str) -> tuple[str, bool]:
    """A highlighted row as the item's title, and whether it opens a submenu (menu.c32 draws a `>` after it)."""
    text = text.strip()
    if text.endswith(">") and len(text) > 1:
        return text[:-1].rstrip(), True
    return text, False


def _labels(staged: Path) -> list[str]:
    """LABEL names of every config of the tree, in file order (for the `boot:` prompt, which lists none)."""
    names: list[str] = []
    for config in _configs(staged):
        for raw in config.read_text(errors="replace").splitlines():
            words = raw.split(None, 1)
            if len(words) == 2 and words[0].lower() == "label" and words[1].strip() not in names:
                names.append(words[1].strip())
    return names


Keys = tuple[int, ...]  # an item's key path: Down presses per menu level
Record = Callable[[Keys, Item], None]


def _menu_style(c: Console) -> tuple[Style | None, tuple[str, ...]]:
    """The `sel` style of the menu on the screen (the style a row loses when the highlight leaves it) and the item
    highlighted when it came up; leaves the first item highlighted."""
    first_rows = _rows(c)
    c.send("home")
    c.settle(QUIET)
    top_rows = _rows(c)
    c.send("down")
    c.settle(QUIET)
    # None: one item, or the highlight never moved: the row drawn in reverse video is the item.
    style = _highlight_style(top_rows, _rows(c)) or _highlight_style(_rows(c), top_rows)
    c.send("home")
    c.settle(QUIET)
    first = _highlighted(c, style)
    shown = [t for _, t, s in first_rows if s == style] if style else []
    highlighted = (_title(shown[0])[0],) if shown else ((_title(first)[0],) if first else ())
    return style, highlighted


class Walker:
    """The VM a walk runs in (snapshots on), and how to get back to where the walk stands after booting an item:
    loadvm, or, when the item ended QEMU (reboot.c32, a poweroff), a fresh VM led to the same item by its keys."""

    def __init__(self, image: Path, medium: str) -> None:
        self.image, self.medium = image, medium
        self.style: Style | None = None
        self.restarts = 0
        self.c = self._start()

    def _start(self) -> Console:
        c = Console(self.image, self.medium, snapshots=True)
        try:
            _first_screen(c)
        except BaseException:
            c.close()
            raise
        return c

    def back(self, tag: str, keys: Keys, styles: Sequence[Style | None] = ()) -> None:
        """To the state saved under `tag` (the item `keys` highlighted; `styles`: the highlight of each level's menu,
        when not the first screen's)."""
        if not self.c.ended and self.c.child.isalive():
            try:
                self.c.restore(tag)
                return
            except (OSError, QemuError):
                pass
        self.c.close()
        self.c = self._start()
        self.restarts += 1
        c = self.c
        for level, k in enumerate(keys):  # Home, Down x k per level, Enter into each submenu on the way
            style = styles[level] if level < len(styles) else self.style
            c.send("home")
            current = _await_change(c, style, None)
            for _ in range(k):
                c.send("down")
                current = _await_change(c, style, current)
            if level < len(keys) - 1:
                c.send("enter")
                c.settle(QUIET)

    def close(self) -> None:
        self.c.close()


def _walk_menu(
    w: Walker,
    keys: Keys,
    titles: tuple[str, ...],
    styles: tuple[Style | None, ...],
    *,
    done: dict[Keys, Item],
    record: Record,
) -> list[Item]:
    """Every item of the menu level on the screen (its first item highlighted), in order, each booted from where the
    walk stands: the VM's state is saved (savevm) with the item highlighted, Enter pressed, what started read, and
    the walk goes back to the saved state (Walker.back) to walk on. Submenus are entered and walked; so is the menu a
    module opens (`KERNEL vesamenu.c32` + `APPEND other.cfg`: the item's outcome is `menu`), its items listed after
    that item under its title. An item of `done` (a resumed recording) is not booted again. `styles`: the highlight
    of each level's menu, this one's last."""
    items: list[Item] = []
    previous: str | None = None
    depth = len(keys)
    style = styles[-1]
    for k in range(MAX_ITEMS):
        if k:
            w.c.send("down")
        text = _await_change(w.c, style, previous)
        if text is None or text == previous:
            break
        previous = text
        title, submenu = _title(text)
        here, path = (*keys, k), (*titles, title)
        if submenu:
            if depth < MAX_DEPTH:
                w.c.send("enter")
                w.c.settle(QUIET)
                w.c.send("home")
                w.c.settle(QUIET)
                items += _walk_menu(w, here, path, (*styles, style), done=done, record=record)
                w.c.send("esc")
                w.c.settle(QUIET)
            continue
        item = done.get(here)
        opened: list[Item] = []
        if item is None or item.path != path:
            tag = f"walk{depth}"
            w.c.save(tag)
            shown = {t for _, t, _ in _rows(w.c)}
            w.c.send("enter")
            item = _outcome(w.c, path, style)
            # A menu of its own: not an exit (`<`: MENU EXIT, back to the parent) and not this menu drawn again (what
            # failed to boot returns to it).
            opens = not text.endswith("<") and {t for _, t, _ in _rows(w.c)} != shown
            if item.outcome == "menu" and opens and depth < MAX_DEPTH and not w.c.ended:
                opened_style, _ = _menu_style(w.c)
                opened = _walk_menu(w, here, path, (*styles, opened_style), done=done, record=record)
            w.back(tag, here, styles)
            record(here, item)
        elif item.outcome == "menu":  # resumed: what its menu's walk recorded
            opened = [v for key, v in sorted(done.items()) if len(key) > len(here) and key[: len(here)] == here]
        items += [item, *opened]
    return items


def _walk(w: Walker, staged: Path, done: dict[Keys, Item], record: Record) -> tuple[str, list[Item], tuple[str, ...]]:
    """The UI kind, every item booted, and the item highlighted on the first screen, from the walker's first screen
    (a menu walked and each item booted from a saved state: see _walk_menu; each label typed at a `boot:` prompt
    from the state saved at the prompt)."""
    c = w.c
    if _screen_text(c).rstrip().endswith("boot:") or b"boot: " in c.raw[-200:]:
        items = []
        for n, name in enumerate(_labels(staged)):
            item = done.get((n,))
            if item is None or item.path != (name,):
                if "prompt" in w.c.saved:
                    w.back("prompt", ())
                if "prompt" not in w.c.saved:  # the first label, or a fresh VM: at the prompt now
                    w.c.save("prompt")
                for ch in name:
                    w.c.send(ch)
                w.c.settle(QUIET)
                w.c.send("enter")
                item = _outcome(w.c, (name,), None)
                record((n,), item)
            items.append(item)
        return "prompt", items, ()
    w.style, highlighted = _menu_style(c)
    items = _walk_menu(w, (), (), (w.style,), done=done, record=record)
    if not items:
        # Neither a menu nor a prompt came up (PROMPT 0 without a UI boots the default at once): only the default
        # can be seen.
        return "direct", [], ()
    return "menu", items, highlighted


def answer_config(
    tree: Path, config: str, fstype: str, device: str, scratch: Path, *, progress: Path | None = None, uuid: str = ""
) -> Answer:
    """syslinux's answer for `config` of `tree` (a filesystem tree as the fixtures hold it). With `progress`, each
    item's result is kept there as it comes, and a recording cut short resumes with the items it has not booted."""
    if not available():
        raise SyslinuxUnavailable("syslinux, the kernel or QEMU are missing: run `make conformance`")
    medium = medium_of(config, fstype)
    staged = stage(tree, config, scratch)
    image = scratch / f"boot.{medium}"
    if medium == "iso":
        make_iso(staged, config, image)
    else:
        make_fat(staged, config, image, uuid)
    started = time.monotonic()
    with console(image, medium) as c:  # the default: nothing pressed
        c.wait_for(b"LINUX 6.", FIRST_SCREEN_TIMEOUT)
        default = _autoboot(c)
    done = load_progress(progress)
    booted = 0

    def record(keys: Keys, item: Item) -> None:
        nonlocal booted
        booted += 1
        done[keys] = item
        if progress is not None:
            save_progress(progress, done)

    walker = Walker(image, medium)
    dmi = walker.c.dmi_table()
    try:
        ui, items, highlighted = _walk(walker, staged, done, record)
    finally:
        walker.close()
    per_boot = (time.monotonic() - started) / (booted + 1)
    return Answer(
        config=config,
        device=device,
        medium=medium,
        ui=ui,
        items=tuple(items),
        default=default,
        highlighted=highlighted,
        seconds_per_boot=round(per_boot, 1),
        dmi=dmi.hex(),
    )


PROGRESS = CACHE / "syslinux-progress"  # items of recordings under way, by answer key (not part of the repository)


def progress_file(key: str) -> Path:
    return PROGRESS / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")


def load_progress(path: Path | None) -> dict[Keys, Item]:
    """Items a recording cut short had booted, by key path (see answer_config)."""
    if path is None or not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {tuple(int(k) for k in key.split("/") if k): Answer.item_from_json(v) for key, v in data.items()}


def save_progress(path: Path, done: dict[Keys, Item]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"/".join(map(str, k)): asdict(v) for k, v in done.items()}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _autoboot(c: Console) -> Item:
    """The default run: wait for the countdown (a busy console) to boot something; when the console goes quiet with
    nothing booting (no timeout), Enter boots what the first screen offers."""
    start = len(c.raw)
    deadline = time.monotonic() + AUTOBOOT_TIMEOUT
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        got = c.read(PROBE_INTERVAL)
        now = time.monotonic()
        if got:
            quiet_since = now
        new = bytes(c.raw[start:])
        if CMDLINE_MARK.encode() in new:
            return _outcome_from(c, start)
        params = c.started_kernel()
        if params is not None:
            item = _probed(c, ("<timeout>",), start, params)
            return item if item is not None else _outcome_from(c, start)
        if not got and now - quiet_since >= AUTOBOOT_QUIET:
            c.send("enter")
            return _outcome(c, ("<enter>",), None)
    return Item(path=("<timeout>",), outcome="silent")


def _outcome_from(c: Console, start: int) -> Item:
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        new = bytes(c.raw[start:])
        if re.search(re.escape(INITRDS_END.encode()) + rb" length=\d+[\r\n]", new):
            cmdline = _framed(new, CMDLINE_MARK, CMDLINE_END)
            initrds = _framed(new, INITRDS_MARK, INITRDS_END) or ""
            return Item(path=("<timeout>",), outcome="linux", cmdline=cmdline, initrds=tuple(initrds.split()))
        if c.ended:
            break
        c.read(1.0)
    return Item(path=("<timeout>",), outcome="silent")


def load_answers(path: Path) -> dict[str, list[Answer]]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {key: [Answer.from_json(a) for a in value] for key, value in data.items()}


def save_answers(path: Path, answers: dict[str, list[Answer]]) -> None:
    data = {key: [a.to_json() for a in value] for key, value in sorted(answers.items())}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="bootmenu-syslinux-")
