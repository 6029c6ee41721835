"""Boot Loader Specification Type 1 entries (UAPI.1) and the two ways boot loaders order them.

Follows the UAPI Group's Boot Loader Specification (Type #1 `.conf` entries, boot counting `NAME+LEFT[-DONE].conf`),
systemd-boot's `loader.conf` (`default` glob, `timeout`) and its entry ordering and title disambiguation, and the
ordering of Fedora's GRUB `blscfg` module (rpm version comparison, newest first).

Two users: the standalone loader `load()` (systemd-boot semantics) and GRUB's `blscfg` command, which calls
`read_entries()` and `blscfg_order()` and expands variables in the options itself.

Path resolution (documented choice): entry paths are absolute within the partition that holds `loader/entries`.
When the entries live under `/boot/loader/entries` of a filesystem, `/boot` may have been a separate partition when
they were written (`linux /vmlinuz-6.5`) or a plain directory (`linux /boot/vmlinuz-6.5`); both are tried, the path as
written first, and the first under which the kernel exists is used for the kernel, initrds and devicetree alike.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cmp_to_key
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from discovery.budget import Budget, BudgetExceeded
from discovery.entry import BootCount, BootEntry, Diagnostic, LoadResult, Severity, SourceFormat
from discovery.fs import Filesystem
from discovery.loaders import file_problem, missing, os_problem, read_config

if TYPE_CHECKING:
    from discovery.loaders import LoadContext

# Where the standalone loader looks, as (partition root, entries directory): the ESP/XBOOTLDR layout first.
ENTRY_ROOTS = ("/", "/boot")
ENTRIES_SUBDIR = "loader/entries"
LOADER_CONF = "loader/loader.conf"
# Type #2 entries (unified kernel images) of a partition; read by discovery/uki.py.
TYPE2_DIR = "/EFI/Linux"

# Keys the specification defines; others (Fedora's grub_users, grub_class, grub_arg) are kept in `lines` only.
KNOWN_KEYS = frozenset(
    {"title", "version", "machine-id", "sort-key", "linux", "initrd", "efi", "uki", "uki-url", "options",
     "devicetree", "devicetree-overlay", "architecture", "profile"}
)  # fmt: skip
REPEATABLE_KEYS = frozenset({"initrd", "options"})

# Steps (entry files plus lines) for one entries directory: far above any real one (a few files of ten lines).
ENTRIES_STEPS = 200_000

# systemd: `NAME+LEFT.conf` or `NAME+LEFT-DONE.conf`, decimal counters, taken from the last `+`.
_BOOT_COUNT = re.compile(r"^(?P<stem>.*)\+(?P<left>[0-9]+)(?:-(?P<done>[0-9]+))?$")

# BLS `architecture` values are EFI architecture names; map GRUB-style CPU names onto them.
_EFI_ARCH = {
    "x86_64": "x64",
    "amd64": "x64",
    "i386": "ia32",
    "i686": "ia32",
    "arm64": "aa64",
    "aarch64": "aa64",
    "arm": "arm",
    "armv7l": "arm",
    "riscv64": "riscv64",
    "riscv32": "riscv32",
    "loongarch64": "loongarch64",
    "loongarch32": "loongarch32",
}


def efi_architecture(cpu: str) -> str | None:
    """The BLS/EFI architecture name for a CPU name (`x86_64` -> `x64`); None when the spec has no name for it."""
    return _EFI_ARCH.get(cpu.lower())


# ---------------------------------------------------------------------------------------------------------------------
# Version comparisons


def _cmp(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def _isdigit(c: str) -> bool:
    return "0" <= c <= "9"


def _isalpha(c: str) -> bool:
    return "a" <= c <= "z" or "A" <= c <= "Z"


def _isalnum(c: str) -> bool:
    return _isdigit(c) or _isalpha(c)


def rpmvercmp(a: str, b: str) -> int:
    """rpm's version comparison (-1, 0, 1): alphanumeric segments, numbers beat letters, `~` sorts before everything
    (even the end of the string), `^` sorts after the end but before any other segment."""
    if a == b:
        return 0
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        while i < la and not _isalnum(a[i]) and a[i] not in "~^":
            i += 1
        while j < lb and not _isalnum(b[j]) and b[j] not in "~^":
            j += 1
        ca = a[i] if i < la else ""
        cb = b[j] if j < lb else ""
        if ca == "~" or cb == "~":
            if ca != "~":
                return 1
            if cb != "~":
                return -1
            i += 1
            j += 1
            continue
        if ca == "^" or cb == "^":
            if not ca:
                return -1
            if not cb:
                return 1
            if ca != "^":
                return 1
            if cb != "^":
                return -1
            i += 1
            j += 1
            continue
        if not (ca and cb):
            break
        pred = _isdigit if _isdigit(ca) else _isalpha
        si, sj = i, j
        while i < la and pred(a[i]):
            i += 1
        while j < lb and pred(b[j]):
            j += 1
        seg_a, seg_b = a[si:i], b[sj:j]
        if not seg_b:
            # Different segment types: a number is newer than letters.
            return 1 if pred is _isdigit else -1
        if pred is _isdigit:
            seg_a, seg_b = seg_a.lstrip("0"), seg_b.lstrip("0")
            if len(seg_a) != len(seg_b):
                return _cmp(len(seg_a), len(seg_b))
        if seg_a != seg_b:
            return _cmp(seg_a, seg_b)
    if i >= la and j >= lb:
        return 0
    return 1 if i < la else -1


def _is_version_char(c: str) -> bool:
    return _isalnum(c) or c in "~-^."


def uapi_vercmp(a: str | None, b: str | None) -> int:
    """The UAPI Version Format comparison (systemd's `strverscmp_improved`): -1, 0 or 1.

    Like rpm's, but `-` separates version from release (`1.0-2` is older than `1.0.1-1`), `.` and `^` are ordered,
    and when one string ends the longer one is newer except for `~` pre-releases.
    """
    if not a or not b:
        if a is None or b is None:
            return _cmp(a is not None, b is not None)
        return _cmp(a, b)
    i = j = 0
    la, lb = len(a), len(b)
    while True:
        start = (i, j)
        while i < la and not _is_version_char(a[i]):
            i += 1
        while j < lb and not _is_version_char(b[j]):
            j += 1
        ca = a[i] if i < la else ""
        cb = b[j] if j < lb else ""
        if ca == "~" or cb == "~":
            r = _cmp(ca != "~", cb != "~")
            if r:
                return r
            i += 1
            j += 1
        if i >= la or j >= lb:
            return _cmp(a[i:], b[j:])
        for sep in "-^.":
            ca, cb = a[i] if i < la else "", b[j] if j < lb else ""
            if sep in (ca, cb):
                r = _cmp(ca != sep, cb != sep)
                if r:
                    return r
                i += 1
                j += 1
        ca, cb = a[i] if i < la else "", b[j] if j < lb else ""
        if _isdigit(ca) or _isdigit(cb):
            ei, ej = i, j
            while ei < la and _isdigit(a[ei]):
                ei += 1
            while ej < lb and _isdigit(b[ej]):
                ej += 1
            r = _cmp(ei != i, ej != j)
            if r:
                return r
            na, nb = a[i:ei].lstrip("0"), b[j:ej].lstrip("0")
            r = _cmp(len(na), len(nb)) or _cmp(na, nb)
            if r:
                return r
        else:
            ei, ej = i, j
            while ei < la and _isalpha(a[ei]):
                ei += 1
            while ej < lb and _isalpha(b[ej]):
                ej += 1
            n = min(ei - i, ej - j)
            r = _cmp(a[i : i + n], b[j : j + n]) or _cmp(ei - i, ej - j)
            if r:
                return r
        i, j = ei, ej
        if (i, j) == start:  # only reachable on inputs systemd would also not advance on; never loop
            return _cmp(a[i:], b[j:])


# ---------------------------------------------------------------------------------------------------------------------
# Entries


@dataclass(frozen=True)
class BlsLine:
    """One `key value` line of an entry file, kept for diagnostics and for keys the spec does not define."""

    key: str
    value: str
    line: int


@dataclass(frozen=True)
class BlsEntry:
    """One parsed Type #1 entry file. `stem` is the file name without `.conf` and without the boot-counting suffix;
    it is the entry's id (what `loader.conf default` and GRUB's `saved_entry` name)."""

    path: str
    stem: str
    boot_count: BootCount | None = None
    title: str | None = None
    version: str | None = None
    machine_id: str | None = None
    sort_key: str | None = None
    linux: str | None = None
    initrds: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    devicetree: str | None = None
    architecture: str | None = None
    efi: str | None = None
    lines: tuple[BlsLine, ...] = field(default=(), repr=False)
    uki: bool = False  # a Type #2 entry: `linux` is the unified kernel image itself (see discovery/uki.py)

    @property
    def id(self) -> str:
        return self.stem

    @property
    def filename(self) -> str:
        return PurePosixPath(self.path).name

    @property
    def systemd_id(self) -> str:
        """systemd-boot's id without the boot counter: the file name lowercased (systemd-boot lowercases ids; seen on
        systemd-boot 252, which orders `Mixed-Case.conf` as `mixed-case.conf`), `.conf`/`.efi` kept. It orders by
        it. systemd-boot 252's own id also keeps the counter: that is `boot_id`."""
        if self.uki:
            return f"{self.stem}.efi".lower()
        return (f"{self.stem}.conf" if self.filename.endswith(".conf") else self.stem).lower()

    @property
    def boot_id(self) -> str:
        """systemd-boot 252's id (its LoaderEntrySelected): the whole file name lowercased, boot counter included."""
        return self.filename.lower()

    @property
    def cmdline(self) -> str:
        """`options` lines joined by spaces, as systemd-boot passes them (GRUB's blscfg expands variables first)."""
        return " ".join(o for o in self.options if o)

    @property
    def raw(self) -> Mapping[str, tuple[BlsLine, ...]]:
        """Every key as written, with all its values and line numbers, in file order."""
        out: dict[str, list[BlsLine]] = {}
        for ln in self.lines:
            out.setdefault(ln.key, []).append(ln)
        return {key: tuple(lines) for key, lines in out.items()}

    def line_of(self, key: str) -> int:
        """The line of the last `key` (the one that counts for single-valued keys), else 0."""
        found = [ln.line for ln in self.lines if ln.key == key]
        return found[-1] if found else 0

    @property
    def initrd_words(self) -> tuple[str, ...]:
        """What systemd-boot puts before the options: `initrd=<path>` per initrd line, the path as written with
        `\\` for `/` (src/boot/efi/boot.c, initrd_prepare(): for kernels without LINUX_INITRD_MEDIA; seen on
        systemd-boot 252 under OVMF, tests/conformance/test_sdboot_conformance.py)."""
        return tuple("initrd=" + path.replace("/", "\\") for path in self.initrds)

    @property
    def bad(self) -> bool:
        """Boot counting says every try failed (`+0`): systemd-boot sorts it last and never picks it first."""
        return self.boot_count is not None and self.boot_count.left == 0

    def to_boot_entry(
        self,
        *,
        device: str = "",
        cmdline: str | None = None,
        resolve: Callable[[str], str] | None = None,
        title: str | None = None,
        default: bool = False,
        submenu: tuple[str, ...] = (),
        fmt: SourceFormat = SourceFormat.BLS,
        warnings: Sequence[Diagnostic] = (),
        loader_args: tuple[str, ...] = (),
    ) -> BootEntry:
        """The boot entry this file describes. Requires `linux`. `resolve` maps entry paths to paths within
        `device` (default: unchanged); `cmdline` replaces the joined options (GRUB expands `$kernelopts`)."""
        if self.linux is None:
            raise ValueError(f"{self.path}: entry has no 'linux' key")
        fix = resolve or (lambda p: p)
        return BootEntry(
            title=title if title is not None else self.title or self.stem,
            kernel=fix(self.linux),
            initrds=tuple(fix(i) for i in self.initrds),
            cmdline=self.cmdline if cmdline is None else cmdline,
            devicetree=fix(self.devicetree) if self.devicetree else None,
            default=default,
            submenu=submenu,
            id=self.stem,
            format=fmt,
            config=self.path,
            line=self.line_of("linux"),
            device=device,
            config_device=device,
            version=self.version,
            sort_key=self.sort_key,
            architecture=self.architecture,
            boot_count=self.boot_count,
            warnings=tuple(warnings),
            loader_args=loader_args,
        )


def split_filename(name: str) -> tuple[str, BootCount | None]:
    """(`stem`, boot count) of an entry file name: `fedora-6.5+3-1.conf` -> (`fedora-6.5`, BootCount(3, 1))."""
    base = name[: -len(".conf")] if name.endswith(".conf") else name
    m = _BOOT_COUNT.match(base)
    if not m:
        return base, None
    done = m.group("done")
    return m.group("stem"), BootCount(int(m.group("left")), int(done) if done is not None else None)


def parse_entry(text: str, path: str, budget: Budget | None = None) -> tuple[BlsEntry, list[Diagnostic]]:
    """Parse one entry file's text. Never raises; problems become diagnostics naming `path` and the line. Each line
    is charged to `budget`; when it runs out the rest of the file is not read (one error diagnostic says so)."""
    diags: list[Diagnostic] = []
    lines: list[BlsLine] = []
    single: dict[str, str] = {}
    repeated: dict[str, tuple[int, int]] = {}  # single-valued key given again -> (times, last line)
    initrds: list[str] = []
    options: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if budget is not None:
            try:
                budget.charge()
            except BudgetExceeded as exc:
                diags.append(Diagnostic(path, number, f"{exc.message}; rest of the file not read", Severity.ERROR))
                break
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, *rest = stripped.split(None, 1)
        value = rest[0].strip() if rest else ""
        lines.append(BlsLine(key, value, number))
        if not value:
            diags.append(Diagnostic(path, number, f"key '{key}' has no value"))
            continue
        if key == "initrd":
            initrds.append(value)
        elif key == "options":
            options.append(value)
        elif key in KNOWN_KEYS:
            if key in single:
                times, _ = repeated.get(key, (1, 0))
                repeated[key] = (times + 1, number)
            single[key] = value
    for key, (times, last) in repeated.items():
        # systemd-boot keeps the last value of a single-valued key. One warning per key, however often repeated.
        again = "given again" if times == 2 else f"given {times} times"
        diags.append(Diagnostic(path, last, f"'{key}' {again}; this later value is used"))
    stem, count = split_filename(PurePosixPath(path).name)
    entry = BlsEntry(
        path=path,
        stem=stem,
        boot_count=count,
        title=single.get("title"),
        version=single.get("version"),
        machine_id=single.get("machine-id"),
        sort_key=single.get("sort-key"),
        linux=single.get("linux"),
        initrds=tuple(initrds),
        options=tuple(options),
        devicetree=single.get("devicetree"),
        architecture=single.get("architecture"),
        efi=single.get("efi") or single.get("uki"),
        lines=tuple(lines),
    )
    return entry, diags


def read_entries(
    fs: Filesystem, directory: str, budget: Budget | None = None
) -> tuple[list[BlsEntry], list[Diagnostic]]:
    """Every `*.conf` entry in `directory` of `fs`, in file-name order (unsorted by version; see the *_order
    functions). Unreadable files and directories become diagnostics; a missing directory yields nothing. Files and
    lines are charged to `budget` (default: ENTRIES_STEPS); the entries read before it ran out are kept."""
    budget = budget if budget is not None else Budget(ENTRIES_STEPS)
    entries: list[BlsEntry] = []
    diags: list[Diagnostic] = []
    for name in fs.listdir(directory):
        if not name.endswith(".conf") or name.startswith("."):
            continue
        path = str(PurePosixPath(directory, name))
        try:
            budget.charge()
        except BudgetExceeded as exc:
            diags.append(Diagnostic(path, 0, f"{exc.message}; this and later entry files not read", Severity.ERROR))
            break
        try:
            if not fs.is_file(path):
                continue
            text = read_config(fs, path)
        except OSError as exc:
            diags.append(Diagnostic(path, 0, f"cannot read entry: {os_problem(exc)}", Severity.ERROR))
            continue
        entry, problems = parse_entry(text, path, budget)
        entries.append(entry)
        diags.extend(problems)
    return entries, diags


def _split_nvr(text: str, *, has_name: bool) -> tuple[str, ...]:
    # Fedora's blscfg splits at the last `-` (release) and, for file names, the one before it (version); the rest is
    # the name (for an entry file: the machine id). Missing parts move up, as its `split_package_string` does.
    parts = text.rsplit("-", 2 if has_name else 1)
    width = 3 if has_name else 2
    return (*parts, *[""] * (width - len(parts)))


def _nvr_cmp(a: str, b: str, *, has_name: bool) -> int:
    for x, y in zip(_split_nvr(a, has_name=has_name), _split_nvr(b, has_name=has_name), strict=True):
        r = rpmvercmp(x, y)
        if r:
            return r
    return 0


def _blscfg_cmp(x: BlsEntry, y: BlsEntry) -> int:
    # Fedora's blscfg: entries with a version before those without; newer `version` first (compared as
    # version-release); then the newer file stem (compared as name-version-release).
    if x.version is not None and y.version is None:
        return -1
    if x.version is None and y.version is not None:
        return 1
    if x.version is not None and y.version is not None:
        r = _nvr_cmp(y.version, x.version, has_name=False)
        if r:
            return r
    return _nvr_cmp(y.stem, x.stem, has_name=True)


def blscfg_order(entries: Iterable[BlsEntry]) -> list[BlsEntry]:
    """The order Fedora's GRUB `blscfg` lists entries in: newest version first (rpm comparison), then by file stem."""
    return sorted(entries, key=cmp_to_key(_blscfg_cmp))


def _systemd_cmp(x: BlsEntry, y: BlsEntry) -> int:
    # systemd's boot_entry_compare: bad entries (no tries left) last; entries with sort-key before those without;
    # sort-key ascending, machine-id ascending, version descending; then id descending; then more tries left first,
    # fewer tries done first.
    r = _cmp(x.bad, y.bad) or _cmp(x.sort_key is None, y.sort_key is None)
    if r:
        return r
    if x.sort_key is not None and y.sort_key is not None:
        r = (
            _cmp(x.sort_key, y.sort_key)
            or _cmp((x.machine_id is not None, x.machine_id or ""), (y.machine_id is not None, y.machine_id or ""))
            or -uapi_vercmp(x.version, y.version)
        )
        if r:
            return r
    r = -uapi_vercmp(x.systemd_id, y.systemd_id)
    if r or x.boot_count is None or y.boot_count is None:
        return r
    return -_cmp(x.boot_count.left, y.boot_count.left) or _cmp(x.boot_count.done or 0, y.boot_count.done or 0)


def systemd_boot_order(entries: Iterable[BlsEntry]) -> list[BlsEntry]:
    """The Boot Loader Specification / systemd-boot menu order (see `_systemd_cmp`)."""
    return sorted(entries, key=cmp_to_key(_systemd_cmp))


def unique_titles(entries: Sequence[BlsEntry]) -> list[str]:
    """Titles as systemd-boot shows them: duplicates get ` (version)`, then ` (machine-id prefix)`, then ` (id)`."""
    titles = [e.title or e.stem for e in entries]

    def duplicated() -> list[bool]:
        counts = Counter(titles)
        return [counts[t] > 1 for t in titles]

    extras: tuple[Callable[[BlsEntry], str | None], ...] = (
        lambda e: e.version,
        lambda e: e.machine_id[:8] if e.machine_id else None,
        lambda e: e.boot_id,  # systemd-boot 252: `Gamma (5) (d-gamma.conf)`
    )
    for extra in extras:
        dup = duplicated()
        if not any(dup):
            break
        for n, e in enumerate(entries):
            value = extra(e)
            if dup[n] and value:
                titles[n] = f"{titles[n]} ({value})"
    return titles


# ---------------------------------------------------------------------------------------------------------------------
# The standalone loader (systemd-boot)


@dataclass(frozen=True)
class LoaderConf:
    """The parts of `loader/loader.conf` that shape the menu. `timeout` None: wait for the user (or not given)."""

    path: str = ""
    default: str | None = None
    default_line: int = 0
    timeout: float | None = None
    timeout_style: str | None = None


def parse_loader_conf(text: str, path: str) -> tuple[LoaderConf, list[Diagnostic]]:
    """`default` and `timeout` of a loader.conf; other keys (editor, beep, console-mode, ...) are boot-loader UI."""
    diags: list[Diagnostic] = []
    default: str | None = None
    default_line = 0
    timeout: float | None = None
    style: str | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, *rest = stripped.split(None, 1)
        value = rest[0].strip() if rest else ""
        if key == "default":
            if value.startswith("@"):
                # @saved needs the LoaderEntryLastBooted EFI variable of the machine that wrote it; we cannot know it.
                diags.append(Diagnostic(path, number, f"default '{value}' is not supported; using the first entry"))
                default, default_line = None, number
            else:
                default, default_line = value or None, number
        elif key == "timeout":
            if value == "menu-force":
                timeout, style = None, "menu"  # show the menu until the user picks
            elif value in ("menu-hidden", "menu-disabled"):
                timeout, style = 0.0, "hidden"  # boot the default at once unless a key is pressed
            elif value.isdigit():
                timeout, style = float(int(value)), None
            else:
                diags.append(Diagnostic(path, number, f"timeout '{value}' is not a number of seconds; ignored"))
    conf = LoaderConf(path=path, default=default, default_line=default_line, timeout=timeout, timeout_style=style)
    return conf, diags


def _matches(pattern: str, entry: BlsEntry) -> bool:
    # Case-insensitive: the ESP is vfat, and systemd-boot lowercases ids. Matched against the id only, `.conf`
    # included: systemd-boot 252 takes `default c-gamma` to match no `c-gamma.conf` (tests/conformance, sdboot-sort).
    # Its id keeps the boot counter (`good+3.conf`); later versions drop it, so both forms match.
    pat = pattern.lower()
    return any(fnmatch.fnmatchcase(name, pat) for name in (entry.boot_id, entry.systemd_id))


def _prefix(fs: Filesystem, root: str, kernel: str) -> tuple[str | None, str]:
    """Where this entry's paths live within `fs` (see the module docstring), or None and why the kernel is
    nowhere ("not found", or the OSError of the lookup of the path as written)."""
    problems = []
    for prefix in ("",) if root == "/" else ("", root.rstrip("/")):
        problem = file_problem(fs, _under(prefix, kernel))
        if problem is None:
            return prefix, ""
        problems.append(problem)
    return None, next((p for p in problems if p != "not found"), "not found")


def _under(prefix: str, path: str) -> str:
    return prefix + "/" + path.lstrip("/")


Type2Reader = Callable[[Filesystem], tuple[list[BlsEntry], list[Diagnostic]]]


def _load_root(fs: Filesystem, ctx: LoadContext, root: str, type2: Type2Reader | None) -> LoadResult:
    directory = str(PurePosixPath(root, ENTRIES_SUBDIR))
    budget = ctx.budget(ENTRIES_STEPS)
    entries, diags = read_entries(fs, directory, budget)
    if type2 is not None:
        # systemd-boot lists /EFI/Linux's unified kernel images with the Type #1 entries and sorts them together.
        more, problems = type2(fs)
        entries.extend(more)
        diags.extend(problems)
    budget.final_phase()
    configs = [e.path for e in entries]
    conf = LoaderConf()
    conf_path = str(PurePosixPath(root, LOADER_CONF))
    if file_problem(fs, conf_path) is None:
        try:
            conf, problems = parse_loader_conf(fs.read_text(conf_path), conf_path)
            diags.extend(problems)
            configs.insert(0, conf_path)
        except OSError as exc:
            diags.append(Diagnostic(conf_path, 0, f"cannot read: {exc.strerror or exc}", Severity.ERROR))
    arch = efi_architecture(ctx.platform.cpu)
    usable: list[BlsEntry] = []
    for entry in entries:
        if entry.linux is None:
            what = f"boots the EFI binary {entry.efi}" if entry.efi else "has no 'linux' key"
            diags.append(Diagnostic(entry.path, 0, f"entry {what}; not a Linux boot entry, not listed"))
        elif entry.architecture and arch and entry.architecture.lower() != arch:
            diags.append(
                Diagnostic(
                    entry.path,
                    entry.line_of("architecture"),
                    f"entry is for architecture '{entry.architecture}', this machine is '{arch}'; not listed",
                )
            )
        else:
            usable.append(entry)
    ordered = systemd_boot_order(usable)
    titles = unique_titles(ordered)
    # Boot counting: with no `default`, an entry with no tries left is never the default (systemd-boot sorted it last
    # already); when every entry is bad there is no default, so nothing autoboots. A `default` pattern that matches
    # one is obeyed all the same, as systemd-boot 252 does (tests/conformance, the sdboot-counting tree).
    good = [n for n, e in enumerate(ordered) if not e.bad]
    chosen = good[0] if good else -1
    if conf.default is not None:
        found = [n for n, e in enumerate(ordered) if _matches(conf.default, e)]
        if found:
            chosen = found[0]
            if ordered[chosen].bad:
                diags.append(
                    Diagnostic(
                        conf.path,
                        conf.default_line,
                        f"default '{conf.default}' has no boot tries left (boot counting); still the default, "
                        "as systemd-boot does",
                    )
                )
        elif ordered:
            diags.append(
                Diagnostic(conf.path, conf.default_line, f"default '{conf.default}' matches no entry; using the first")
            )
    boot_entries: list[BootEntry] = []
    by_file: dict[str, list[Diagnostic]] = {}
    for d in diags:
        by_file.setdefault(d.file, []).append(d)
    reported = set(diags)  # a set: 10,000 warnings of one file must not cost 10,000 x 10,000 comparisons
    for n, entry in enumerate(ordered):
        if budget.late:  # building is linear in what was read; only the deadline can cut it short
            left = len(ordered) - n
            diags.append(
                Diagnostic(entry.path, 0, f"{left} entries from here not listed: time used up", Severity.ERROR)
            )
            break
        warnings = list(by_file.get(entry.path, ()))
        assert entry.linux is not None
        prefix, problem = _prefix(fs, root, entry.linux)
        found_kernel = prefix is not None
        resolve = functools.partial(_under, prefix or "")
        if not found_kernel:
            warnings.append(Diagnostic(entry.path, entry.line_of("linux"), missing("kernel", entry.linux, problem)))
        if "$" in entry.cmdline:
            # RHEL 8 style `options $kernelopts`: only GRUB's blscfg expands these; systemd-boot passes them as text.
            warnings.append(
                Diagnostic(entry.path, entry.line_of("options"), "options use GRUB variables, passed unexpanded")
            )
        for key, value in [("initrd", i) for i in entry.initrds] + [("devicetree", entry.devicetree or "")]:
            lookup = file_problem(fs, resolve(value)) if value and found_kernel else None
            if lookup is not None:
                warnings.append(Diagnostic(entry.path, entry.line_of(key), missing(key, value, lookup)))
        if entry.bad and entry.boot_count is not None:
            warnings.append(
                Diagnostic(
                    entry.path,
                    0,
                    f"no boot tries left ({entry.boot_count.done or 0} failed): listed last, not picked as the default",
                )
            )
        for w in warnings:
            if w not in reported:
                reported.add(w)
                diags.append(w)
        boot_entries.append(
            entry.to_boot_entry(
                device=fs.name,
                resolve=resolve,
                title=titles[n],
                default=n == chosen,
                warnings=warnings,
                # A Type #2 entry (UKI) carries its own initrd and command line: systemd-boot adds nothing.
                loader_args=() if entry.uki else entry.initrd_words,
            )
        )
    return LoadResult(
        entries=tuple(boot_entries),
        diagnostics=tuple(diags),
        timeout=conf.timeout,
        timeout_style=conf.timeout_style,
        configs=tuple(configs),
    )


def load(fs: Filesystem, ctx: LoadContext, *, type2: Type2Reader | None = None) -> LoadResult:
    """Standalone BLS entries of `fs` in systemd-boot's order, under `/loader/entries` (an ESP or XBOOTLDR
    partition) and `/boot/loader/entries` (a root filesystem); each directory with its own `loader.conf`.
    `type2` reads the partition's Type #2 entries (unified kernel images), ordered with those of `/loader/entries`."""
    total = LoadResult()
    for root in ENTRY_ROOTS:
        reader = type2 if root == "/" else None
        if fs.is_dir(str(PurePosixPath(root, ENTRIES_SUBDIR))) or (reader is not None and _has_type2_dir(fs)):
            total = total + _load_root(fs, ctx, root, reader)
    return total


def _has_type2_dir(fs: Filesystem) -> bool:
    found = fs.find_ci(TYPE2_DIR)
    return found is not None and fs.is_dir(found)
