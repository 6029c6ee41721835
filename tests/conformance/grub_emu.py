"""Real GRUB 2.06 (Debian's grub-emu) as the oracle for bootmenu's GRUB interpreter.

How it is driven: each filesystem of a fixture becomes a disk image (mkfs.ext4/mkfs.vfat, GPT) listed in a
device.map, so GRUB sees it as `(hdN,gpt1)` and `search --fs-uuid/--label/--file` work. grub-emu's 2.06 build has no
`linux`/`initrd` commands, so a wrapper config defines shell functions of those names that print every argument,
sets `$root`/`$prefix` to the config's filesystem, `source`s the real config and sets `default` and `timeout=0`, so
GRUB itself boots the item: its "Booting `T'" lines give the menu path, the functions what the item passes. One
grub-emu process per item (about 0.1 s each): with `timeout=0` and no `default` override it boots the config's own
default; with `default=N` (or `N>M` inside a submenu) item N. GRUB falls back to item 0 when N is past the end, which
ends the enumeration of a level.

Safety: grub-emu runs only as nobody (65534) with every capability dropped and no new privileges (setpriv), never
with `--kexec`, never as root; `check_unprivileged` proves the drop took effect before the first run. Its `reboot`
and `halt` then only end the process. Nothing it does reaches this machine's boot.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pexpect

from discovery.grub.loader import find_configs
from discovery.scan import filesystem_for
from initramfs import disks
from tests.conformance.digest import files_digest

REPO = Path(__file__).resolve().parents[2]
EMU_CACHE = REPO / ".cache" / "grub-emu"
EMU_BINARY = EMU_CACHE / "root" / "usr" / "bin" / "grub-emu"
NOBODY = 65534
DROP = [
    "setpriv",
    f"--reuid={NOBODY}",
    f"--regid={NOBODY}",
    "--clear-groups",
    "--inh-caps=-all",
    "--bounding-set=-all",
    "--no-new-privs",
]
# Bumped when the wrapper or the parsing changes, so cached answers are recomputed.
HARNESS_VERSION = "5"
PER_RUN_TIMEOUT = 20.0
QUIET = 3.0  # seconds of silence before any "Booting" line: GRUB waits for input (`read`)
MAX_KEYS = 16  # keys sent per run: a bound whatever a config does
PRESS_KEY = b"Press any key to continue"
# What ends a run: every entry failed (notify_execution_failure), a menu waits for a user (menu_text.c), the
# command line, the process ended; or GRUB waits for a key (answered, and the run goes on).
ENDINGS = [
    b"Failed to boot both default and fallback entries",
    PRESS_KEY,
    b"keys to select which",
    b"grub> ",
    pexpect.EOF,
]
MENU = ENDINGS[2]
# Menu keys (normal/menu.c run_menu): Ctrl-A first entry, Ctrl-N next, Enter boots. Control keys, never a hotkey.
FIRST, NEXT, ENTER = b"\x01", b"\x0e", b"\r"
CALL = re.compile(r"BM-(\w+) root=\[(.*)\]$")
# menu_text.c print_entry: an entry is drawn at its place, `*` before the highlighted one's title; the screen is
# cleared (vt100 `clear`) when the chosen entry runs.
HIGHLIGHTED = re.compile(rb"\x1b\[\d+;\d+H\*([^\x1b]*)")
DRAWN = re.compile(rb"\x1b\[(\d+);(\d+)H[* ]([^\x1b]*)")
CLEAR = b"\x1b[H\x1b[J"
BOOTING = re.compile(r"Booting `(.*)'$")
FALLING_BACK = "Falling back to `"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
GOTO = re.compile(r"\x1b\[\d+;\d+H")  # a cursor move starts a new line of text (menu redraws share lines)
MAX_ITEMS = 64  # per menu level: a bound on the enumeration whatever a config does

WRAPPER = """\
function bm_args {{
    for a in "$@"; do echo "BM-ARG [$a]"; done
}}
function linux {{ echo "BM-LINUX root=[$root]"; bm_args "$@"; echo "BM-END"; }}
function linuxefi {{ echo "BM-LINUX root=[$root]"; bm_args "$@"; echo "BM-END"; }}
function linux16 {{ echo "BM-LINUX root=[$root]"; bm_args "$@"; echo "BM-END"; }}
function initrd16 {{ echo "BM-INITRD root=[$root]"; bm_args "$@"; echo "BM-END"; }}
function initrd {{ echo "BM-INITRD root=[$root]"; bm_args "$@"; echo "BM-END"; }}
function initrdefi {{ echo "BM-INITRD root=[$root]"; bm_args "$@"; echo "BM-END"; }}
function devicetree {{ echo "BM-DTB root=[$root]"; bm_args "$@"; echo "BM-END"; }}
function chainloader {{ echo "BM-CHAIN root=[$root]"; bm_args "$@"; echo "BM-END"; }}
set grub_platform={platform}
set root={root}
set prefix={prefix}
source {config}
terminal_output console
{override}set timeout=0
unset fallback
set timeout_style=menu
"""


class EmuUnavailable(Exception):
    """grub-emu is not unpacked here (`make conformance` fetches it) or cannot run."""


@dataclass(frozen=True)
class Item:
    """What GRUB did when it booted one menu item: its path of titles and each loader call's device and args."""

    path: tuple[str, ...]
    linux: tuple[str, ...] | None = None
    linux_root: str = ""
    initrds: tuple[tuple[str, ...], ...] = ()
    devicetree: tuple[str, ...] | None = None
    chainloader: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Answer:
    """GRUB's menu for one config: every bootable item in menu order, and the path of the default."""

    config: str
    device: str
    items: tuple[Item, ...] = ()
    default: tuple[str, ...] = ()
    disks: dict[str, str] = field(default_factory=dict)  # GRUB device (hdN,gpt1) -> fixture filesystem name

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Answer:
        items = tuple(
            Item(
                path=tuple(i["path"]),
                linux=tuple(i["linux"]) if i["linux"] is not None else None,
                linux_root=i["linux_root"],
                initrds=tuple(tuple(x) for x in i["initrds"]),
                devicetree=tuple(i["devicetree"]) if i["devicetree"] is not None else None,
                chainloader=tuple(i["chainloader"]) if i["chainloader"] is not None else None,
            )
            for i in data["items"]
        )
        return cls(
            config=str(data["config"]),
            device=str(data["device"]),
            items=items,
            default=tuple(data["default"]),
            disks=dict(data["disks"]),
        )


def available() -> bool:
    return EMU_BINARY.is_file() and shutil.which("setpriv") is not None


def check_unprivileged() -> None:
    """Proves the privilege drop works before GRUB ever runs: uid/gid nobody, no capabilities, no_new_privs."""
    status = subprocess.run([*DROP, "cat", "/proc/self/status"], capture_output=True, text=True, check=True).stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    uids = fields["Uid"].split()
    caps = {k: int(fields[k].strip(), 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
    if set(uids) != {str(NOBODY)} or any(caps.values()) or fields["NoNewPrivs"].strip() != "1":
        raise EmuUnavailable(f"privilege drop did not take effect: Uid {uids}, caps {caps}")


def tree_digest(fixture: Path, platform: str) -> str:
    """A hash of every file of the fixture (names, modes, contents) and the harness, for caching answers."""
    return files_digest(fixture, f"{HARNESS_VERSION}\0{platform}\0")


def filesystems_of(fixture: Path) -> list[Path]:
    return sorted(p for p in fixture.iterdir() if p.is_dir())


def _run_emu(
    prefix: Path, device_map: Path, choices: Sequence[int | None] = ()
) -> tuple[str, bool, list[str], list[tuple[bytes, ...]]]:
    """One grub-emu run in a pty (its console needs a terminal) until GRUB has given up booting the item.

    The run ends when GRUB reports that the item and its fallbacks did not boot (no kernel was loaded), when it shows
    an interactive menu or its command line, or when it exits (`reboot`, `halt`). On the way it is answered as a user
    at the console would answer it: a key for every "Press any key to continue" (GRUB waits 10 s and goes on without
    one: grub_wait_after_message, normal/menu.c), and Enter when it is silent before booting anything (a config's
    `read`, waiting for a line). A menu that waits for a user (a `configfile`'s, which the wrapper's `timeout=0` does
    not reach) is answered from `choices`, one per menu it shows: entry N (first, then N times next, Enter), or None
    for Enter on the highlighted (default) entry. Returns the text (a cursor move starts a new line), whether the
    run ended at a waiting menu, the title of each entry picked by keys (read off the screen: the one highlighted
    when GRUB cleared it to run it; GRUB prints no "Booting" line for a user's choice) and the entries of each menu
    picked from.
    """
    argv = [*DROP, str(EMU_BINARY), "-d", str(prefix), "-m", str(device_map)]
    child = pexpect.spawn(
        argv[0],
        argv[1:],
        dimensions=(50, 200),
        env={"TERM": "vt100", "PATH": "/usr/bin:/bin", "SDL_VIDEODRIVER": "dummy"},
        timeout=None,
    )
    out = b""
    pending = list(choices)
    waiting = False
    picks: list[int] = []  # where in the output each choice was sent
    menus: list[int] = []  # where in the output each menu was shown
    deadline = time.monotonic() + PER_RUN_TIMEOUT
    try:
        for _ in range(MAX_KEYS + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                index = child.expect(ENDINGS, timeout=min(QUIET, remaining))
            except pexpect.TIMEOUT:
                index = -1
            out += child.before if isinstance(child.before, bytes) else b""
            if index == -1:
                if b"Booting `" in out:
                    continue  # an item is running (a long `sleep`, a countdown): wait for it
                child.send(b"\r")  # silent before any boot: a `read` waits for a line
                continue
            out += child.after if isinstance(child.after, bytes) else b""
            if ENDINGS[index] is MENU:
                menus.append(len(out))
            if ENDINGS[index] is MENU and pending:
                choice = pending.pop(0)
                picks.append(len(out))
                child.send(ENTER if choice is None else FIRST + NEXT * choice + ENTER)
                continue
            if ENDINGS[index] is not PRESS_KEY:
                waiting = ENDINGS[index] is MENU
                break
            child.send(ENTER)
    except pexpect.EOF:
        out += child.before if isinstance(child.before, bytes) else b""
    finally:
        child.close(force=True)
    titles = []
    for start in picks:
        drawn = HIGHLIGHTED.findall(out, start, _cleared(out, start))
        titles.append(drawn[-1].decode("utf-8", "replace").rstrip() if drawn else "")
    # The entries of every menu a choice was made in (a menu's entries are drawn after the match it is found by).
    shown = [_entries(out, start) for start in menus[: len(picks)]]
    return ANSI.sub("", GOTO.sub("\n", out.decode("utf-8", "replace"))), waiting, titles, shown


def _cleared(out: bytes, start: int) -> int:
    end = out.find(CLEAR, start)
    return end if end >= 0 else len(out)


def _entries(out: bytes, start: int) -> tuple[bytes, ...]:
    """The entry titles of the menu drawn from `start` on: the rows drawn in the highlighted entry's column."""
    end = _cleared(out, start)
    draws = DRAWN.findall(out, start, end)
    column = next((col for _, col, title in draws if out.find(b"H*" + title, start, end) >= 0 and title), b"")
    rows: dict[bytes, bytes] = {}
    for row, col, title in draws:
        if col == column and title.strip():
            rows.setdefault(row, title.rstrip())
    return tuple(rows.values())


def parse_run(text: str, picked: Sequence[str] = ()) -> Item:
    """The menu path ("Booting `T'" lines, else the titles picked by keys: GRUB prints no such line for an entry a
    user chose) and the loader calls a run printed."""
    path: list[str] = []
    calls: list[tuple[str, str, tuple[str, ...]]] = []
    current: tuple[str, str, list[str]] | None = None
    for raw in text.replace("\r", "\n").split("\n"):
        line = raw.strip()
        if line.startswith(FALLING_BACK):
            break  # the item did not boot and GRUB went on to a `fallback` entry: not this item's calls
        booting = BOOTING.search(line)
        call = CALL.match(line)
        if booting:
            if calls:
                break  # the item failed to boot and GRUB went on to a `fallback` entry: not this item's calls
            # Progress lines ("[ grub.cfg 2.06KiB 100% ]") may share the line.
            path.append(booting.group(1))
        elif call and current is None:
            current = (call.group(1), call.group(2), [])
        elif line.startswith("BM-ARG [") and line.endswith("]") and current is not None:
            current[2].append(line[len("BM-ARG [") : -1])
        elif line == "BM-END" and current is not None:
            calls.append((current[0], current[1], tuple(current[2])))
            current = None
    linux = next(((root, args) for kind, root, args in calls if kind == "LINUX"), None)
    return Item(
        path=tuple(path) or tuple(picked),
        linux=linux[1] if linux else None,
        linux_root=linux[0] if linux else "",
        initrds=tuple(args for kind, _, args in calls if kind == "INITRD"),
        devicetree=next((args for kind, _, args in calls if kind == "DTB"), None),
        chainloader=next((args for kind, _, args in calls if kind == "CHAIN"), None),
    )


class Session:
    """One fixture's disk images and device.map, made world-readable for nobody, in a scratch directory."""

    def __init__(self, directories: Sequence[Path], scratch: Path) -> None:
        self.scratch = scratch
        self.names: dict[str, str] = {}
        lines = []
        for n, directory in enumerate(directories):
            image = disks.disk_from_directory(directory, scratch / f"disk{n}.img")
            image.chmod(0o644)
            lines.append(f"(hd{n}) {image}")
            self.names[f"hd{n},gpt1"] = filesystem_for(directory).name
        self.device_map = scratch / "device.map"
        self.device_map.write_text("\n".join(lines) + "\n")
        scratch.chmod(0o755)
        self.device_map.chmod(0o644)

    def device_of(self, name: str) -> str:
        return next(dev for dev, fs in self.names.items() if fs == name)

    def boot(
        self, platform: str, device: str, config: str, default: str | None, choices: Sequence[int | None] = ()
    ) -> tuple[Item, bool, list[tuple[bytes, ...]]]:
        """What booting one item did, whether GRUB ended waiting at a menu, and the menus picked from (`_run_emu`)."""
        prefix = Path(tempfile.mkdtemp(dir=self.scratch))
        prefix.chmod(0o755)
        override = f'set default="{default}"\n' if default is not None else ""
        wrapper = WRAPPER.format(
            platform=platform,
            root=f"({device})",
            prefix=f"({device}){Path(config).parent!s}",
            config=f"({device}){config}",
            override=override,
        )
        (prefix / "grub.cfg").write_text(wrapper)
        (prefix / "grub.cfg").chmod(0o644)
        text, waiting, titles, menus = _run_emu(prefix, self.device_map, choices)
        return parse_run(text, titles), waiting, menus


def answer_config(session: Session, platform: str, fs_name: str, config: str) -> Answer:
    device = session.device_of(fs_name)
    default_run, waiting, _ = session.boot(platform, device, config, None)
    items: list[Item] = []

    def level(prefix: Sequence[int]) -> None:
        first: Item | None = None
        for i in range(MAX_ITEMS):
            index = [*prefix, i]
            run, _, _ = session.boot(platform, device, config, ">".join(map(str, index)))
            if not run.path:
                return  # an empty menu: nothing boots
            if first is None:
                first = run
            elif run == first:
                return  # past the end: GRUB fell back to item 0 of this level
            if len(run.path) > len(index):
                # A submenu: GRUB entered it and booted its own default; enumerate it.
                level(index)
            else:
                items.append(run)

    def chosen_level(prefix: Sequence[int]) -> tuple[Item, list[Item]] | None:
        """A waiting menu enumerated by keys: its first item (what tells two menus apart) and its items in order;
        None when the menu is the one chosen from again (GRUB came back after an entry that loaded nothing)."""
        found: list[Item] = []
        head: Item | None = None
        previous: Item | None = None
        for i in range(MAX_ITEMS):
            index = [*prefix, i]
            run, waiting, menus = session.boot(platform, device, config, None, index)
            if len(menus) >= 2 and menus[-1] == menus[-2]:
                return None
            # An entry that loads nothing and leaves a menu waiting is a submenu: what it holds stands for it.
            loads = run.linux is not None or run.chainloader is not None or bool(run.initrds)
            sub = chosen_level(index) if waiting and not loads else None
            signature = sub[0] if sub else run
            if signature == previous:
                break  # past the end: `next` stays on the last entry
            found.extend(sub[1] if sub else [run])
            head = head or signature
            previous = signature
        return (head, found) if head is not None else None

    if waiting and not default_run.path:
        # The config ended in a menu GRUB shows and waits at (`configfile`): boot what a user would, by keys.
        default_run, _, _ = session.boot(platform, device, config, None, [None])
        items.extend((chosen_level([]) or (default_run, []))[1])
    else:
        level([])
    return Answer(config=config, device=fs_name, items=tuple(items), default=default_run.path, disks=session.names)


def answer_fixture(fixture: Path, platform: str) -> list[Answer]:
    """GRUB's answer for every GRUB config of the fixture (as bootmenu's loader finds them)."""
    return answer_trees(filesystems_of(fixture), platform)


def answer_trees(directories: Sequence[Path], platform: str) -> list[Answer]:
    """GRUB's answer for every GRUB config of these filesystem trees, each one disk (`.bootmenu-fs` for identity)."""
    if not available():
        raise EmuUnavailable(f"grub-emu is not at {EMU_BINARY}: run `make conformance`")
    answers: list[Answer] = []
    with tempfile.TemporaryDirectory(prefix="bootmenu-grub-emu-") as tmp:
        session = Session(directories, Path(tmp))
        for directory in directories:
            fs = filesystem_for(directory)
            for config in find_configs(fs):
                answers.append(answer_config(session, platform, fs.name, config))
    return answers


def load_answers(path: Path) -> dict[str, list[Answer]]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {key: [Answer.from_json(a) for a in value] for key, value in data.items()}


def save_answers(path: Path, answers: dict[str, list[Answer]]) -> None:
    data = {key: [a.to_json() for a in value] for key, value in sorted(answers.items())}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
