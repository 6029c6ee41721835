"""GRUB commands, one function each, in a table: what they do to the environment, the menu and the boot capture.

Follows the GRUB 2.06 manual's command list. Commands that only affect the screen, modules or hardware (`insmod`,
`loadfont`, `terminal_output`, ...) succeed without effect; loaders other than Linux (`chainloader`, `multiboot`, ...)
mark the entry as not booting Linux. `save_env` never writes: it records what GRUB would write (the variables' values
at that moment) for discovery.loaderwrites to write when the entry is booted.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from discovery.entry import EnvSave
from discovery.fs import SearchKind
from discovery.grub import grubenv
from discovery.grub.errors import GrubCommandError
from discovery.grub.evaluator import BootCapture, BreakLoop, ContinueLoop, ExitScript, ReturnFromFunction
from discovery.loaders import file_problem, missing, shown

if TYPE_CHECKING:
    from discovery.grub.evaluator import Builtin, FileRef, Interpreter


MAX_SAVES = 64  # save_env variables recorded per config or entry: a 1 KiB block holds few more


def _capture(it: Interpreter) -> BootCapture | None:
    return it.scope.capture


def cmd_true(it: Interpreter, args: list[str]) -> int:
    return 0


def cmd_false(it: Interpreter, args: list[str]) -> int:
    return 1


def cmd_set(it: Interpreter, args: list[str]) -> int:
    if not args:
        return 0
    # Only the first argument counts, as in GRUB's corecmd.c: `set x=a b` sets x to "a".
    name, eq, value = args[0].partition("=")
    if not name or not eq:
        raise GrubCommandError(f"not an assignment: {args[0]!r}")
    it.scope.env.set(name, value)
    return 0


def cmd_unset(it: Interpreter, args: list[str]) -> int:
    for name in args:
        it.scope.env.unset(name)
    return 0


def cmd_export(it: Interpreter, args: list[str]) -> int:
    it.scope.env.exported.update(args)
    return 0


def cmd_setparams(it: Interpreter, args: list[str]) -> int:
    it.scope.positional = list(args)
    return 0


def cmd_shift(it: Interpreter, args: list[str]) -> int:
    count = _int(args[0]) if args else 1
    if count > len(it.scope.positional):
        return 1
    it.scope.positional = it.scope.positional[count:]
    return 0


def cmd_break(it: Interpreter, args: list[str]) -> int:
    raise BreakLoop(max(1, _int(args[0])) if args else 1)


def cmd_continue(it: Interpreter, args: list[str]) -> int:
    raise ContinueLoop(max(1, _int(args[0])) if args else 1)


def cmd_return(it: Interpreter, args: list[str]) -> int:
    raise ReturnFromFunction(_int(args[0]) if args else it.status)


def cmd_exit(it: Interpreter, args: list[str]) -> int:
    raise ExitScript()


def cmd_eval(it: Interpreter, args: list[str]) -> int:
    it.run_snippet(" ".join(args), "eval")
    return it.status


def cmd_echo(it: Interpreter, args: list[str]) -> int:
    return 0


# test / [


def _int(text: str) -> int:
    # grub_strtol semantics as GRUB's test uses them: leading digits count, anything else is 0.
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else 0


_NUMERIC = {
    "-eq": lambda a, b: a == b,
    "-ne": lambda a, b: a != b,
    "-lt": lambda a, b: a < b,
    "-le": lambda a, b: a <= b,
    "-gt": lambda a, b: a > b,
    "-ge": lambda a, b: a >= b,
}
_STRING = {
    "=": lambda a, b: a == b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
}
_UNARY_STRING = {"-z": lambda a: not a, "-n": bool}
_FILE_TESTS = ("-e", "-f", "-d", "-s")


class _Test:
    """GRUB's `test` expression grammar: `!`, `-a` binds tighter than `-o`, parentheses, unary and binary tests."""

    def __init__(self, it: Interpreter, args: list[str]) -> None:
        self.it = it
        self.args = args
        self.pos = 0

    def more(self) -> bool:
        return self.pos < len(self.args)

    def run(self) -> bool:
        if not self.args:
            return False
        value = self.or_()
        if self.more():
            raise GrubCommandError(f"test: unexpected '{self.args[self.pos]}'")
        return value

    def or_(self) -> bool:
        value = self.and_()
        while self.more() and self.args[self.pos] == "-o":
            self.pos += 1
            right = self.and_()
            value = value or right
        return value

    def and_(self) -> bool:
        value = self.not_()
        while self.more() and self.args[self.pos] == "-a":
            self.pos += 1
            right = self.not_()
            value = value and right
        return value

    def not_(self) -> bool:
        if self.more() and self.args[self.pos] == "!" and self.pos + 1 < len(self.args):
            self.pos += 1
            return not self.not_()
        return self.primary()

    def primary(self) -> bool:
        args, pos = self.args, self.pos
        if pos >= len(args):
            raise GrubCommandError("test: expression expected")
        if pos + 2 < len(args):
            op = args[pos + 1]
            if op in _STRING:
                self.pos += 3
                return bool(_STRING[op](args[pos], args[pos + 2]))
            if op in _NUMERIC:
                self.pos += 3
                return bool(_NUMERIC[op](_int(args[pos]), _int(args[pos + 2])))
        if args[pos] == "(":
            self.pos += 1
            value = self.or_()
            if not self.more() or self.args[self.pos] != ")":
                raise GrubCommandError("test: ')' expected")
            self.pos += 1
            return value
        if pos + 1 < len(args):
            op = args[pos]
            if op in _UNARY_STRING:
                self.pos += 2
                return bool(_UNARY_STRING[op](args[pos + 1]))
            if op in _FILE_TESTS:
                self.pos += 2
                return self.file_test(op, args[pos + 1])
        self.pos += 1
        return bool(args[pos])

    def file_test(self, op: str, name: str) -> bool:
        if not name:
            return False
        ref = self.it.resolve(name)
        if ref.unresolved:
            return False
        host = ref.fs.host_path(ref.path)
        if host is None:
            return False
        if op == "-f":
            return host.is_file()
        if op == "-d":
            return host.is_dir()
        if op == "-s":
            # GRUB opens the name as a file (grub_file_open): a directory opens nothing.
            return host.is_file() and host.stat().st_size > 0
        return True


def cmd_test(it: Interpreter, args: list[str]) -> int:
    try:
        return 0 if _Test(it, args).run() else 1
    except GrubCommandError:
        return 1


def cmd_bracket(it: Interpreter, args: list[str]) -> int:
    if not args or args[-1] != "]":
        raise GrubCommandError("missing ']'")
    return cmd_test(it, args[:-1])


# Files, environment block, search


def cmd_source(it: Interpreter, args: list[str]) -> int:
    if not args:
        raise GrubCommandError("file name expected")
    ref = it.resolve(args[0])
    it.bring(ref)
    if not ref.fs.is_file(ref.path):
        raise GrubCommandError(f"file {ref.fs.name}:{ref.path} not found")
    it.source(ref.fs, ref.path)
    return it.status


def cmd_configfile(it: Interpreter, args: list[str]) -> int:
    if not args:
        raise GrubCommandError("file name expected")
    ref = it.resolve(args[0])
    it.bring(ref)
    if not ref.fs.is_file(ref.path):
        raise GrubCommandError(f"file {ref.fs.name}:{ref.path} not found")
    it.configfile(ref.fs, ref.path)
    return 0


def cmd_normal(it: Interpreter, args: list[str]) -> int:
    # `normal FILE` enters normal mode with FILE as its config: the same new menu as `configfile FILE`.
    return cmd_configfile(it, args) if args else 0


def _env_file_args(args: list[str], ignored: frozenset[str] = frozenset()) -> tuple[str | None, list[str]]:
    """`-f FILE`/`--file=FILE` and the variable names of load_env/save_env (loadenv.c), `ignored` flags dropped."""
    name: str | None = None
    names: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg in ("-f", "--file"):
            if i >= len(args):
                raise GrubCommandError("-f needs a file name")
            name = args[i]
            i += 1
        elif arg.startswith("--file="):
            name = arg.partition("=")[2]
        elif arg not in ignored:
            names.append(arg)
    return name, names


def cmd_load_env(it: Interpreter, args: list[str]) -> int:
    name, wanted = _env_file_args(args, frozenset({"-s", "--skip-sig"}))
    if name is None:
        name = it.scope.env.get("prefix") + "/grubenv"
    ref = it.resolve(name)
    try:
        data = ref.fs.read_bytes(ref.path)
    except OSError as exc:
        raise GrubCommandError(f"cannot read {ref.fs.name}:{ref.path}") from exc
    for key, value in grubenv.parse(data).items():
        if not wanted or key in wanted:
            it.scope.env.set(key, value)
    return 0


def cmd_save_env(it: Interpreter, args: list[str]) -> int:
    # Scanning must not change the disks: record the write (loadenv.c: an unset variable is deleted from the block).
    name, names = _env_file_args(args)
    if not names:
        raise GrubCommandError("no variable is specified")
    ref = it.resolve(name if name is not None else it.scope.env.get("prefix") + "/grubenv")
    if ref.unresolved:
        raise GrubCommandError(f"{ref.path}: its device ({ref.unresolved}) is not present")
    capture = _capture(it)
    saves = capture.saves if capture is not None else it.saves
    env = it.scope.env.variables
    for var in names:
        if len(saves) >= MAX_SAVES:
            raise GrubCommandError(f"more than {MAX_SAVES} variables saved; {var} not recorded")
        saves.append(EnvSave(ref.fs.name, ref.path, var, env.get(var)))
    return 0


_SEARCH_KINDS = {
    "--fs-uuid": SearchKind.FS_UUID,
    "-u": SearchKind.FS_UUID,
    "--label": SearchKind.LABEL,
    "-l": SearchKind.LABEL,
    "--file": SearchKind.FILE,
    "-f": SearchKind.FILE,
    "--part-uuid": SearchKind.PART_UUID,
}


def _search(it: Interpreter, kind: SearchKind, value: str, variable: str | None) -> int:
    fs = it.find(kind.value, value)
    if fs is None:
        spec = f"{kind.value}={value}"
        it.warn(f"search: no filesystem with {kind.value} {value!r}")
        if spec not in it.unresolved:
            it.unresolved.append(spec)
        if variable:
            it.scope.env.unresolved[variable] = spec
        return 1
    it.devices.setdefault(fs.name, fs)
    if variable:
        it.scope.env.set(variable, fs.name)
    return 0


def cmd_search(it: Interpreter, args: list[str]) -> int:
    kind: SearchKind | None = None
    variable: str | None = None
    names: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        opt, eq, value = arg.partition("=")
        if arg in _SEARCH_KINDS:
            kind = _SEARCH_KINDS[arg]
        elif opt in ("--set", "-s"):
            variable = value if eq and value else "root"
        elif opt.startswith("--hint"):
            if not eq:
                i += 1  # the hint is the next argument
        elif arg in ("--no-floppy", "-n", "--efidisk-only"):
            continue
        elif arg.startswith("-") and len(arg) > 1:
            it.warn(f"search: unknown option {arg} ignored")
        else:
            names.append(arg)
    if not names:
        raise GrubCommandError("one argument expected")
    if kind is None:
        # search_wrap.c (GRUB 2.06 and rhboot's) refuses a search without --file/--label/--fs-uuid, so `$root`
        # stays where it was (grub-emu agrees). Petitboot takes the word as a UUID; GRUB boots from the old `$root`.
        raise GrubCommandError("unspecified search type")
    return _search(it, kind, names[0], variable)


def _search_form(kind: SearchKind) -> Builtin:
    def run(it: Interpreter, args: list[str]) -> int:
        if not args:
            raise GrubCommandError("one argument expected")
        return _search(it, kind, args[0], args[1] if len(args) > 1 else "root")

    return run


def cmd_probe(it: Interpreter, args: list[str]) -> int:
    variable: str | None = None
    what = ""
    device = ""
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        opt, eq, value = arg.partition("=")
        if opt in ("--set", "-s"):
            if eq:
                variable = value
            elif i < len(args):
                variable = args[i]
                i += 1
        elif arg in ("-u", "--fs-uuid", "-l", "--label", "-f", "--fs", "-p", "--partuuid", "-d", "--driver"):
            what = arg
        else:
            device = arg
    fs = it.devices.get(device.strip("()"), it.scope.fs)
    values = {"-u": fs.uuid, "--fs-uuid": fs.uuid, "-l": fs.label, "--label": fs.label, "-f": fs.fstype}
    values.update({"--fs": fs.fstype, "-p": fs.partuuid, "--partuuid": fs.partuuid})
    result = values.get(what, "")
    if not result:
        return 1
    if variable:
        it.scope.env.set(variable, result)
    return 0


# A backtracking matcher (Python's, and GRUB's gnulib regex for back-references) can take exponential time, and no
# step budget or deadline can interrupt it: patterns that may are refused (status 1, a warning), and subjects are
# short. Real configs match device names and paths with one or two repetitions.
REGEXP_MAX_SUBJECT = 4096
REGEXP_MAX_UNBOUNDED = 2


def regexp_risk(pattern: str) -> str | None:
    """Why matching `pattern` might not finish in reasonable time, or None: a repeated group that itself repeats or
    alternates (`(a+)+`, `(a|aa)*`), a back-reference, or more than REGEXP_MAX_UNBOUNDED unbounded repetitions."""
    groups: list[bool] = []  # per open group: holds a repetition or an alternation
    last_group_varies = False
    unbounded = 0
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        closed_varies, last_group_varies = last_group_varies, False
        if c == "\\":
            if i + 1 < n and pattern[i + 1].isdigit():
                return "a back-reference"
            i += 2
            continue
        if c == "[":
            j = i + 1
            j += j < n and pattern[j] == "^"
            j += j < n and pattern[j] == "]"
            while j < n and pattern[j] != "]":
                j += 1 + (pattern[j] == "\\")
            i = j + 1
            continue
        if c == "(":
            groups.append(False)
        elif c == ")":
            varies = groups.pop() if groups else False
            if groups and varies:
                groups[-1] = True
            last_group_varies = varies
        elif c == "|":
            if groups:
                groups[-1] = True
        elif c in "*+?{":
            end = pattern.find("}", i) if c == "{" else i
            if c == "{" and end < 0:
                i += 1
                continue
            if closed_varies:
                return "a repeated group that itself repeats"
            if groups:
                groups[-1] = True
            if c in "*+" or (c == "{" and pattern[i:end].endswith(",")):
                unbounded += 1
            i = end + 1
            continue
        i += 1
    if unbounded > REGEXP_MAX_UNBOUNDED:
        return f"more than {REGEXP_MAX_UNBOUNDED} unbounded repetitions"
    return None


def cmd_regexp(it: Interpreter, args: list[str]) -> int:
    sets: list[tuple[int, str]] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        opt, eq, value = arg.partition("=")
        if opt in ("--set", "-s"):
            if not eq:
                if i >= len(args):
                    raise GrubCommandError("--set needs a variable")
                value = args[i]
                i += 1
            group, colon, name = value.partition(":")
            sets.append((int(group), name) if colon and group.isdigit() else (1, value))
        else:
            rest.append(arg)
    if len(rest) != 2:
        raise GrubCommandError("two arguments expected")
    risk = regexp_risk(rest[0])
    if risk is not None:
        raise GrubCommandError(f"pattern {rest[0][:80]!r} not evaluated: {risk} may take exponential time")
    if len(rest[1]) > REGEXP_MAX_SUBJECT:
        raise GrubCommandError(f"subject longer than {REGEXP_MAX_SUBJECT} characters not matched")
    try:
        m = re.search(rest[0], rest[1])
    except (re.error, RecursionError, OverflowError):
        raise GrubCommandError(f"invalid regular expression {rest[0]!r}") from None
    if not m:
        return 1
    for number, name in sets:
        if number <= (m.re.groups or 0):
            it.scope.env.set(name, m.group(number) or "")
    return 0


# Loading


def cmd_linux(it: Interpreter, args: list[str]) -> int:
    capture = _capture(it)
    if not args:
        raise GrubCommandError("filename expected")
    if capture is None:
        return 0  # a kernel loaded while reading the config is not a menu entry
    kernel = it.resolve(args[0])
    if kernel.path == "/" and not args[0].rstrip(")").endswith("/"):
        raise GrubCommandError(f"no kernel file name in {args[0]!r}")
    capture.kernel = kernel
    capture.image = args[0]
    capture.args = list(args[1:])
    capture.initrds = []  # loading a kernel drops earlier initrds, as GRUB's loader does
    capture.devicetree = None
    capture.other_loader = None
    _warn_unusable(it, "kernel", kernel)
    return 0


def _warn_unusable(it: Interpreter, what: str, ref: FileRef) -> None:
    """Warn, naming the file, when a kernel or initrd GRUB would load is missing or unreadable on its device."""
    problem = None if ref.unresolved else file_problem(ref.fs, ref.path)
    if problem == "not found":
        it.warn(f"{what} {shown(ref.path)} not found on {ref.fs.name}")
    elif problem is not None:
        it.warn(missing(what, ref.path, problem))


def cmd_initrd(it: Interpreter, args: list[str]) -> int:
    capture = _capture(it)
    if not args:
        raise GrubCommandError("filename expected")
    if capture is None:
        return 0
    if capture.kernel is None:
        it.warn("initrd before any linux command")
    # Every file of every initrd command is kept, in order (the kernel concatenates them).
    for name in args:
        if name.startswith("--"):
            continue
        ref = it.resolve(name)
        capture.initrds.append(ref)
        _warn_unusable(it, "initrd", ref)
    return 0


def cmd_devicetree(it: Interpreter, args: list[str]) -> int:
    capture = _capture(it)
    if not args:
        raise GrubCommandError("filename expected")
    if capture is not None:
        capture.devicetree = it.resolve(args[0])
    return 0


def _other_loader(name: str) -> Builtin:
    def run(it: Interpreter, args: list[str]) -> int:
        capture = _capture(it)
        if capture is not None:
            capture.other_loader = name
            capture.kernel = None
        return 0

    return run


def cmd_keystatus(it: Interpreter, args: list[str]) -> int:
    # Modifier state is supported, and nobody holds a key during a scan (Ubuntu's hidden-menu code asks).
    return 1 if any(a.startswith("-") for a in args) else 0


def cmd_hwmatch(it: Interpreter, args: list[str]) -> int:
    # Matching PCI devices against a blacklist: report the common case, no blacklisted hardware.
    it.scope.env.set("match", "0")
    return 0


def cmd_blscfg(it: Interpreter, args: list[str]) -> int:
    from discovery.grub.blscfg import expand

    return expand(it, args)


BUILTINS: dict[str, Builtin] = {
    "true": cmd_true,
    "false": cmd_false,
    "set": cmd_set,
    "unset": cmd_unset,
    "export": cmd_export,
    "setparams": cmd_setparams,
    "shift": cmd_shift,
    "break": cmd_break,
    "continue": cmd_continue,
    "return": cmd_return,
    "exit": cmd_exit,
    "eval": cmd_eval,
    "echo": cmd_echo,
    "test": cmd_test,
    "[": cmd_bracket,
    "source": cmd_source,
    ".": cmd_source,
    "configfile": cmd_configfile,
    "normal": cmd_normal,
    "load_env": cmd_load_env,
    "save_env": cmd_save_env,
    "search": cmd_search,
    "search.fs_uuid": _search_form(SearchKind.FS_UUID),
    "search.fs_label": _search_form(SearchKind.LABEL),
    "search.file": _search_form(SearchKind.FILE),
    "probe": cmd_probe,
    "regexp": cmd_regexp,
    "linux": cmd_linux,
    "linux16": cmd_linux,
    "linuxefi": cmd_linux,
    "initrd": cmd_initrd,
    "initrd16": cmd_initrd,
    "initrdefi": cmd_initrd,
    "devicetree": cmd_devicetree,
    "blscfg": cmd_blscfg,
    "keystatus": cmd_keystatus,
    "hwmatch": cmd_hwmatch,
    **{
        name: _other_loader(name)
        for name in (
            "chainloader",
            "multiboot",
            "multiboot2",
            "kfreebsd",
            "knetbsd",
            "kopenbsd",
            "ntldr",
            "appleloader",
            "xnu_kernel",
            "xnu_kernel64",
            "freedos",
            "plan9",
            "truecrypt",
        )
    },
}

# Real GRUB commands with no effect on which entries exist or what they boot.
IGNORED: frozenset[str] = frozenset(
    {
        "insmod",
        "rmmod",
        "lsmod",
        "loadfont",
        "font",
        "terminal_output",
        "terminal_input",
        "terminal",
        "terminfo",
        "background_image",
        "background_color",
        "fwsetup",
        "gfxpayload",
        "sleep",
        "cat",
        "ls",
        "lspci",
        "lsfonts",
        "play",
        "clear",
        "videoinfo",
        "videotest",
        "serial",
        "cpuid",
        "drivemap",
        "loopback",
        "set_background_image",
        "boot",
        "reboot",
        "halt",
        "help",
        "tr",
        "password",
        "password_pbkdf2",
        "authenticate",
        "nativedisk",
        "efi_gop",
        "efi_uga",
        "badram",
        "cutmem",
        "acpi",
        "module",
        "module2",
        "mkrlimit",
        "smbios",
        "net_bootp",
        "net_dhcp",
        "net_ls_addr",
        "gettext",
        "usb",
        "parttool",
        "cryptomount",
        "lvm",
        "gptsync",
        "read",
        "vbeinfo",
        "tpm2_key_protector_init",
        "key_protector",
        "init_keystore",
        "fwsetup_check",
        "export_env",
        "rescue_shell",
        "normal_exit",
        "menu_color_normal",
        "menu_color_highlight",
        "load_video",
    }
)
