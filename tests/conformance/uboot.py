"""Real U-Boot (Debian's u-boot-qemu, its qemu-x86 build) as the oracle for bootmenu's reading of extlinux.conf.

How it is driven: a fixture's filesystem becomes a one-partition GPT disk image (virtio-blk) in which every file
that is not a config or a device tree is a copy of the test kernel (a Debian bzImage), so whatever path U-Boot
resolves, it loads a real kernel. QEMU (TCG) runs u-boot.rom as its BIOS; the harness stops autoboot on the serial
console, clears `bootargs` (what a label without APPEND passes on), sets `fdt_addr_r` (and `fdtfile` when the case
names one; ARM boards set both, qemu-x86 neither, and without `fdt_addr_r` pxe_utils ignores FDT/FDTDIR) and runs
the command distro boot runs for an extlinux.conf: `sysboot virtio 0:1 any ${scriptaddr} <config>`. What U-Boot
prints is the answer: its numbered menu (`N:<TAB>label`), each `label_boot` attempt (the label, `Retrieving file:`
lines, `Skipping ...`, `append: ...`) and zboot's `Kernel command line: "..."`, the bytes it writes into the
kernel's boot parameters; with console=ttyS0 the kernel's own `Command line:` line confirms them. The run stops
there (before Linux gets far).

Per config: one run without input (what boots by itself: the default after the menu's timeout, or at once when there
is no menu) and one run per menu item, `sysboot -p` (the prompt forced on) then the item's number typed at
`Enter choice:`, which is choosing it in U-Boot's own menu. A chosen label that fails makes U-Boot try every label
not tried yet (boot_unattempted_labels), so an item's run records every attempt.

Known limit of this U-Boot (2023.01, pxe_utils.c label_boot): the initrd size zboot gets (`initrd_filesize`) is
never filled in, so Linux sees a few bytes of initrd and cannot unpack it; which initrd U-Boot chose is read from its
`Retrieving file:` lines instead of from a booted initrd.
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pexpect

from initramfs import disks
from initramfs.qemu import kernel_in
from tests.conformance.digest import files_digest

REPO = Path(__file__).resolve().parents[2]
UBOOT_ROOT = REPO / ".cache" / "u-boot-qemu" / "root"
UBOOT_ROM = UBOOT_ROOT / "usr" / "lib" / "u-boot" / "qemu-x86" / "u-boot.rom"
KERNEL_ROOT = REPO / ".cache" / "kernel" / "root"
QEMU = "qemu-system-x86_64"
# Bumped when the driving or the parsing changes, so recorded answers are recomputed.
HARNESS_VERSION = "3"
# Where distro boot looks (boot_prefixes "/ /boot/" x boot_syslinux_conf "extlinux/extlinux.conf").
CONFIG_PATHS = ("/extlinux/extlinux.conf", "/boot/extlinux/extlinux.conf")
FDT_ADDR = "0x3000000"  # below ramdisk_addr_r (0x4000000), above the kernel at kernel_addr_r (0x1000000)
MAX_ITEMS = 64  # menu items tried per config, whatever a config holds
PROMPT = b"=> "
BOOT_WAIT = 60.0  # U-Boot start, a menu timeout (TIMEOUT tenths rounded up to seconds) and loading 8 MB under TCG
DEFAULT_WAIT = 45.0  # the run without input: nothing booted by then means the menu waits for the user (TIMEOUT 0)
ITEM = re.compile(r"^(\d+):\t(.*)$")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
FDT_PLACEHOLDER = bytes.fromhex("d00dfeed") + bytes(60)  # the FDT magic; never parsed on x86
STARTS = 3  # QEMU runs per U-Boot run when it ends before autoboot (seen once under load: TCG reset at start)
KEEP = (".conf", ".cfg", ".dtb", ".dtbo", ".bootmenu-fs")


class _NoStart(Exception):
    """QEMU ended before U-Boot offered to stop autoboot."""


class UBootUnavailable(Exception):
    """u-boot-qemu or the test kernel is not unpacked here (`make conformance` fetches them), or QEMU is missing."""


@dataclass(frozen=True)
class Attempt:
    """One label_boot(): the label as printed, the files retrieved (path, loaded), why it was skipped, the
    `append:` line, zboot's kernel command line, and whether the kernel was started."""

    number: str
    title: str
    files: tuple[tuple[str, bool], ...] = ()
    skipped: str = ""
    append: str | None = None
    cmdline: str | None = None
    kernel_cmdline: str | None = None
    started: bool = False

    def loaded(self, kind: str) -> tuple[str, ...]:
        """Files of one kind as U-Boot loaded them, normalised (`/extlinux/../Image` -> `/Image`)."""
        return tuple(posixpath.normpath(p) for p, ok in self.files if ok and _kind(p) == kind)


def _kind(path: str) -> str:
    name = path.lower()
    if name.endswith((".dtb", ".dtbo")):
        return "fdt"
    return "initrd" if ("initrd" in name or "initramfs" in name) else "kernel"


@dataclass(frozen=True)
class Run:
    """One U-Boot run: its menu (number, text), `Missing default:` if printed, whether it prompted, the attempts."""

    menu: tuple[tuple[str, str], ...] = ()
    missing_default: str = ""
    prompted: bool = False
    waited: bool = False  # the menu waited for input (no timeout): nothing booted by itself
    attempts: tuple[Attempt, ...] = ()
    log: tuple[str, ...] = ()

    @property
    def booted(self) -> Attempt | None:
        return next((a for a in self.attempts if a.started), None)


@dataclass(frozen=True)
class Answer:
    """U-Boot's answer for one config: the run without input and one run per menu item, in menu order."""

    config: str
    device: str
    env: dict[str, str] = field(default_factory=dict)
    default_run: Run = field(default_factory=Run)
    items: tuple[Run, ...] = ()

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Answer:
        return cls(
            config=str(data["config"]),
            device=str(data["device"]),
            env=dict(data["env"]),
            default_run=_run_from_json(data["default_run"]),
            items=tuple(_run_from_json(r) for r in data["items"]),
        )


def _run_from_json(data: dict[str, Any]) -> Run:
    attempts = tuple(
        Attempt(
            number=a["number"],
            title=a["title"],
            files=tuple((str(p), bool(ok)) for p, ok in a["files"]),
            skipped=a["skipped"],
            append=a["append"],
            cmdline=a["cmdline"],
            kernel_cmdline=a["kernel_cmdline"],
            started=a["started"],
        )
        for a in data["attempts"]
    )
    return Run(
        menu=tuple((str(n), str(t)) for n, t in data["menu"]),
        missing_default=data["missing_default"],
        prompted=data["prompted"],
        waited=data["waited"],
        attempts=attempts,
        log=tuple(data["log"]),
    )


def available() -> bool:
    return UBOOT_ROM.is_file() and shutil.which(QEMU) is not None and (KERNEL_ROOT / "boot").is_dir()


def version() -> str:
    """The U-Boot version, from the unpacked package's changelog (part of the answers' key)."""
    changelog = UBOOT_ROOT / "usr" / "share" / "doc" / "u-boot-qemu" / "changelog.Debian.gz"
    if not changelog.is_file():
        return "unknown"
    import gzip

    first = gzip.decompress(changelog.read_bytes()).split(b"\n", 1)[0].decode()
    match = re.search(r"\(([^)]+)\)", first)
    return match.group(1) if match else first


def tree_digest(tree: Path, env: Mapping[str, str]) -> str:
    """A hash of every file of the tree (names, modes as git records them, contents), the env and the harness."""
    return files_digest(tree, f"{HARNESS_VERSION}\0{sorted(env.items())}\0", skip=())


def configs_in(tree: Path) -> list[str]:
    return [p for p in CONFIG_PATHS if (tree / p.lstrip("/")).is_file()]


def _replacements(tree: Path, kernel: Path, placeholder: Path) -> dict[str, Path]:
    """Every file U-Boot could load as a kernel or initrd becomes the real kernel; configs stay, and so do device
    trees, but an empty one becomes a few bytes (U-Boot fails to retrieve an empty file; x86 zboot ignores the FDT)."""
    out: dict[str, Path] = {}
    for path in sorted(tree.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        if not path.name.lower().endswith(KEEP):
            out[str(path.relative_to(tree))] = kernel
        elif path.name.lower().endswith((".dtb", ".dtbo")) and path.stat().st_size == 0:
            out[str(path.relative_to(tree))] = placeholder
    return out


def parse(text: str) -> Run:
    """The menu, the attempts and the kernel command lines in one run's console text.

    With a prompt, the items printed before the first `Enter choice:` are the menu and label_boot's lines after the
    last one are the attempts (an unknown number makes U-Boot show the menu again); without, every item line is an
    attempt."""
    lines = [ANSI.sub("", line).rstrip("\r") for line in text.replace("\r\n", "\n").split("\n")]
    choices = [n for n, line in enumerate(lines) if "Enter choice: " in line]
    menu: list[tuple[str, str]] = []
    if choices:
        for line in lines[: choices[0]]:
            if item := ITEM.match(line):
                menu.append((item.group(1), item.group(2)))
        tail = lines[choices[-1] :]
        tail[0] = tail[0].split("Enter choice: ", 1)[1]
        if ITEM.match(tail[0]) is None:
            tail = tail[1:]  # the typed number's echo; the label follows on its own line
    else:
        tail = lines
    missing = next((line[len("Missing default: ") :] for line in lines if line.startswith("Missing default: ")), "")
    attempts: list[Attempt] = []
    current: dict[str, Any] | None = None
    log: list[str] = []

    def close() -> None:
        if current is not None:
            attempts.append(Attempt(**{**current, "files": tuple((p, ok) for p, ok in current["files"])}))

    for line in tail:
        item = ITEM.match(line)
        if item:
            close()
            current = {"number": item.group(1), "title": item.group(2), "files": []}
            log.append(line)
            continue
        if current is None:
            continue
        if line.strip():
            log.append(line)
        if line.startswith("Retrieving file: "):
            current["files"].append([line[len("Retrieving file: ") :], True])
        elif current["files"] and line.startswith(("** ", "Failed to load")):
            current["files"][-1][1] = False
        elif line.startswith(("Skipping ", "No kernel given")):
            current["skipped"] = line
        elif line.startswith("append: "):
            current["append"] = line[len("append: ") :]
        elif line.startswith('Kernel command line: "') and line.endswith('"'):
            current["cmdline"] = line[len('Kernel command line: "') : -1]
        elif line.startswith("Starting kernel"):
            current["started"] = True
        elif "] Command line: " in line and current.get("started"):
            current["kernel_cmdline"] = line.split("] Command line: ", 1)[1]
            break
    close()
    return Run(
        menu=tuple(menu), missing_default=missing, prompted=bool(choices), attempts=tuple(attempts), log=tuple(log)
    )


class Machine:
    """One disk image made from a tree, booted in U-Boot once per run (each boot ends U-Boot)."""

    def __init__(self, tree: Path, scratch: Path, env: Mapping[str, str]) -> None:
        if not available():
            raise UBootUnavailable(f"u-boot-qemu ({UBOOT_ROM}) or the test kernel is missing: run `make conformance`")
        kernel = kernel_in(KERNEL_ROOT)
        placeholder = scratch / "placeholder.dtb"
        placeholder.write_bytes(FDT_PLACEHOLDER)
        self.image = disks.disk_from_directory(tree, scratch / "disk.img", _replacements(tree, kernel, placeholder))
        self.env = dict(env)

    def run(self, config: str, choice: str | None) -> Run:
        """Boots U-Boot, stops autoboot, runs sysboot on `config`; with `choice`, `-p` and that number typed."""
        for start in range(STARTS):
            try:
                return self._run(config, choice)
            except _NoStart:
                if start == STARTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _run(self, config: str, choice: str | None) -> Run:
        argv = [
            "-accel", "tcg", "-m", "512", "-no-reboot", "-display", "none", "-monitor", "none",
            "-serial", "stdio", "-nic", "none", "-bios", str(UBOOT_ROM),
            "-drive", f"file={self.image},format=raw,if=virtio,readonly=on",
        ]  # fmt: skip
        child = pexpect.spawn(QEMU, argv, timeout=BOOT_WAIT, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        transcript = bytearray()

        class _Log:
            def write(self, data: bytes) -> None:
                transcript.extend(data)

            def flush(self) -> None:
                pass

        child.logfile_read = _Log()
        waited = False
        try:
            if child.expect([b"Hit any key to stop autoboot", pexpect.EOF]) == 1:
                raise _NoStart(_tail(transcript))
            child.send(b" ")
            child.expect(PROMPT)
            # bootargs cleared: a label without APPEND leaves $bootargs as the board set it (qemu-x86's default is
            # "root=/dev/sdb3 ..."), which no config says; with none, the kernel gets what the config gives it.
            setenv = [
                "virtio scan",
                "setenv bootargs",
                f"setenv fdt_addr_r {FDT_ADDR}",
                *(f"setenv {k} {v}" for k, v in sorted(self.env.items())),
            ]
            child.sendline("; ".join(setenv).encode())
            child.expect(PROMPT)
            flag = "-p " if choice is not None else ""
            child.sendline(f"sysboot {flag}virtio 0:1 any ${{scriptaddr}} {config}".encode())
            if child.expect([b"Retrieving file: " + config.encode(), PROMPT]) == 1:
                raise UBootUnavailable(f"U-Boot could not read {config}: {_tail(transcript)}")
            if choice is not None:
                if child.expect([b"Enter choice: ", PROMPT]) == 1:
                    raise UBootUnavailable(f"U-Boot showed no menu for {config}: {_tail(transcript)}")
                child.send(choice.encode() + b"\r")
            # A number that is no item makes U-Boot ask again (`Enter choice:`): the listing run stops there.
            stops = [b"Starting kernel", PROMPT, pexpect.TIMEOUT, pexpect.EOF]
            if choice is not None:
                stops.insert(2, b"Enter choice: ")
                found = child.expect(stops, timeout=BOOT_WAIT)
            else:
                found = child.expect(stops, timeout=DEFAULT_WAIT)
                waited = found == 2
            if found == 0:
                # Linux's early "Command line:" (only on ttyS0 when the command line says console=ttyS0).
                after = bytes(transcript[transcript.rfind(b"Kernel command line: ") :])
                if b"console=ttyS0" in after.split(b"\n", 1)[0]:
                    child.expect([rb"\] Command line: [^\r\n]*[\r\n]", pexpect.TIMEOUT, pexpect.EOF], timeout=60)
        finally:
            child.close(force=True)
        run = parse(transcript.decode("utf-8", "replace"))
        if waited and run.booted is None and not run.attempts:
            run = dataclasses.replace(run, waited=True)
        return run


def _tail(transcript: bytearray) -> str:
    return ANSI.sub("", bytes(transcript[-400:]).decode("utf-8", "replace")).replace("\r", "")


def answer_tree(tree: Path, device: str, env: Mapping[str, str]) -> list[Answer]:
    """U-Boot's answer for every extlinux.conf of the tree that distro boot would find."""
    answers = []
    with tempfile.TemporaryDirectory(prefix="bootmenu-uboot-") as tmp:
        machine = Machine(tree, Path(tmp), env)
        for config in configs_in(tree):
            listing = machine.run(config, "0")  # 0 is no item: the menu is shown, then U-Boot asks again
            items = []
            for number, _ in listing.menu[:MAX_ITEMS]:
                items.append(machine.run(config, number))
            default = machine.run(config, None)
            answers.append(Answer(config=config, device=device, env=dict(env), default_run=default, items=tuple(items)))
    return answers


def load_answers(path: Path) -> dict[str, list[Answer]]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {key: [Answer.from_json(a) for a in value] for key, value in data.items()}


def save_answers(path: Path, answers: dict[str, list[Answer]]) -> None:
    data = {key: [a.to_json() for a in value] for key, value in sorted(answers.items())}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
