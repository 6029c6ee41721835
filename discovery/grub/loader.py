"""The GRUB 2 loader: find grub.cfg on a filesystem, evaluate it, and turn its menu into boot entries.

Probes `/boot/grub/grub.cfg`, `/grub/grub.cfg`, `/boot/grub2/grub.cfg`, `/grub2/grub.cfg` and `/EFI/*/grub.cfg`
(case-insensitively, for vfat and iso9660). Documented choice: every distinct config found is evaluated (a disk may
carry several distributions' EFI directories), except one that another evaluation already read through `configfile`
or `source`: the EFI stub that chains to `/boot/grub2/grub.cfg` is what the firmware runs, so its evaluation is kept
and the chained file is not listed a second time.

Default selection follows grub-core/normal/menu.c: `default` is an index, an id or a title, or a submenu path
`a>b`; when nothing matches, entry 0. Exactly one entry per config is marked default when it has entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from discovery.entry import BootEntry, Diagnostic, LoadResult, Severity, SourceFormat
from discovery.fs import Filesystem, SearchKind
from discovery.grub.errors import GrubError
from discovery.grub.evaluator import BootCapture, Interpreter, Limits, MenuItem, Network, Scope
from discovery.loaders import LoadContext

CANDIDATES = ("/boot/grub/grub.cfg", "/grub/grub.cfg", "/boot/grub2/grub.cfg", "/grub2/grub.cfg")
# Configs evaluated per filesystem, each with its own budget: an ESP holds a handful of vendor directories; a
# filesystem with thousands of `/EFI/*/grub.cfg` must not cost thousands of budgets.
MAX_CONFIGS = 16


def find_configs(fs: Filesystem) -> list[str]:
    """Config paths present on `fs`, in probe order, without duplicates (symlinks to the same file)."""
    found: list[str] = []
    for candidate in CANDIDATES:
        path = fs.find_ci(candidate)
        if path is not None and fs.is_file(path):
            found.append(path)
    efi = fs.find_ci("/EFI")
    if efi is not None:
        for vendor in fs.listdir(efi):
            found.extend(p for p in fs.glob_ci(f"{efi}/{vendor}", ["grub.cfg"]) if fs.is_file(p))
    unique: list[str] = []
    seen: set[object] = set()
    for path in found:
        host = fs.host_path(path)
        if host not in seen:
            seen.add(host)
            unique.append(path)
    return unique


def cmdline(args: list[str]) -> str:
    """The command line GRUB builds from the linux command's arguments (grub_create_loader_cmdline in
    grub-core/lib/cmdline.c): `\\`, `'` and `"` escaped with a backslash, an argument holding a space wrapped in
    double quotes, arguments joined by single spaces."""
    out = []
    for arg in args:
        escaped = re.sub(r"""([\\'"])""", r"\\\1", arg)
        out.append(f'"{escaped}"' if " " in arg else escaped)
    return " ".join(out)


@dataclass
class _Node:
    item: MenuItem
    entry: BootEntry | None = None
    children: list[_Node] = field(default_factory=list)
    default: str | None = None  # a submenu's own `default` when its body changed it
    menu: bool = False  # a submenu, or an entry whose body opens another menu with `configfile`


class _Builder:
    def __init__(self, it: Interpreter) -> None:
        self.it = it
        self.evaluated = 0
        # `save_env` at GRUB's start (grub-reboot's next_entry, Fedora's boot_success): written with every entry.
        # Taken before entry and submenu bodies run; a submenu body's own save_env is not written (documented).
        self.config_saves = tuple(it.saves)

    def menu(self, scope: Scope, parents: tuple[str, ...], depth: int) -> list[_Node]:
        nodes: list[_Node] = []
        for index, item in enumerate(scope.menu):
            if self.it.budget.exhausted:
                # One diagnostic for the rest: the entries whose bodies already ran are kept.
                self.it.diagnostics.append(
                    Diagnostic(
                        item.file,
                        item.line,
                        f"{len(scope.menu) - index} menu items from here not evaluated: step budget or time used up",
                        Severity.ERROR,
                    )
                )
                break
            self.evaluated += 1
            if self.evaluated > self.it.limits.menu_size:
                # Submenus that define submenus through functions could otherwise grow exponentially.
                self.it.diagnostics.append(
                    Diagnostic(item.file, item.line, f"more than {self.it.limits.menu_size} menu items; rest skipped")
                )
                break
            entry: BootEntry | None = None
            chains = False
            if not item.submenu:
                entry, chains = self.entry(item, scope, parents)
            if item.submenu or chains:
                if depth >= self.it.limits.submenu_depth:
                    self.it.diagnostics.append(
                        Diagnostic(item.file, item.line, f"submenus nested deeper than {depth}; not expanded")
                    )
                    continue
                self.it.sink = self.it.diagnostics
                sub = self.it.run_item(item, scope.env, None)
                node = _Node(item, menu=True)
                if sub.env.get("default") != scope.env.get("default"):
                    node.default = sub.env.get("default")
                node.children = self.menu(sub, (*parents, item.title), depth + 1)
                nodes.append(node)
            else:
                nodes.append(_Node(item, entry))
        return nodes

    def entry(self, item: MenuItem, scope: Scope, parents: tuple[str, ...]) -> tuple[BootEntry | None, bool]:
        """The boot entry of a menu entry (None when it boots no Linux kernel), and whether its body opens
        another menu with `configfile` (then the loader lists that menu as a submenu, as GRUB would show it)."""
        warnings: list[Diagnostic] = []
        self.it.sink = warnings
        capture = BootCapture()
        try:
            self.it.run_item(item, scope.env, capture)
        finally:
            self.it.sink = self.it.diagnostics
        if capture.kernel is None or capture.other_loader or item.hidden:
            # The entry is not listed; its warnings may be why (`linux` without a file name).
            self.it.diagnostics.extend(warnings)
            return None, capture.other_loader == "configfile" and not item.hidden
        kernel = capture.kernel
        for ref in (*capture.initrds, capture.devicetree):
            if ref is not None and ref.fs.name != kernel.fs.name:
                warnings.append(
                    Diagnostic(item.file, item.line, f"{ref.path} is on {ref.fs.name}, the kernel on {kernel.fs.name}")
                )
        return BootEntry(
            title=item.title,
            kernel=kernel.path,
            initrds=tuple(r.path for r in capture.initrds),
            cmdline=cmdline(capture.args),
            # GRUB's x86, EFI and arm64 Linux loaders build "BOOT_IMAGE=" + argv (kernel path first), escaped alike.
            loader_args=(f"BOOT_IMAGE={cmdline([capture.image])}",),
            devicetree=capture.devicetree.path if capture.devicetree else None,
            submenu=parents,
            id=item.id,
            format=SourceFormat.GRUB,
            config=item.file,
            line=item.line,
            device=kernel.fs.name,
            config_device=item.fs.name,
            unresolved=kernel.unresolved,
            warnings=tuple(warnings),
            env_saves=(*self.config_saves, *capture.saves),
        ), False


def _match(nodes: list[_Node], key: str) -> _Node | None:
    if key.isdigit():
        index = int(key)
        return nodes[index] if index < len(nodes) else None
    for node in nodes:
        if node.item.id == key:
            return node
    for node in nodes:
        if node.item.title == key:
            return node
    return None


def _first_entry(nodes: list[_Node]) -> _Node | None:
    for node in nodes:
        if node.entry is not None:
            return node
        found = _first_entry(node.children)
        if found is not None:
            return found
    return None


def choose_default(nodes: list[_Node], default: str) -> tuple[_Node | None, bool]:
    """The node GRUB boots by default, and whether it is what `default` named (False: GRUB's entry-0 fallback)."""
    keys = default.split(">") if default else []
    level = nodes
    exact = True
    while True:
        node = _match(level, keys[0].strip()) if keys else None
        if node is None:
            exact = exact and not keys
            node = level[0] if level else None
        if node is None:
            return None, False
        if not node.menu:
            return node, exact
        keys = keys[1:] or ([node.default] if node.default else [])
        level = node.children


def _flatten(nodes: list[_Node], default: _Node | None) -> list[BootEntry]:
    out: list[BootEntry] = []
    for node in nodes:
        if node.entry is not None:
            out.append(node.entry.replace(default=True) if node is default else node.entry)
        out.extend(_flatten(node.children, default))
    return out


def _timeout(scope: Scope) -> float | None:
    text = scope.env.get("timeout").strip()
    try:
        return float(text) if text else None
    except ValueError:
        return None


def evaluate(
    fs: Filesystem, path: str, ctx: LoadContext, limits: Limits | None = None, network: Network | None = None
) -> tuple[LoadResult, Interpreter]:
    """Evaluate one config and build its entries (exactly one marked default when there are any)."""

    def find(kind: str, value: str) -> Filesystem | None:
        search = SearchKind(kind)
        if search.matches(fs, value):
            return fs
        return ctx.resolver.find(search, value)

    limits = limits or Limits()
    budget = ctx.budget(limits.total_steps)
    it = Interpreter(
        fs, find, firmware=ctx.platform.firmware, cpu=ctx.platform.cpu, limits=limits, budget=budget, network=network
    )
    scope = it.run_config(fs, path)
    budget.final_phase()  # the menu read so far becomes entries even when reading it hit the deadline
    builder = _Builder(it)
    nodes = builder.menu(scope, (), 0)
    default_node, exact = choose_default(nodes, scope.env.get("default"))
    marked = default_node if default_node is not None and default_node.entry is not None else None
    if marked is None:
        marked = _first_entry(nodes)
        if marked is not None and default_node is not None:
            it.diagnostics.append(
                Diagnostic(
                    path, 0, f"default entry '{default_node.item.title}' does not boot Linux; first Linux entry marked"
                )
            )
    elif not exact and scope.env.get("default"):
        it.diagnostics.append(Diagnostic(path, 0, f"default '{scope.env.get('default')}' matches no entry; entry 0"))
    entries = _flatten(nodes, marked)
    result = LoadResult(
        entries=tuple(entries),
        diagnostics=tuple(it.diagnostics),
        timeout=_timeout(scope),
        timeout_style=scope.env.get("timeout_style").strip()[:20] or None,
        configs=tuple(dict.fromkeys(p for _, p in it.read)),
        unresolved=tuple(it.unresolved),
        consumed=tuple(dict.fromkeys(it.consumed)),
    )
    return result, it


def load(fs: Filesystem, ctx: LoadContext) -> LoadResult:
    """Every GRUB config's entries on `fs`, in menu order. Never raises for bad configs."""
    evaluations: list[tuple[str, LoadResult, set[tuple[str, str]]]] = []
    paths = find_configs(fs)
    if len(paths) > MAX_CONFIGS:
        skipped = ", ".join(paths[MAX_CONFIGS : MAX_CONFIGS + 3])
        note = Diagnostic(paths[MAX_CONFIGS], 0, f"more than {MAX_CONFIGS} GRUB configs; {skipped}... not evaluated")
        evaluations.append((paths[MAX_CONFIGS], LoadResult(diagnostics=(note,)), set()))
        paths = paths[:MAX_CONFIGS]
    for path in paths:
        try:
            result, it = evaluate(fs, path, ctx)
        except (GrubError, OSError) as exc:  # one unreadable config must not hide the others
            result = LoadResult(diagnostics=(Diagnostic(path, 0, f"not evaluated: {exc}", Severity.ERROR),))
            evaluations.append((path, result, set()))
            continue
        evaluations.append((path, result, set(it.read)))
    total = LoadResult()
    for index, (_, result, _) in enumerate(evaluations):
        if not _chained(evaluations, index, fs.name):
            total = total + result
    return total


def _chained(evaluations: list[tuple[str, LoadResult, set[tuple[str, str]]]], index: int, device: str) -> bool:
    """Whether another evaluation already read config `index` (an EFI stub's `configfile`). When two configs read
    each other, the first one is kept."""
    path, _, read = evaluations[index]
    for other, (other_path, _, other_read) in enumerate(evaluations):
        if other == index or (device, path) not in other_read:
            continue
        mutual = (device, other_path) in read
        if not (mutual and index < other):
            return True
    return False
