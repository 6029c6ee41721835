"""Real systemd-boot (Debian's systemd-boot-efi) on OVMF under QEMU TCG as the oracle for bootmenu's BLS loader.

How it is driven: a fixture's filesystem tree becomes an ESP (mkfs.vfat + mcopy, GPT type ESP) with
EFI/BOOT/BOOTX64.EFI = systemd-bootx64.efi. Every kernel file an entry names that exists in the tree is replaced by
the Debian test kernel, every initrd file by a small marker initrd (busybox /init, and `m/<path>`): systemd-boot
concatenates an entry's initrds, so the booted /init sees the markers of all of them. The /init prints, framed
(initramfs.guests.parse_framed), /proc/cmdline, the markers, and the EFI variables systemd-boot set
(LoaderEntrySelected: the id of the booted entry; LoaderEntries; LoaderEntryDefault; LoaderConfigTimeout), then
powers off. OVMF's console goes to the serial port, where systemd-boot draws its menu with escape sequences, read
with pyte: titles in order and the highlighted (reverse-video) default.

One QEMU per boot (about 20-30 s each under TCG): the first run keeps the fixture's loader.conf as it is (its timeout
decides whether a menu is shown, the countdown is read, and the default boots by itself); the others replace the
`timeout` line by `timeout menu-force` (the only change the harness makes besides `console-mode keep`) and pick
menu item N with the arrow keys. After each boot the ESP's loader/entries is listed with mtools (boot counting
renames the booted entry's file before the kernel starts). OVMF's VARS file is copied per run. Nothing touches this
machine's disks: the ESP is an image file in a scratch directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pexpect
import pyte

from initramfs import disks, guests, uki
from initramfs.cpio import Compression, CpioEntry, write_cpio
from tests.conformance.digest import files_digest
from tests.shared import file_lock

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"
SDBOOT_EFI = CACHE / "systemd-boot-efi" / "root" / "usr" / "lib" / "systemd" / "boot" / "efi" / "systemd-bootx64.efi"
OVMF_DIR = CACHE / "ovmf" / "root" / "usr" / "share" / "OVMF"
OVMF_CODE = OVMF_DIR / "OVMF_CODE_4M.fd"
OVMF_VARS = OVMF_DIR / "OVMF_VARS_4M.fd"
KERNEL_ROOT = CACHE / "kernel" / "root"
# Bumped when the staging, the guest or the parsing changes, so recorded answers are recomputed.
HARNESS_VERSION = "sdboot-1"
# A fixture's `EFI/Linux/NAME.efi.toml` (osrel, cmdline, initrd: whether it has one) stands for the unified kernel
# image NAME.efi, built from the test kernel when the tree is staged (build_ukis): kernels are not kept in the repo.
UKI_SPEC = ".efi.toml"
BOOT_TIMEOUT = 240.0  # one boot under TCG on a loaded 2-core machine: firmware, menu, kernel, /init
MAX_ITEMS = 32  # menu items booted per fixture: a bound whatever a tree holds
COLUMNS, ROWS = 200, 60
# systemd-boot's own menu items (not entries of the tree): bootmenu lists none of them.
AUTO_TITLES = ("Reboot Into Firmware Interface", "EFI Default Loader", "Windows Boot Manager", "EFI Shell")
LOADER_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
EFI_VARS = ("LoaderEntrySelected", "LoaderEntryDefault", "LoaderEntries", "LoaderConfigTimeout")
MARK = "BMSD"
QEMU_LOCK = Path("/tmp/qemu.lock")
COUNTDOWN = re.compile(r"Boot in (\d+) s")
KEYS = {"up": b"\x1b[A", "down": b"\x1b[B", "enter": b"\r"}


class SdbootUnavailable(Exception):
    """OVMF, systemd-boot or the test kernel is not unpacked here (`make kernel conformance` fetches them)."""


@dataclass(frozen=True)
class Boot:
    """What one boot showed and what the kernel received."""

    menu: tuple[str, ...]  # every menu title, in order (systemd-boot's own items included)
    highlighted: int  # index in `menu` highlighted when the menu appeared (the default); -1: no menu
    countdown: int | None  # the first "Boot in N s." seen; None: no countdown
    chosen: int  # the item picked with the keys; -1: none (the default booted by itself)
    cmdline: str | None  # /proc/cmdline of the booted kernel; None: no kernel came up
    initrds: tuple[str, ...]  # markers of the initrd files the kernel received (sorted)
    variables: dict[str, str]  # systemd-boot's EFI variables as the booted kernel read them
    entries_after: tuple[str, ...]  # the file names in loader/entries after the boot
    error: str = ""  # what the screen showed when no kernel came up


@dataclass(frozen=True)
class Answer:
    """systemd-boot's answer for one ESP: the first (unattended) boot and one boot per menu item."""

    device: str
    entries_before: tuple[str, ...]
    first: Boot
    items: tuple[Boot, ...]

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Answer:
        def boot(b: dict[str, Any]) -> Boot:
            return Boot(
                menu=tuple(b["menu"]),
                highlighted=int(b["highlighted"]),
                countdown=b["countdown"],
                chosen=int(b["chosen"]),
                cmdline=b["cmdline"],
                initrds=tuple(b["initrds"]),
                variables=dict(b["variables"]),
                entries_after=tuple(b["entries_after"]),
                error=str(b.get("error", "")),
            )

        return cls(
            device=str(data["device"]),
            entries_before=tuple(data["entries_before"]),
            first=boot(data["first"]),
            items=tuple(boot(b) for b in data["items"]),
        )


def kernel_image() -> Path:
    """The Debian test kernel (`make kernel`); its version is whatever was fetched."""
    found = sorted((KERNEL_ROOT / "boot").glob("vmlinuz-*"))
    if not found:
        raise SdbootUnavailable(f"no kernel under {KERNEL_ROOT}/boot: run `make kernel`")
    return found[-1]


def efivarfs_module() -> Path:
    found = sorted(KERNEL_ROOT.glob("lib/modules/*/kernel/fs/efivarfs/efivarfs.ko*"))
    if not found:
        raise SdbootUnavailable(f"no efivarfs module under {KERNEL_ROOT}: run `make kernel`")
    return found[-1]


def available() -> bool:
    ok = all(p.is_file() for p in (SDBOOT_EFI, OVMF_CODE, OVMF_VARS)) and shutil.which("qemu-system-x86_64")
    try:
        kernel_image()
        efivarfs_module()
    except SdbootUnavailable:
        return False
    return bool(ok) and shutil.which("mcopy") is not None


def digest(tree: Path) -> str:
    """A hash of the tree's files and the harness (recorded answers are keyed by it)."""
    return files_digest(tree, f"{HARNESS_VERSION}\0")


# ---------------------------------------------------------------------------------------------------------------------
# The guest


def marker_name(path: str) -> str:
    return path.strip("/").replace("/", "%") or "root"


INIT = f"""#!/bin/sh
# systemd-boot conformance guest: what the kernel received, framed, on the first serial port; then power off.
b=/bin/busybox
$b mount -t proc proc /proc
$b mount -t devtmpfs dev /dev
$b mount -t sysfs sys /sys
$b dmesg -n 1
$b insmod /lib/efivarfs.ko
$b mount -t efivarfs efivarfs /sys/firmware/efi/efivars
say() {{ printf '%s\\n%s length=%s\\n' "{MARK}-$1=$2" "{MARK}-$1-END" "${{#2}}" > /dev/ttyS0; }}
say CMDLINE "$($b cat /proc/cmdline)"
say INITRDS "$($b ls /m | $b tr '\\n' ' ')"
for v in {" ".join(EFI_VARS)}; do
    # 4 attribute bytes, then UTF-16LE text: sent as hex, decoded by the host.
    f=/sys/firmware/efi/efivars/$v-{LOADER_GUID}
    [ -e "$f" ] && say "VAR-$v" "$($b tail -c +5 "$f" | $b od -An -v -tx1 | $b tr -d ' \n')"
done
say DONE 1
$b poweroff -f
"""


def marker_initrd(output: Path, name: str) -> Path:
    entries = [
        CpioEntry.directory("dev"),
        CpioEntry.char_device("dev/console", 5, 1),
        CpioEntry.directory("proc"),
        CpioEntry.directory("sys"),
        CpioEntry.file("bin/busybox", source=guests.find_busybox(), perm=0o755),
        CpioEntry.symlink("bin/sh", "busybox"),
        CpioEntry.file("init", INIT.encode(), perm=0o755),
        CpioEntry.file("lib/efivarfs.ko", source=efivarfs_module()),
        CpioEntry.directory("m"),
        CpioEntry.file(f"m/{marker_name(name)}", name.encode()),
    ]
    raw = output.with_name(output.name + ".cpio")
    with raw.open("wb") as f:
        write_cpio(entries, f)
    output.write_bytes(Compression.GZIP.compress(raw.read_bytes()))
    raw.unlink()
    return output


# ---------------------------------------------------------------------------------------------------------------------
# The ESP


def _entry_files(tree: Path) -> list[Path]:
    directory = tree / "loader" / "entries"
    return sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []


def _keys(text: str, key: str) -> list[str]:
    out = []
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if len(words) == 2 and words[0] == key:
            out.append(words[1].strip())
    return out


def loader_conf(text: str, *, force_menu: bool) -> str:
    """The tree's loader.conf with `console-mode keep` (the serial terminal's mode) and, to read the menu without a
    countdown, `timeout menu-force`."""
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("console-mode")]
    if force_menu:
        lines = [ln for ln in lines if not ln.strip().startswith("timeout")] + ["timeout menu-force"]
    return "\n".join([*lines, "console-mode keep"]) + "\n"


def uki_initrd(name: str) -> str:
    """The marker path of the initrd inside the UKI `name` (the kernel sees it as one more initrd)."""
    return f"/EFI/Linux/{name}:.initrd"


def build_ukis(root: Path, kernel: Path, scratch: Path) -> list[str]:
    """Each UKI_SPEC file in `root`/EFI/Linux becomes its UKI, made the way ukify's objcopy recipe makes it
    (initramfs.uki, Debian's systemd EFI stub) with `kernel` and, if the spec says so, a marker initrd; the names."""
    directory = root / "EFI" / "Linux"
    built = []
    for spec in sorted(directory.glob(f"*{UKI_SPEC}")) if directory.is_dir() else []:
        data = tomllib.loads(spec.read_text())
        name = spec.name.removesuffix(".toml")
        initrd = marker_initrd(scratch / f"{name}.initrd", uki_initrd(name)) if data.get("initrd") else None
        stub = uki.stub(CACHE / "systemd-boot-efi")
        uki.build_uki(
            directory / name,
            linux=kernel,
            osrel=str(data["osrel"]),
            cmdline=str(data.get("cmdline", "")),
            initrd=initrd,
            stub_file=stub,
        )
        spec.unlink()
        built.append(name)
    return built


@contextmanager
def materialized(tree: Path) -> Iterator[Path]:
    """`tree` as the loaders see it: itself, or, when it has UKI specs, a copy with the UKIs built (same name)."""
    if not any(tree.glob(f"EFI/Linux/*{UKI_SPEC}")):
        yield tree
        return
    with tempfile.TemporaryDirectory(prefix="bootmenu-uki-") as tmp:
        root = Path(tmp) / tree.name
        shutil.copytree(tree, root, symlinks=True)
        build_ukis(root, kernel_image(), Path(tmp))
        yield root


def stage_esp(tree: Path, scratch: Path, *, force_menu: bool) -> Path:
    """A GPT disk image whose ESP holds the tree, systemd-boot, the real kernel and marker initrds."""
    root = scratch / "esp"
    if root.exists():
        shutil.rmtree(root)
    disks.stage(tree, root)
    kernel = kernel_image()
    build_ukis(root, kernel, scratch)
    for entry in _entry_files(root):
        text = entry.read_text(errors="replace")
        for path in _keys(text, "linux"):
            target = root / path.lstrip("/")
            if target.is_file():
                shutil.copyfile(kernel, target)
        for path in _keys(text, "initrd"):
            target = root / path.lstrip("/")
            if target.is_file():
                marker_initrd(target, path)
    boot = root / "EFI" / "BOOT"
    boot.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SDBOOT_EFI, boot / "BOOTX64.EFI")
    conf = root / "loader" / "loader.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(loader_conf(conf.read_text() if conf.is_file() else "", force_menu=force_menu))
    size = disks.tree_size(root) + (16 << 20)
    fs = disks.make_vfat(root, scratch / "esp.img", label="ESP", volume_id="5D0B-0001", size=size)
    image = disks.make_gpt(
        scratch / "disk.img",
        [disks.Partition(fs, type=disks.PartitionType.ESP, name="esp")],
        disk_uuid="5d0b0000-0000-4000-8000-000000000001",
    )
    fs.unlink()
    return image


def list_entries(image: Path) -> tuple[str, ...]:
    """The file names in the ESP's loader/entries and EFI/Linux (Type #1 and #2 entries: boot counting renames
    either), read with mtools at the partition's offset."""
    names: list[str] = []
    for directory in ("::/loader/entries", "::/EFI/Linux"):
        out = subprocess.run(
            ["mdir", "-b", "-i", f"{image}@@{disks.ALIGN}", directory],
            capture_output=True,
            text=True,
            env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
            check=False,
        ).stdout
        # `mdir -b` prints one `::/loader/entries/NAME` per line (nothing for a directory that is not there).
        names += [line.strip().rsplit("/", 1)[-1] for line in out.splitlines() if line.strip()]
    return tuple(sorted(names))


# ---------------------------------------------------------------------------------------------------------------------
# One boot


def _screen_menu(screen: pyte.Screen) -> tuple[list[str], int, int | None]:
    """(titles, highlighted index, countdown) of systemd-boot's menu as drawn on the screen."""
    titles: list[str] = []
    highlighted = -1
    countdown = None
    for y in range(screen.lines):
        row = screen.buffer[y]
        text = "".join(row[x].data for x in range(screen.columns)).strip()
        if not text or set(text) <= {"\ufffd", "\u2500", "-"}:
            continue
        found = COUNTDOWN.search(text)
        if found:
            countdown = int(found.group(1))
            continue
        lit = any(row[x].bg not in ("default", "black") for x in range(screen.columns) if row[x].data.strip())
        if lit:
            highlighted = len(titles)
        titles.append(text)
    return titles, highlighted, countdown


def _qemu_argv(image: Path, vars_file: Path) -> list[str]:
    return [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-machine",
        "q35",
        "-m",
        "512",
        "-nographic",
        "-no-reboot",
        "-nodefaults",
        "-vga",
        "none",
        "-serial",
        "stdio",
        "-net",
        "none",
        "-drive",
        f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
        "-drive",
        f"if=pflash,format=raw,file={vars_file}",
        "-drive",
        f"file={image},format=raw,if=virtio",
    ]


class _Feed:
    def __init__(self, stream: pyte.ByteStream, transcript: bytearray) -> None:
        self.stream = stream
        self.transcript = transcript

    def write(self, data: bytes) -> None:
        self.transcript.extend(data)
        self.stream.feed(data)

    def flush(self) -> None:
        pass


FRAMED = re.compile(rb"BMSD-([A-Za-z-]+)=")


# systemd-boot's log_error_status() lines ("Error preparing initrd: Not Found"); after one, systemd-boot exits to the
# firmware, which goes on to its next boot option: the boot of this item is over.
FAILED = re.compile(rb"((?:Error|Failed) [^\r\n\x1b]*: [^\r\n\x1b]*)\r")


class BootFailed(Exception):
    """systemd-boot reported an error instead of starting the kernel."""


def _read_values(child: pexpect.spawn, deadline: float) -> dict[str, str]:
    values: dict[str, str] = {}
    while "DONE" not in values:
        if child.expect([FRAMED, FAILED], timeout=max(1.0, deadline - time.monotonic())) == 1:
            raise BootFailed(child.match.group(1).decode("utf-8", "replace"))
        name = child.match.group(1).decode()
        end = re.escape(f"{MARK}-{name}-END".encode()) + rb" length=(\d+)[\r\n]"
        child.expect(end, timeout=30)
        values[name] = guests.parse_framed(child.before, int(child.match.group(1)))
    return values


def _utf16(hexdump: str) -> str:
    """An EFI variable's UTF-16LE text; the NULs between the strings of a list (LoaderEntries) become `|`."""
    text = bytes.fromhex(hexdump).decode("utf-16-le", "replace")
    return text.rstrip("\0").replace("\0", "|")


def boot_once(image: Path, scratch: Path, item: int | None) -> Boot:
    """One QEMU run: read the menu if one is shown; with `item`, go to it with the arrow keys and press Enter;
    then read what the kernel received and list loader/entries on the ESP afterwards."""
    vars_file = scratch / "vars.fd"
    shutil.copyfile(OVMF_VARS, vars_file)
    screen = pyte.Screen(COLUMNS, ROWS)
    transcript = bytearray()
    argv = _qemu_argv(image, vars_file)
    child = pexpect.spawn(argv[0], argv[1:], timeout=60, dimensions=(ROWS, COLUMNS), echo=False)
    child.logfile_read = _Feed(pyte.ByteStream(screen), transcript)
    deadline = time.monotonic() + BOOT_TIMEOUT
    menu: list[str] = []
    highlighted, countdown, chosen = -1, None, -1
    values: dict[str, str] = {}
    error = ""
    try:
        while time.monotonic() < deadline:
            patterns = [rb"Reboot Into Firmware", FRAMED, FAILED, pexpect.TIMEOUT]
            i = child.expect(patterns, timeout=deadline - time.monotonic())
            if i == 2:
                raise BootFailed(child.match.group(1).decode("utf-8", "replace"))
            if i == 0:
                # The menu: its countdown line comes after the items; without a countdown, wait until it is drawn.
                if child.expect([rb"Boot in \d+ s\.", pexpect.TIMEOUT], timeout=2.0) == 1:
                    try:
                        while True:
                            child.read_nonblocking(65536, timeout=1.0)
                    except pexpect.TIMEOUT:
                        pass
                titles, highlighted, countdown = _screen_menu(screen)
                menu = titles
                if item is not None:
                    steps = item - highlighted
                    for _ in range(abs(steps)):
                        child.send(KEYS["down" if steps > 0 else "up"])
                        time.sleep(0.3)
                    child.send(KEYS["enter"])
                    chosen = item
                values = _read_values(child, deadline)
                break
            if i == 1:
                # No menu: the default booted at once. The first value is already matched: read it again framed.
                name = child.match.group(1).decode()
                end = re.escape(f"{MARK}-{name}-END".encode()) + rb" length=(\d+)[\r\n]"
                child.expect(end, timeout=30)
                values[name] = guests.parse_framed(child.before, int(child.match.group(1)))
                values.update(_read_values(child, deadline))
                break
            break
        child.expect(pexpect.EOF, timeout=60)
    except BootFailed as exc:
        error = str(exc)
    except (pexpect.TIMEOUT, pexpect.EOF):
        error = "\n".join(line.rstrip() for line in screen.display if line.strip())[-2000:]
    finally:
        child.close(force=True)
        (scratch / "console.log").write_bytes(bytes(transcript))
    variables = {k[4:]: _utf16(v) for k, v in values.items() if k.startswith("VAR-")}
    return Boot(
        menu=tuple(menu),
        highlighted=highlighted,
        countdown=countdown,
        chosen=chosen,
        cmdline=values.get("CMDLINE"),
        initrds=tuple(sorted(values.get("INITRDS", "").split())),
        variables=variables,
        entries_after=list_entries(image),
        error=error,
    )


def _under_flock(lock: Path) -> bool:
    """Whether an ancestor of this process is `flock LOCK ...` (flock(1) holds the lock for its command): taking
    the lock again from here would wait for ever."""
    pid = os.getppid()
    for _ in range(64):  # a bound on the walk up the process tree
        if pid <= 1:
            return False
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        if argv and Path(argv[0].decode(errors="replace")).name == "flock" and str(lock).encode() in argv:
            return True
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


@contextmanager
def qemu_lock() -> Iterator[None]:
    """The machine-wide QEMU lock (/tmp/qemu.lock, flock(2) as flock(1) takes it): only one QEMU run at a time on a
    shared machine. Held already when the run was started under `flock /tmp/qemu.lock`."""
    if _under_flock(QEMU_LOCK):
        yield
        return
    with file_lock(QEMU_LOCK):
        yield


def answer_tree(tree: Path, device: str) -> Answer:
    """systemd-boot's answer for one tree: the unattended boot, then every menu item booted in turn, under the
    machine-wide QEMU lock."""
    if not available():
        raise SdbootUnavailable("OVMF, systemd-boot, the kernel or mtools missing: run `make kernel conformance`")
    with qemu_lock(), tempfile.TemporaryDirectory(prefix="bootmenu-sdboot-") as tmp:
        scratch = Path(tmp)
        image = stage_esp(tree, scratch, force_menu=False)
        before = list_entries(image)
        first = boot_once(image, scratch, None)
        items: list[Boot] = []
        for n in range(MAX_ITEMS):
            # A fresh ESP per boot: boot counting renamed a file on the last one.
            run = boot_once(stage_esp(tree, scratch, force_menu=True), scratch, n)
            items.append(run)
            if n + 1 >= len([t for t in run.menu if t not in AUTO_TITLES]):
                break
        return Answer(device=device, entries_before=before, first=first, items=tuple(items))


def load_answers(path: Path) -> dict[str, Answer]:
    if not path.is_file():
        return {}
    return {key: Answer.from_json(value) for key, value in json.loads(path.read_text()).items()}


def save_answers(path: Path, answers: dict[str, Answer]) -> None:
    data = {key: a.to_json() for key, a in sorted(answers.items())}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
