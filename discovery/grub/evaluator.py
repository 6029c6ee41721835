"""Evaluates a parsed GRUB script: variables and word expansion, control flow, functions, menus and boot actions.

Follows grub-core/script/execute.c and grub-core/normal/menu.c of GRUB 2.06:
- Unquoted variable expansions are split on blanks; quoted ones are not; `$?`, `$#`, `$@`, `$*`, `$1`...
- Commands are looked up among the builtins first, then the config's functions (as GRUB does).
- `menuentry`/`submenu` record their body without running it. When the menu is shown (end of the config), each body
  runs at "boot time" in a copy of the environment of that moment, so functions defined anywhere in the config and
  variables they set (Ubuntu's `gfxmode` setting `$vt_handoff`) are seen as GRUB would see them.
- `configfile` replaces the menu being shown by the new file's menu when that one has entries.
Everything is bounded (steps, loop iterations, nesting, source depth, submenu depth): hitting a bound stops the
evaluation of that file or entry with a diagnostic, never the whole scan. Steps are one budget per config
(discovery.budget): every command, loop iteration, compound command, variable expansion (by size), sourced or
`eval`ed text (by size) and entry body is charged to it, and it carries the loader's deadline, so any input ends.

A config read over the network (`Network`, discovery.netboot) starts as GRUB's net boot does (grub-core/net/net.c,
bootp.c): `$root`/`$prefix` on `(tftp,SERVER)`, `$net_default_*` and `$net_<if>_*` set from the lease; the devices
`(tftp)`, `(tftp,HOST)`, `(http)`, `(http,HOST)` (and the older `(pxe)`) name files of the network tree, and a
script `source` or `configfile` names there is fetched before it is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from discovery.budget import Budget, BudgetExceeded
from discovery.entry import Diagnostic, EnvSave, Severity
from discovery.fs import Filesystem
from discovery.grub.errors import GrubCommandError, GrubError, GrubLimitError
from discovery.grub.lexer import Part, PartKind, Word
from discovery.grub.parser import Block, Command, For, FunctionDef, If, Loop, MenuDef, Node, Script, parse
from discovery.loaders import os_problem, read_config, shown

MAX_VALUE = 256 * 1024  # characters in one variable: `set x=$x$x` in a loop doubles each time
SOURCE_BYTES_PER_STEP = 1024  # reading (lexing, parsing) a script costs a step per KiB
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=")
_DEVICE_PREFIX = re.compile(r"^\(([^)]*)\)(.*)$", re.DOTALL)

# GRUB 2.06 sets these in normal mode (grub-core/normal/main.c `features`).
FEATURES = (
    "feature_chainloader_bpb",
    "feature_ntldr",
    "feature_platform_search_hint",
    "feature_default_font_path",
    "feature_all_video_module",
    "feature_menuentry_id",
    "feature_menuentry_options",
    "feature_200_final",
    "feature_nativedisk_cmd",
    "feature_timeout_style",
)


@dataclass(frozen=True)
class Limits:
    """Bounds that keep evaluation finite on any input."""

    steps: int = 50_000  # steps while reading the config (before its menu is shown)
    entry_steps: int = 5_000  # steps per menu entry body, run when the menu is built
    total_steps: int = 250_000  # steps for the config and all its entry bodies together: the one budget
    iterations: int = 1_000  # iterations of one loop
    nesting: int = 64  # nested compound commands and function calls
    source_depth: int = 10  # nested source/configfile (Petitboot stops at the same depth)
    submenu_depth: int = 16
    menu_size: int = 1_000  # entries in one menu, and menu items evaluated at boot time per config


@dataclass
class Env:
    """Variables, functions and which variables a failed `search` should have set (their search spec)."""

    variables: dict[str, str] = field(default_factory=dict)
    functions: dict[str, FunctionDef] = field(default_factory=dict)
    unresolved: dict[str, str] = field(default_factory=dict)
    exported: set[str] = field(default_factory=set)

    def copy(self) -> Env:
        return Env(dict(self.variables), dict(self.functions), dict(self.unresolved), set(self.exported))

    def get(self, name: str) -> str:
        return self.variables.get(name, "")

    def set(self, name: str, value: str) -> None:
        if len(value) > MAX_VALUE:
            raise GrubLimitError(f"value of '{name}' longer than {MAX_VALUE} characters")
        self.variables[name] = value
        self.unresolved.pop(name, None)

    def unset(self, name: str) -> None:
        self.variables.pop(name, None)
        self.unresolved.pop(name, None)


@dataclass(frozen=True)
class Network:
    """How a config read over the network reaches the network: variables GRUB's net boot sets at start, the path in
    the home filesystem (the network tree) of a file on a network device (None: not a network device), and a fetch
    that brings a script's file onto the home filesystem when `source`/`configfile` read it."""

    env: tuple[tuple[str, str], ...]
    path: Callable[[str, str], str | None]
    fetch: Callable[[str], None]


@dataclass(frozen=True)
class FileRef:
    """A file named by a config: the filesystem holding it (after device resolution) and its absolute path there."""

    fs: Filesystem
    path: str
    unresolved: str | None = None


@dataclass
class BootCapture:
    """What an entry body loaded: the Linux kernel and its arguments, initrds, devicetree."""

    kernel: FileRef | None = None
    image: str = ""  # the kernel argument as written (after expansion), for BOOT_IMAGE=
    args: list[str] = field(default_factory=list)
    initrds: list[FileRef] = field(default_factory=list)
    devicetree: FileRef | None = None
    other_loader: str | None = None
    saves: list[EnvSave] = field(default_factory=list)  # `save_env` run by the entry body, in order


@dataclass
class MenuItem:
    title: str
    args: tuple[str, ...]
    body: Block
    file: str
    fs: Filesystem
    line: int
    id: str | None = None
    hidden: bool = False
    submenu: bool = False


@dataclass
class Scope:
    """One execution context: environment, the menu being filled, positional parameters, the current file."""

    env: Env
    menu: list[MenuItem]
    file: str
    fs: Filesystem
    positional: list[str] = field(default_factory=list)
    capture: BootCapture | None = None


# Control flow of the script language, raised by builtins and caught by the constructs they leave.


class BreakLoop(Exception):
    def __init__(self, levels: int) -> None:
        self.levels = levels


class ContinueLoop(BreakLoop):
    pass


class ReturnFromFunction(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class ExitScript(Exception):
    pass


class MenuShown(Exception):
    """`configfile` produced a menu: GRUB shows it right away, so it is the menu of this config."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope


Builtin = Callable[["Interpreter", list[str]], int]


class Interpreter:
    """Runs GRUB scripts read from `home` (the filesystem holding the config) and resolves devices through
    `find`, which maps a search (kind, value) to a filesystem or None."""

    def __init__(
        self,
        home: Filesystem,
        find: Callable[[str, str], Filesystem | None],
        *,
        firmware: str = "pc",
        cpu: str = "x86_64",
        limits: Limits | None = None,
        budget: Budget | None = None,
        network: Network | None = None,
    ) -> None:
        from discovery.grub.builtins import BUILTINS, IGNORED

        self.network = network
        self.home = home
        self.find = find
        self.firmware = firmware
        self.cpu = cpu
        self.limits = limits or Limits()
        self.budget = budget or Budget(self.limits.total_steps)
        self.scripts: dict[tuple[str, str], Script] = {}  # parsed once however often `source` reads them
        self.builtins: dict[str, Builtin] = BUILTINS
        self.ignored = IGNORED
        self.devices: dict[str, Filesystem] = {home.name: home}
        self.diagnostics: list[Diagnostic] = []
        self.sink: list[Diagnostic] = self.diagnostics
        self.read: list[tuple[str, str]] = []  # (filesystem name, path) of every script read
        self.unresolved: list[str] = []
        self.consumed: list[str] = []
        self.saves: list[EnvSave] = []  # `save_env` run outside entry bodies (at GRUB's start), in order
        self.status = 0
        self.steps = 0
        self.step_limit = self.limits.steps
        self.nesting = 0
        self.source_depth = 0
        self.line = 0
        self.scope = Scope(Env(), [], "", home)

    # Diagnostics

    def warn(
        self, message: str, line: int | None = None, severity: Severity = Severity.WARNING, file: str = ""
    ) -> None:
        where = file or self.scope.file
        self.sink.append(Diagnostic(where, self.line if line is None else line, message, severity))

    # Running files

    def initial_env(self, fs: Filesystem, path: str) -> Env:
        directory = path.rsplit("/", 1)[0] or "/"
        env = Env()
        for name in FEATURES:
            env.set(name, "y")
        env.set("root", fs.name)
        env.set("prefix", f"({fs.name}){directory}")
        env.set("config_directory", f"({fs.name}){directory}")
        env.set("config_file", f"({fs.name}){path}")
        env.set("cmdpath", f"({fs.name}){directory}")
        env.set("grub_platform", self.firmware)
        env.set("grub_cpu", self.cpu)
        env.set("menuentry_id_option", "--id")
        env.set("pager", "")
        for name, value in self.network.env if self.network is not None else ():
            env.set(name, value)
        return env

    def run_config(self, fs: Filesystem, path: str) -> Scope:
        """Evaluate the config `path` of `fs` as GRUB does at start-up; returns the scope whose menu is shown."""
        self.scope = Scope(self.initial_env(fs, path), [], path, fs)
        self.steps = 0
        self.step_limit = self.limits.steps
        try:
            self.run_file(fs, path)
        except MenuShown as shown:
            return shown.scope
        except GrubLimitError as exc:
            self.warn(f"evaluation stopped: {exc.message}", exc.line or None, Severity.ERROR, exc.file)
        return self.scope

    def read_script(self, fs: Filesystem, path: str) -> Script:
        key = (fs.name, path)
        script = self.scripts.get(key)
        if script is not None:
            self.count_step(1 + script.size // SOURCE_BYTES_PER_STEP)
            self.read.append(key)
            return script
        try:
            text = read_config(fs, path)
        except OSError as exc:
            raise GrubCommandError(f"cannot read {fs.name}:{path}: {os_problem(exc)}") from exc
        # Lexing and parsing are linear in the text: charge its size before paying for it.
        self.count_step(1 + len(text) // SOURCE_BYTES_PER_STEP)
        self.read.append(key)
        script = parse(text, path)
        self.scripts[key] = script
        self.sink.extend(script.diagnostics)
        return script

    def run_file(self, fs: Filesystem, path: str) -> None:
        """Run a script in the current scope (GRUB `source`); the caller handles control-flow exceptions."""
        script = self.read_script(fs, path)
        saved = (self.scope.file, self.scope.fs, self.line)
        self.scope.file, self.scope.fs = path, fs
        try:
            self.run_block(script.body)
        except (ExitScript, ReturnFromFunction):
            pass
        except BreakLoop:
            self.warn("'break' or 'continue' outside a loop")
        finally:
            self.scope.file, self.scope.fs, self.line = saved

    def source(self, fs: Filesystem, path: str) -> None:
        if self.source_depth >= self.limits.source_depth:
            raise GrubCommandError(f"source/configfile nested deeper than {self.limits.source_depth}; {path} not read")
        self.source_depth += 1
        try:
            self.run_file(fs, path)
        finally:
            self.source_depth -= 1

    def configfile(self, fs: Filesystem, path: str) -> None:
        if self.scope.capture is not None:
            # Inside an entry body this opens another menu: the loader lists that menu as the entry's submenu.
            self.scope.capture.other_loader = "configfile"
            return
        outer = self.scope
        self.scope = Scope(outer.env.copy(), [], path, fs)
        try:
            self.source(fs, path)
            if self.scope.menu:
                raise MenuShown(self.scope)
        finally:
            self.scope = outer

    # Evaluation

    def enter(self) -> None:
        self.nesting += 1
        if self.nesting > self.limits.nesting:
            self.nesting -= 1
            raise GrubLimitError(f"nesting deeper than {self.limits.nesting}", self.scope.file, self.line)

    def run_block(self, block: Block) -> None:
        for node in block:
            self.run_node(node)

    def run_node(self, node: Node) -> None:
        if isinstance(node, Command):
            self.run_command(node)
            return
        self.line = node.line
        if isinstance(node, FunctionDef):
            self.scope.env.functions[node.name] = node
            self.status = 0
            return
        if isinstance(node, MenuDef):
            self.count_step()
            self.run_menudef(node)
            return
        self.count_step()
        self.enter()
        try:
            if isinstance(node, If):
                self.run_if(node)
            elif isinstance(node, Loop):
                self.run_loop(node)
            else:
                self.run_for(node)
        finally:
            self.nesting -= 1

    def run_if(self, node: If) -> None:
        for cond, body in node.branches:
            self.run_block(cond)
            if self.status == 0:
                self.run_block(body)
                return
        if node.orelse is not None:
            self.run_block(node.orelse)
        else:
            self.status = 0

    def loop_guard(self, iterations: int, line: int) -> bool:
        if iterations > self.limits.iterations:
            self.warn(f"loop stopped after {self.limits.iterations} iterations", line)
            return False
        return True

    def run_loop(self, node: Loop) -> None:
        iterations = 0
        status = 0
        while True:
            self.run_block(node.condition)
            if (self.status == 0) == node.until:
                break
            iterations += 1
            if not self.loop_guard(iterations, node.line):
                break
            self.count_step()  # an iteration costs a step even when its body runs no command
            broke = self.run_loop_body(node.body)
            status = self.status
            if broke:
                break
        self.status = status

    def run_for(self, node: For) -> None:
        items = self.expand_all(node.items)
        self.status = 0
        for iterations, value in enumerate(items, 1):
            if not self.loop_guard(iterations, node.line):
                break
            self.count_step()  # nested loops multiply: every iteration of every level is paid for
            self.scope.env.set(node.variable, value)
            if self.run_loop_body(node.body):
                break

    def run_loop_body(self, body: Block) -> bool:
        """One iteration; True when `break` ends this loop. `break N`/`continue N` for outer loops propagate."""
        try:
            self.run_block(body)
        except ContinueLoop as c:
            if c.levels > 1:
                raise ContinueLoop(c.levels - 1) from None
        except BreakLoop as b:
            if b.levels > 1:
                raise BreakLoop(b.levels - 1) from None
            return True
        return False

    def count_step(self, steps: int = 1) -> None:
        """Pay for work: against this phase's limit (config or one entry body) and the config's one budget."""
        self.steps += steps
        if self.steps > self.step_limit:
            raise GrubLimitError(
                f"more than {self.step_limit} steps (commands, loop iterations, expansions) run",
                self.scope.file,
                self.line,
            )
        try:
            self.budget.charge(steps)
        except BudgetExceeded as exc:
            raise GrubLimitError(exc.message, self.scope.file, self.line) from None

    def run_command(self, node: Command) -> None:
        self.line = node.line
        self.count_step()
        if not node.words:
            return
        first = node.words[0]
        lead = first.parts[0] if first.parts else None
        if lead is not None and lead.kind is PartKind.LITERAL and not lead.quoted:
            m = _ASSIGNMENT.match(lead.text)
            if m:
                rest = Word((Part(PartKind.LITERAL, lead.text[m.end() :], True), *first.parts[1:]), 0)
                self.scope.env.set(m.group(1), "".join(self.expand(rest, split=False)))
                self.status = 0
                return
        argv = self.expand_all(node.words)
        if not argv:
            self.status = 0
            return
        self.status = self.call(argv[0], argv[1:])

    def expand_all(self, words: tuple[Word, ...]) -> list[str]:
        argv: list[str] = []
        size = 0
        for word in words:
            fields = self.expand(word)
            size += sum(len(f) for f in fields)
            if size > 4 * MAX_VALUE:
                raise GrubLimitError(f"command line longer than {4 * MAX_VALUE} characters", self.scope.file, self.line)
            argv.extend(fields)
        return argv

    def call(self, name: str, args: list[str]) -> int:
        builtin = self.builtins.get(name)
        if builtin is not None:
            try:
                return builtin(self, args)
            except GrubCommandError as exc:
                self.warn(f"{name}: {exc.message}")
                return 1
            except OSError as exc:  # an unreadable file or directory fails the command, as in GRUB
                # Name the path the lookup failed on (a component over 255 bytes, an I/O error), shortened.
                what = f" {shown(self.config_path(str(exc.filename)))}:" if exc.filename else ""
                self.warn(f"{name}:{what} {os_problem(exc)}")
                return 1
        fn = self.scope.env.functions.get(name)
        if fn is not None:
            return self.call_function(fn, args)
        if name in self.ignored:
            return 0
        self.warn(f"unknown command '{name}' (ignored)")
        return 1

    def config_path(self, host: str) -> str:
        """A host path (an OSError's file name) as the config names it, `NAME:/path`, when it is on a known
        filesystem: diagnostics never show where the daemon mounted a disk."""
        for fs in (self.scope.fs, *self.devices.values()):
            root = str(fs.root).rstrip("/")
            if host == root or host.startswith(root + "/"):
                return f"{fs.name}:{host[len(root) :] or '/'}"
        return host

    def call_function(self, fn: FunctionDef, args: list[str]) -> int:
        self.enter()
        saved = self.scope.positional
        self.scope.positional = list(args)
        try:
            self.run_block(fn.body)
        except ReturnFromFunction as r:
            self.status = r.status
        finally:
            self.scope.positional = saved
            self.nesting -= 1
        return self.status

    def run_snippet(self, text: str, what: str) -> None:
        """Run script text in the current scope (`eval`); syntax errors are reported against the current line."""
        self.count_step(1 + len(text) // SOURCE_BYTES_PER_STEP)
        script = parse(text, self.scope.file)
        for d in script.diagnostics:
            self.warn(f"{what}: {d.message}")
        self.enter()
        try:
            self.run_block(script.body)
        finally:
            self.nesting -= 1

    # Words

    def variable(self, name: str) -> list[str] | str:
        positional = self.scope.positional
        if name == "?":
            return str(self.status)
        if name == "#":
            return str(len(positional))
        if name in ("@", "*"):
            return list(positional)
        if name.isdigit():
            index = int(name)
            return positional[index - 1] if 0 < index <= len(positional) else ""
        if name == "RANDOM":
            return "4"  # deterministic: the scan must give the same answer every time
        return self.scope.env.get(name)

    def expand(self, word: Word, *, split: bool = True) -> list[str]:
        """The fields a word expands to: unquoted variables split on blanks, quoted text kept whole."""
        fields: list[str] = []
        current: str | None = None
        for part in word.parts:
            if part.kind is PartKind.LITERAL:
                current = (current or "") + part.text
                continue
            value = self.variable(part.text)
            # An expansion costs by its size: `$x` of a 256 KiB value in a loop is real work.
            self.count_step(1 + (len(value) if isinstance(value, str) else len(value) + sum(map(len, value))) // 256)
            if isinstance(value, list):
                if part.quoted or not split:
                    current = (current or "") + " ".join(value)
                    continue
                value = " ".join(value)
            if part.quoted or not split:
                current = (current or "") + value
                continue
            if not value:
                continue
            if value[0].isspace() and current is not None:
                fields.append(current)
                current = None
            for k, piece in enumerate(value.split()):
                if k == 0:
                    current = (current or "") + piece
                else:
                    if current is not None:
                        fields.append(current)
                    current = piece
            if value[-1].isspace() and current is not None:
                fields.append(current)
                current = None
        if current is not None:
            fields.append(current)
        return fields

    # Menus

    def run_menudef(self, node: MenuDef) -> None:
        args = self.expand_all(node.words)
        entry_id: str | None = None
        positional: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            i += 1
            if arg == "--":
                positional.extend(args[i:])
                break
            name, eq, value = arg.partition("=")
            if name in ("--class", "--users", "--hotkey", "--id", "--source"):
                if not eq:
                    if i >= len(args):
                        self.warn(f"{node.kind}: option {name} needs a value", node.line)
                        break
                    value = args[i]
                    i += 1
                if name == "--id":
                    entry_id = value
            elif arg == "--unrestricted":
                pass
            elif arg.startswith("--") and len(arg) > 2:
                self.warn(f"{node.kind}: unknown option {arg} ignored", node.line)
            else:
                positional.append(arg)
        if not positional:
            self.warn(f"{node.kind} without a title; skipped", node.line)
            self.status = 1
            return
        if len(self.scope.menu) >= self.limits.menu_size:
            raise GrubLimitError(f"more than {self.limits.menu_size} menu entries", self.scope.file, node.line)
        self.scope.menu.append(
            MenuItem(
                title=positional[0],
                args=tuple(positional),
                body=node.body,
                file=self.scope.file,
                fs=self.scope.fs,
                line=node.line,
                id=entry_id,
                hidden=node.kind == "hiddenentry",
                submenu=node.kind == "submenu",
            )
        )
        self.status = 0

    def run_item(self, item: MenuItem, env: Env, capture: BootCapture | None) -> Scope:
        """Run an entry or submenu body as GRUB does when it is chosen: a copy of `env`, the entry's arguments as
        positional parameters, `chosen` set. Diagnostics go to the current sink."""
        outer = self.scope
        self.steps = 0
        self.step_limit = self.limits.entry_steps
        self.nesting = 0
        self.source_depth = 0
        scope = Scope(Env(), [], item.file, item.fs, list(item.args), capture)
        try:
            # The copy of the environment is work too: a config that set 50,000 variables pays per entry.
            self.count_step(1 + (len(env.variables) + len(env.functions)) // 64)
            scope.env = env.copy()
            scope.env.set("chosen", item.title)
            self.scope = scope
            self.run_block(item.body)
        except (ExitScript, ReturnFromFunction):
            pass
        except BreakLoop:
            self.warn("'break' or 'continue' outside a loop")
        except MenuShown as shown:
            scope = shown.scope  # a submenu whose body runs `configfile` shows that file's menu
        except GrubLimitError as exc:
            self.warn(f"evaluation stopped: {exc.message}", exc.line or None, Severity.ERROR, exc.file)
        except GrubError as exc:
            self.warn(exc.message, exc.line or None, Severity.ERROR, exc.file)
        finally:
            self.scope = outer
        return scope

    # Devices and files

    def resolve(self, text: str) -> FileRef:
        """The filesystem and path a GRUB file name refers to: `(dev)/path`, `($root)/path` (already expanded)
        or `/path` on `$root`. A device we cannot identify is taken to be the config's own filesystem."""
        env = self.scope.env
        m = _DEVICE_PREFIX.match(text)
        if m:
            device, path = m.group(1), m.group(2)
        elif text.startswith("("):
            raise GrubCommandError(f"invalid device in {text!r}")
        else:
            device, path = env.get("root"), text
        device = device.strip("()")
        path = "/" + path.lstrip("/")
        if self.network is not None:
            local = self.network.path(device, path)
            if local is not None:
                return FileRef(self.home, local)
        # A device taken from a variable that a failed `search` should have set (`$root`, or `($bootpart)` left
        # empty) is unresolved: the filesystem may appear later (the daemon retries when devices come).
        unresolved = next((spec for var, spec in env.unresolved.items() if env.get(var).strip("()") == device), None)
        return FileRef(self.device(device), path, unresolved)

    def bring(self, ref: FileRef) -> None:
        """A script `source`/`configfile` names on a network device is fetched before it is read (GRUB reads it
        over TFTP/HTTP); other files of the network tree are only there once fetched (`[ -f ]` sees no more)."""
        if self.network is not None and ref.fs is self.home and not ref.fs.is_file(ref.path):
            self.network.fetch(ref.path)

    def device(self, name: str) -> Filesystem:
        """The filesystem a GRUB device name stands for: one `search` found, or one named by its UUID (how
        Petitboot's configs name devices); GRUB's own names (`hd0,gpt2`, `lvm/vg-root`) are the config's own."""
        fs = self.devices.get(name)
        if fs is None and name:
            fs = self.find("fs-uuid", name)
            if fs is not None:
                self.devices[name] = fs
        return fs or self.scope.fs
