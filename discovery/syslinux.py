"""syslinux, extlinux, isolinux and pxelinux configs (and U-Boot's extlinux.conf dialect), read as the loaders do.

Follows the syslinux configuration reference (doc/syslinux.txt, doc/menu.txt) as implemented by ldlinux and
menu.c32/vesamenu.c32, plus U-Boot's `doc/README.pxe` keys (FDT, DEVICETREE, FDTDIR). Behaviour kept on purpose:

- Parser state is shared across INCLUDEs, as if the files were concatenated (a LABEL may continue in an include).
- Relative paths (KERNEL, INITRD, FDT, INCLUDE) resolve against the working directory, which is the directory of the
  config file the loader started from, not that of an included file. `::path` (pxelinux TFTP) is absolute, and an
  `http://host/path` or `tftp://host/path` URL (lpxelinux) is the file `/http/host/path` of the network device's tree.
- The command line is the label's APPEND (else the global APPEND in force when the label ends; `APPEND -`: none),
  preceded by any arguments on the KERNEL line, exactly as written; an `initrd=` option stays in it, as syslinux passes
  it on (the kernel ignores it). Initrds come from the first `initrd=` of the command line the kernel receives
  (kernel.c): APPEND's when there is one, else INITRD's (comma list); U-Boot's dialect below differs.
- What the kernel receives (BootEntry.loader_args / loader_tail around the cmdline), from syslinux 6's ldlinux and
  menu.c32: `BOOT_IMAGE=<first word of KERNEL as written>` first (com32/elflink/ldlinux/kernel.c,
  new_linux_kernel), then the command line, then `initrd=<INITRD's text as written>` for an INITRD directive
  (com32/elflink/ldlinux/readconfig.c and com32/menu/readconfig.c, record(): after APPEND). A command line typed or
  named by DEFAULT/ONTIMEOUT gets BOOT_IMAGE only. Then the SYSAPPEND/IPAPPEND words of the label's mask (the global
  SYSAPPEND in force at LABEL, or the label's own; a DEFAULT command line gets the global mask's, ldlinux.c
  load_kernel): SYSUUID=, CPU=, SYSVENDOR= ... from this machine's firmware tables (discovery.dmi, which says how
  syslinux makes each), FSUUID= from the scanned filesystem; ip= and BOOTIF= exist under PXELINUX only, from its PXE
  stack, and are not added.
- U-Boot's dialect (boot/pxe_utils.c, checked against real U-Boot 2023.01 by tests/conformance/uboot.py): an
  extlinux.conf where U-Boot's distro boot looks for one (/extlinux/, /boot/extlinux/) with no ldlinux.sys or
  ldlinux.c32 beside it (syslinux's extlinux installs them there; U-Boot needs neither) is read as pxe_utils reads it.
  The kernel gets the label's APPEND and nothing else (no BOOT_IMAGE=, no initrd= word; a global APPEND is ignored);
  the KERNEL/LINUX line is one file name; the initrd is the first of INITRD or an `initrd=` in APPEND (up to the next
  space, one file; none when no space follows) in file order; a second INITRD, FDT or FDTDIR (or an INITRD after an
  APPEND with initrd=) ends the label at that line, so what follows it up to the next LABEL is lost (U-Boot reads the
  unread value as an unknown top-level command); DEFAULT and ONTIMEOUT are the same
  key, the last one wins and names a label by its whole text (the last label of that name), MENU DEFAULT counts only
  while no default is set, and with no such label the first label boots; MENU HIDE/BEGIN/END/SEPARATOR are ignored
  (every label is an item of one flat menu) and a MENU LABEL is shown as written (`^` included); without a top-level
  MENU line the default boots at once (timeout 0; PROMPT is ignored), with one after TIMEOUT rounded up to seconds.
- The default: ONTIMEOUT, else DEFAULT when it names a label (DEFAULT `*.c32` names the menu program, not a label;
  DEFAULT that names no label is a kernel command line), else the last MENU DEFAULT (descending into a submenu marked
  default), else the first item of the top menu. When that item does not boot Linux, nothing is marked default.
- Labels that do not boot Linux (COM32, LOCALBOOT, boot sectors, `.c32` modules, MENU EXIT/GOTO/QUIT/HELP,
  memdisk) and hidden (MENU HIDE), disabled and separator items are not entries. File order is kept.
- A CONFIG label (`CONFIG file [dir]`, or the directory as its APPEND, as config.c32 passes it) makes ldlinux drop
  the current config and start afresh with `file` (parser state is not carried over), working directory `dir` when
  given. The label contributes the entries of that config: see `_follow_config` for where they go. whichsys.c32
  (`-iso- cmd -sys- cmd -pxe- cmd`) is followed to the command for the medium being scanned.
- A submenu is shown in its parent by its MENU LABEL; until one is given, by its MENU BEGIN tag, which a MENU TITLE
  replaces (menu.c32's readconfig.c, "MENU TITLE -> MENU LABEL on submenu": the entry's name is renamed while it is
  still the tag). That name is what BootEntry.submenu holds.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from discovery.budget import Budget, BudgetExceeded
from discovery.dmi import FSUUID, Sysappend, mangled
from discovery.entry import BootEntry, Diagnostic, LoadResult, Severity, SourceFormat
from discovery.fs import Filesystem
from discovery.loaders import file_problem, missing, os_problem, read_config, shown

if TYPE_CHECKING:
    from collections.abc import Callable

    from discovery.loaders import LoadContext

CONFIG_PATHS = (
    "/boot/extlinux/extlinux.conf",
    "/extlinux/extlinux.conf",
    "/boot/extlinux.conf",
    "/extlinux.conf",
    "/boot/syslinux/syslinux.cfg",
    "/syslinux/syslinux.cfg",
    "/syslinux.cfg",
    "/isolinux/isolinux.cfg",
    "/boot/isolinux/isolinux.cfg",
)

# syslinux has no limit, it just runs out of memory; 16 is far deeper than any real menu tree.
MAX_INCLUDE_DEPTH = 16

# Steps (lines read, INCLUDEs, labels built) for one config and everything it INCLUDEs or CONFIGs: one budget, so a
# file that INCLUDEs another twice, which INCLUDEs another twice, ... 16 deep stays bounded. Real configs use < 1,000.
CONFIG_STEPS = 200_000

# CONFIG chains (a menu that loads a menu that loads...): real media use one or two hops; each file is also loaded at
# most once per scan, so this only bounds pathological trees.
MAX_CONFIG_DEPTH = 8

WHICHSYS = "whichsys.c32"
# Menu programs that, given a file name, draw the menu of that file (menu.c32/vesamenu.c32 main(): parse_configs).
MENU_MODULES = frozenset({"menu.c32", "vesamenu.c32"})
# CPU dispatchers: `ifcpu64.c32 long -- pae -- other` and `ifcpu.c32 [dry-run] feature... -- if_all -- otherwise`.
IFCPU64 = "ifcpu64.c32"
IFCPU = "ifcpu.c32"

# Submenus nested by MENU BEGIN (and tagged INCLUDEs): real menus nest two or three; building entries recurses per
# level, so deeper ones join their parent (with one warning) rather than exhaust the stack.
MAX_MENU_DEPTH = 32

# Directives that change nothing a boot entry carries (display, input, serial, help text, network append).
SILENT = frozenset(
    {"say", "prompt", "ui", "serial", "console", "font", "kbdmap", "display", "noescape", "nocomplete", "nohalt",
     "implicit", "allowoptions", "totaltimeout", "onerror", "path", "f1", "f2", "f3", "f4",
     "f5", "f6", "f7", "f8", "f9", "f10", "f11", "f12", "f0", "fdtoverlays", "kaslrseed", "zboot", "endtext",
     "pxeretry", "sendcookies"}
)  # fmt: skip

SILENT_MENU = frozenset(
    {"title", "background", "hidden", "hiddenkey", "clear", "color", "colour", "msgcolor", "msgcolour", "indent",
     "passwd", "master", "shiftkey", "save", "nosave", "immediate", "noimmediate", "onerror", "start", "resolution",
     "autoboot", "tabmsg", "notabmsg", "passprompt", "width", "margin", "passwordmargin", "rows", "tabmsgrow",
     "cmdlinerow", "endrow", "passwordrow", "timeoutrow", "helpmsgrow", "helpmsgendrow", "hshift", "vshift",
     "hiddenrow", "vesa", "fontname"}
)  # fmt: skip


class KernelKind(enum.StrEnum):
    """What a label's KERNEL-type directive runs; only LINUX becomes a boot entry."""

    LINUX = "linux"
    COM32 = "com32"
    COMBOOT = "comboot"
    BOOT_SECTOR = "boot sector"
    PXE = "pxe"
    FDIMAGE = "fdimage"
    CONFIG = "config"
    LOCALBOOT = "localboot"

    @classmethod
    def of_directive(cls, directive: str, image: str) -> KernelKind:
        """The kind named by a directive; for KERNEL, syslinux decides by the file's extension."""
        named = {
            "linux": cls.LINUX,
            "com32": cls.COM32,
            "comboot": cls.COMBOOT,
            "boot": cls.BOOT_SECTOR,
            "bss": cls.BOOT_SECTOR,
            "pxe": cls.PXE,
            "fdimage": cls.FDIMAGE,
            "config": cls.CONFIG,
            "localboot": cls.LOCALBOOT,
        }
        if directive in named:
            return named[directive]
        suffix = PurePosixPath(image.split(maxsplit=1)[0] if image.split() else image).suffix.lower()
        by_suffix = {
            ".c32": cls.COM32,
            ".cbt": cls.COMBOOT,
            ".com": cls.COMBOOT,
            ".bs": cls.BOOT_SECTOR,
            ".bin": cls.BOOT_SECTOR,
            ".bss": cls.BOOT_SECTOR,
            ".0": cls.PXE,
            ".img": cls.FDIMAGE,
        }
        return by_suffix.get(suffix, cls.LINUX)


KERNEL_DIRECTIVES = frozenset(
    {"kernel", "linux", "com32", "comboot", "boot", "bss", "pxe", "fdimage", "config", "localboot"}
)


def strip_caret(text: str) -> str:
    """A menu label as shown: `^` marks the hotkey and is not displayed."""
    return text.replace("^", "")


@dataclass
class _Label:
    """A LABEL block while it is being read (menu.c32's `labeldata`)."""

    name: str
    file: str
    line: int
    kernel: str | None = None
    kind: KernelKind = KernelKind.LINUX
    kernel_line: int = 0
    append: str | None = None
    initrd: str | None = None
    initrd_line: int = 0
    menu_label: str | None = None
    fdt: str | None = None
    fdt_line: int = 0
    fdtdir: str | None = None
    fdtdir_line: int = 0
    hidden: bool = False
    default: bool = False
    disabled: bool = False
    action: str | None = None  # MENU EXIT / GOTO / QUIT / HELP: navigation, not a boot
    menu_module: bool = False  # KERNEL menu.c32/vesamenu.c32: with a file (args or APPEND) it opens that menu
    global_append: str | None = None  # the global APPEND in force when the label ended
    sysappend: int = 0  # SYSAPPEND/IPAPPEND mask: the global one in force at LABEL, or the label's own

    @property
    def title(self) -> str:
        return strip_caret(self.menu_label if self.menu_label is not None else self.name).strip()

    @property
    def boots(self) -> bool:
        """Selectable and runs something (what a menu's timeout could start)."""
        return not self.disabled and self.action is None


@dataclass
class _Menu:
    title: str
    file: str = ""
    line: int = 0
    tag: str | None = None
    position: int = 0  # index among its parent's items (MENU DEFAULT inside it marks that item; no search)
    items: list[_Label | _Menu] = field(default_factory=list)
    default: int | None = None
    titled: bool = False  # MENU LABEL inside the submenu named it; MENU TITLE no longer renames it

    @property
    def shown_title(self) -> str:
        return strip_caret(self.title).strip()


@dataclass
class _Parse:
    """Parser state shared by the main config and its includes."""

    fs: Filesystem
    workdir: str
    root: _Menu = field(default_factory=lambda: _Menu(title=""))
    stack: list[_Menu] = field(default_factory=list)
    label: _Label | None = None
    append: str | None = None
    default: tuple[str, str, int] | None = None
    ontimeout: tuple[str, str, int] | None = None
    has_ui: bool = False
    ui_file: tuple[str, str, int] | None = None  # `UI menu.c32 file`: (file, config, line)
    timeout: tuple[str, str, int] | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    labels: list[_Label] = field(default_factory=list)
    loaded: set[str] = field(default_factory=set)  # configs loaded in this scan, CONFIG targets included
    depth: int = 0  # CONFIG hops from the config the scan started with
    elsewhere: set[int] = field(default_factory=set)  # id() of labels whichsys.c32 runs only on other media
    timeout_override: float | None = None  # the TIMEOUT of a config followed inline: the menu the user waits at
    seen: set[tuple[str, int]] = field(default_factory=set)  # (file, line) of every LABEL read in this scan
    runs: dict[int, _Label] = field(default_factory=dict)  # id() of a whichsys.c32 label -> the CONFIG it runs here
    budget: Budget = field(default_factory=lambda: Budget(CONFIG_STEPS))  # shared with INCLUDEs and CONFIG targets
    texts: dict[str, str] = field(default_factory=dict)  # files read in this scan, by path: INCLUDEd again, not reread
    cut: bool = False  # building entries stopped at the deadline (diagnosed once)
    flattened: int = 0  # MENU BEGINs open beyond MAX_MENU_DEPTH, not made submenus (their MENU ENDs are theirs)
    uboot: bool = False  # read as U-Boot's pxe_utils reads it (see the module docstring)
    uboot_default: tuple[str, str, int] | None = None  # the label U-Boot's DEFAULT/ONTIMEOUT/MENU DEFAULT names
    uboot_menu: bool = False  # a top-level MENU line: U-Boot shows its menu and waits TIMEOUT (else boots at once)
    # pxelinux: brings a file INCLUDE or CONFIG names onto `fs` (over TFTP/HTTP) when it is not there yet.
    fetch: Callable[[str], None] | None = None
    sysappend: int = 0  # the global SYSAPPEND/IPAPPEND mask (readconfig.c SysAppends)
    words: Sysappend = field(default_factory=Sysappend)  # this machine's SYSAPPEND words (discovery.dmi)

    def bring(self, path: str) -> None:
        if self.fetch is not None and not self.fs.is_file(path):
            self.fetch(path)

    @property
    def menu(self) -> _Menu:
        return self.stack[-1] if self.stack else self.root

    def warn(self, file: str, line: int, message: str, severity: Severity = Severity.WARNING) -> None:
        self.diagnostics.append(Diagnostic(file, line, message, severity))

    def record(self) -> None:
        """Close the open LABEL block and add it to the current menu (hidden labels go nowhere visible)."""
        label, self.label = self.label, None
        if label is None:
            return
        label.global_append = self.append
        if label.menu_module and label.boots:
            # menu.c32/vesamenu.c32 with a file name opens that file's menu: the label leads to a menu, as CONFIG does
            # (without a new working directory).
            args = (label.kernel or "").split()[1:] or (label.append or "").split()
            if args:
                label.kernel, label.kind, label.append = args[0], KernelKind.CONFIG, ""
        self.labels.append(label)
        if label.hidden:
            return
        menu = self.menu
        menu.items.append(label)
        if label.default and label.boots:
            menu.default = len(menu.items) - 1

    def resolve(self, path: str) -> str:
        """A config path as an absolute path within the filesystem, matched case-insensitively when needed."""
        if path.startswith("::"):
            path = "/" + path[2:].lstrip("/")
        scheme, sep, rest = path.partition("://")
        if sep and scheme.lower() in ("http", "tftp"):  # discovery.network.local_path
            path = f"/{scheme.lower()}/{rest}"
        joined = str(PurePosixPath(self.workdir, path)) if not path.startswith("/") else path
        normal = _normalise(joined)
        try:
            return self.fs.find_ci(normal) or normal
        except OSError:
            return normal  # the check of the file itself reports the error against the line naming it


def _normalise(path: str) -> str:
    parts: list[str] = []
    for part in PurePosixPath("/", path).parts[1:]:
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


def _split(line: str) -> tuple[str, str]:
    """(lowercased keyword, the rest of the line stripped)."""
    word, *rest = line.split(None, 1)
    return word.lower(), (rest[0].strip() if rest else "")


class _Stopped(Exception):
    """The config's budget ran out at `file`:`line`; parsing of the whole config stops there."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(message)
        self.file, self.line, self.message = file, line, message


def _parse_file(state: _Parse, path: str, chain: tuple[str, ...]) -> None:
    text = state.texts.get(path)
    if text is None:
        try:
            text = read_config(state.fs, path)
        except OSError as exc:
            state.warn(chain[-1] if chain else path, 0, f"cannot read {path}: {os_problem(exc)}", Severity.ERROR)
            return
        state.texts[path] = text
    if path not in state.files:
        state.files.append(path)
    chain = (*chain, path)
    lines = iter(enumerate(text.splitlines(), 1))
    budget = state.budget
    for number, raw in lines:
        try:
            budget.charge()
        except BudgetExceeded as exc:
            raise _Stopped(path, number, exc.message) from None
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, rest = _split(stripped)
        if key == "menu":
            if state.label is None:
                state.uboot_menu = True  # pxe_utils parse_pxefile_top: a top-level MENU line turns the prompt on
            if not rest:
                state.warn(path, number, "MENU without a keyword; ignored")
                continue
            sub, arg = _split(rest)
            _menu_directive(state, path, number, sub=sub, arg=arg, chain=chain)
        elif key == "text":
            # TEXT HELP ... ENDTEXT: free text for the menu's help line; its lines are not directives.
            for _, inner in lines:
                if inner.strip().lower().split()[:1] == ["endtext"]:
                    break
            else:
                state.warn(path, number, "TEXT without ENDTEXT; the rest of the file is help text")
        elif key == "include":
            _include(state, path, number, rest, chain)
        elif key == "label":
            state.record()
            if not rest:
                state.warn(path, number, "LABEL without a name; ignored")
                continue
            state.label = _Label(name=rest, file=path, line=number, sysappend=state.sysappend)
        elif key in KERNEL_DIRECTIVES:
            label = state.label
            if label is None:
                state.warn(path, number, f"{key.upper()} outside a LABEL; ignored")
                continue
            label.kernel, label.kernel_line = rest, number
            label.kind = KernelKind.of_directive(key, rest)
            if label.kind is KernelKind.COM32 and PurePosixPath(rest.split()[0]).name.lower() in MENU_MODULES:
                label.menu_module = True
        elif key == "append":
            # readconfig.c: refstrdup(skipspace(p + 6)): the text after the keyword's blanks, trailing blanks kept
            # (the kernel receives them; real U-Boot's pxe_utils alike); the line's end is not part of it.
            words = raw.lstrip().split(None, 1)
            rest = words[1].rstrip("\r\n") if len(words) > 1 else ""
            if state.label is not None:
                state.label.append = rest
                if state.uboot and state.label.initrd is None and " " in rest.partition("initrd=")[2]:
                    # pxe_utils parse_label: the text after the first "initrd=" up to the next space (with no space
                    # after it, U-Boot 2023.01 loads no initrd).
                    value = rest.partition("initrd=")[2].split(" ", 1)[0]
                    state.label.initrd, state.label.initrd_line = value, number
            elif state.uboot:
                state.warn(path, number, "APPEND outside a LABEL is ignored by U-Boot")
            else:
                state.append = rest
        elif state.uboot and state.label is not None and _uboot_repeat(state.label, key):
            # pxe_utils parse_label reads the value only when none is set yet; unread, the value is taken for the
            # next keyword, which is none, so the label ends here and its remaining lines are top-level (ignored).
            state.warn(path, number, f"{key.upper()} repeated in LABEL {state.label.name}: U-Boot ends the label here")
            state.record()
        elif key == "initrd":
            if state.label is not None:
                state.label.initrd, state.label.initrd_line = rest, number
            else:
                state.warn(path, number, "INITRD outside a LABEL is ignored (syslinux does too)")
        elif key in ("fdt", "devicetree"):
            if state.label is not None:
                state.label.fdt, state.label.fdt_line = rest, number
            else:
                state.warn(path, number, f"{key.upper()} outside a LABEL; ignored")
        elif key in ("fdtdir", "devicetreedir"):
            if state.label is not None:
                state.label.fdtdir, state.label.fdtdir_line = rest, number
            else:
                state.warn(path, number, f"{key.upper()} outside a LABEL; ignored")
        elif key in ("default", "ontimeout") and state.uboot:
            if state.label is not None:
                state.record()  # U-Boot: a top-level key ends the label
            state.uboot_default = (rest, path, number)
        elif key == "default":
            state.default = (rest, path, number)
        elif key == "ontimeout":
            state.ontimeout = (rest, path, number)
        elif key == "timeout":
            if not state.stack:
                state.timeout = (rest, path, number)
        elif key == "ui":
            state.has_ui = True
            module, *files = rest.split()
            if PurePosixPath(module).name.lower() in MENU_MODULES and files:
                # `UI menu.c32 other.cfg`: the menu program reads that file, not this one (menu.c32's main()).
                state.ui_file = (files[0], path, number)
        elif key in ("sysappend", "ipappend"):
            # readconfig.c: strtoul(value, NULL, 0); inside a LABEL the label's mask, else the global one that
            # labels after it start with.
            mask = _strtoul(rest)
            if state.label is not None:
                state.label.sysappend = mask
            else:
                state.sysappend = mask
        elif key in SILENT:
            continue
        else:
            state.warn(path, number, f"unknown directive '{stripped.split()[0]}'; ignored")


def _uboot_repeat(label: _Label, key: str) -> bool:
    """A key U-Boot reads once per label (the first wins) that this label has already set."""
    if key == "initrd":
        return label.initrd is not None
    if key in ("fdt", "devicetree"):
        return label.fdt is not None
    if key in ("fdtdir", "devicetreedir"):
        return label.fdtdir is not None
    return False


# The MENU keywords U-Boot's pxe_utils knows (parse_menu, parse_label_menu); it ignores the others.
UBOOT_MENU = frozenset({"label", "default", "title", "include", "background"})


def _menu_directive(state: _Parse, path: str, number: int, *, sub: str, arg: str, chain: tuple[str, ...]) -> None:
    menu = state.menu
    label = state.label
    if state.uboot and sub not in UBOOT_MENU:
        return
    if state.uboot and sub == "default":
        if label is not None and state.uboot_default is None:
            state.uboot_default = (label.name, path, number)
        return
    if sub == "label":
        if label is not None:
            label.menu_label = arg
        elif state.stack:
            menu.title, menu.titled = arg, True  # names the submenu in its parent
    elif sub == "title":
        if state.stack and not menu.titled:
            menu.title, menu.titled = arg, True
    elif sub == "default":
        if label is not None:
            label.default = True
        elif state.stack:
            parent = state.stack[-2] if len(state.stack) > 1 else state.root
            parent.default = menu.position
    elif sub == "hide":
        if label is not None:
            label.hidden = True
    elif sub in ("disable", "disabled"):
        if label is not None:
            label.disabled = True
    elif sub in ("exit", "goto", "quit", "help"):
        if label is not None:
            label.action = f"menu {sub}"
    elif sub == "separator":
        state.record()
    elif sub == "begin":
        state.record()
        if len(state.stack) >= MAX_MENU_DEPTH:
            state.flattened += 1
            if state.flattened == 1:
                state.warn(path, number, f"MENU BEGIN nested deeper than {MAX_MENU_DEPTH}; its items join the parent")
            return
        submenu = _Menu(title=arg, file=path, line=number, tag=arg or None, position=len(menu.items))
        menu.items.append(submenu)
        state.stack.append(submenu)
    elif sub == "end":
        state.record()
        if state.flattened:
            state.flattened -= 1
        elif state.stack:
            state.stack.pop()
        else:
            state.warn(path, number, "MENU END without MENU BEGIN; ignored")
    elif sub == "include":
        _include(state, path, number, arg, chain)
    elif sub not in SILENT_MENU:
        state.warn(path, number, f"unknown directive 'MENU {sub.upper()}'; ignored")


def _include(state: _Parse, path: str, number: int, arg: str, chain: tuple[str, ...]) -> None:
    if not arg:
        state.warn(path, number, "INCLUDE without a file name; ignored")
        return
    name, *rest = arg.split(None, 1)
    tag = rest[0] if rest else ""
    target = state.resolve(name)
    if target in chain:
        state.warn(path, number, f"INCLUDE {name} includes itself (loop); ignored", Severity.ERROR)
        return
    if len(chain) > MAX_INCLUDE_DEPTH:
        state.warn(path, number, f"INCLUDE {name} nested more than {MAX_INCLUDE_DEPTH} deep; ignored", Severity.ERROR)
        return
    state.bring(target)
    problem = file_problem(state.fs, target)
    if problem == "not found":
        state.warn(path, number, f"INCLUDE {shown(name)}: {shown(target)} not found; ignored")
        return
    if problem is not None:
        state.warn(path, number, f"INCLUDE {shown(name)}: {problem}; ignored", Severity.ERROR)
        return
    tag = tag.strip()
    if tag and len(state.stack) < MAX_MENU_DEPTH:
        # MENU INCLUDE file tagname / INCLUDE file tagname: the file becomes a submenu.
        state.record()
        submenu = _Menu(title=tag, file=path, line=number, tag=tag, position=len(state.menu.items))
        state.menu.items.append(submenu)
        state.stack.append(submenu)
        depth = len(state.stack)
        _parse_file(state, target, chain)
        state.record()
        del state.stack[depth - 1 :]
    else:
        _parse_file(state, target, chain)


def _initrd_option(cmdline: str) -> list[str]:
    """The files of the first `initrd=` option (syslinux loads only that one; it may be a comma list)."""
    for word in cmdline.split():
        if word.startswith("initrd="):
            return [p for p in word[len("initrd=") :].split(",") if p]
    return []


def _boot_image(image: str) -> tuple[str, ...]:
    """ldlinux's kernel.c new_linux_kernel(): "BOOT_IMAGE=" + the kernel name as written, before the arguments."""
    return (f"BOOT_IMAGE={image}",)


def _to_entry(state: _Parse, label: _Label, submenu: tuple[str, ...]) -> BootEntry | None:
    ctx_diags = state.diagnostics
    if not label.boots or label.kind is not KernelKind.LINUX:
        return None
    warnings: list[Diagnostic] = []
    kernel_text = label.kernel
    if not kernel_text and state.uboot:
        ctx_diags.append(Diagnostic(label.file, label.line, f"LABEL {label.name} has no KERNEL or LINUX; skipped"))
        return None
    if not kernel_text:
        # syslinux boots a file named like the label when the label names no kernel.
        if label.kernel is None and file_problem(state.fs, state.resolve(label.name)) is None:
            kernel_text = label.name
        else:
            ctx_diags.append(Diagnostic(label.file, label.line, f"LABEL {label.name} has no KERNEL or LINUX; skipped"))
            return None
    # U-Boot's KERNEL/LINUX line is one file name, spaces included (pxe_utils parse_label_kernel).
    image, *kernel_args = [kernel_text.strip()] if state.uboot else kernel_text.split(None, 1)
    if PurePosixPath(image).name.lower() == "memdisk":
        ctx_diags.append(
            Diagnostic(label.file, label.kernel_line, f"LABEL {label.name} boots memdisk, which needs a BIOS; skipped")
        )
        return None
    append = label.append if label.append is not None or state.uboot else label.global_append
    if append is not None and append.strip() == "-" and not state.uboot:
        append = None
    cmdline = " ".join(p for p in (*kernel_args, append or "") if p)
    line = label.kernel_line or label.line
    if state.uboot:
        cmdline, names = uboot_macros(cmdline)
        if names:
            shown = ", ".join(f"${{{n}}}" for n in names)
            warnings.append(
                Diagnostic(label.file, line, f"APPEND uses U-Boot's {shown}: made empty, as U-Boot does when unset")
            )
    cmdline = cmdline if state.uboot else cmdline.lstrip()
    kernel = state.resolve(image)
    problem = file_problem(state.fs, kernel)
    if problem is not None:
        warnings.append(Diagnostic(label.file, line, missing("kernel", image, problem)))
    if state.uboot:
        # Set while parsing: the first INITRD or initrd= option, one file name.
        initrd_names = [label.initrd.strip()] if label.initrd and label.initrd.strip() else []
        initrd_line = label.initrd_line
    elif label.initrd is not None and _initrd_option(cmdline):
        # syslinux appends " initrd=<INITRD>" after the APPEND words, and kernel.c loads the files of the first
        # `initrd=` of the command line: APPEND's (seen booted in QEMU, tests/conformance).
        initrd_names = _initrd_option(cmdline)
        initrd_line = line
        warnings.append(
            Diagnostic(label.file, label.initrd_line, "both INITRD and initrd= in APPEND; syslinux loads APPEND's")
        )
    elif label.initrd is not None:
        initrd_names = [p.strip() for p in label.initrd.split(",") if p.strip()]
        if _initrd_option(cmdline):
            warnings.append(
                Diagnostic(label.file, label.initrd_line, "both INITRD and initrd= in APPEND; using INITRD")
            )
        initrd_line = label.initrd_line
    else:
        initrd_names = _initrd_option(cmdline)
        initrd_line = line
    initrds = []
    for name in initrd_names:
        found = state.resolve(name)
        initrds.append(found)
        problem = file_problem(state.fs, found)
        if problem is not None:
            warnings.append(Diagnostic(label.file, initrd_line, missing("initrd", name, problem)))
    devicetree = None
    if label.fdt:
        devicetree = state.resolve(label.fdt)
        problem = file_problem(state.fs, devicetree)
        if problem is not None:
            warnings.append(Diagnostic(label.file, label.fdt_line, missing("devicetree", label.fdt, problem)))
    elif label.fdtdir:
        warnings.append(
            Diagnostic(label.file, line, f"FDTDIR {label.fdtdir}: the firmware picks the file; the running one is used")
        )
    ctx_diags.extend(warnings)
    if state.uboot:
        # U-Boot's menu prints the MENU LABEL as written, else the label's name; the kernel gets the APPEND only.
        title = label.menu_label.strip() if label.menu_label is not None else label.name
        loader_args: tuple[str, ...] = ()
        loader_tail: tuple[str, ...] = ()
    else:
        title = label.title or label.name
        loader_args = _boot_image(image)
        # readconfig.c record(): " initrd=" + the INITRD text as written, after APPEND (an empty INITRD included),
        # then the SYSAPPEND words of the label's mask.
        initrd_word = () if label.initrd is None else (f"initrd={label.initrd.strip()}",)
        loader_tail = (*initrd_word, *_sysappend_words(state, label.sysappend))
    return BootEntry(
        title=title,
        kernel=kernel,
        initrds=tuple(initrds),
        cmdline=cmdline,
        loader_args=loader_args,
        loader_tail=loader_tail,
        devicetree=devicetree,
        submenu=submenu,
        id=label.name,
        format=SourceFormat.SYSLINUX,
        config=label.file,
        line=label.line,
        device=state.fs.name,
        config_device=state.fs.name,
        warnings=tuple(warnings),
    )


def _flatten(
    state: _Parse,
    menu: _Menu,
    path: tuple[str, ...],
    out: list[BootEntry],
    where: dict[int, int],
    *,
    inline: _Label | None,
) -> None:
    """Depth first, in file order; `where` maps id(label) to its entry's index (for a CONFIG label, the index of the
    loaded config's default entry)."""
    for item in menu.items:
        if state.budget.late:  # building is linear in what was read; only the deadline cuts it short
            if not state.cut:
                state.cut = True
                state.warn(item.file, item.line, "time limit exceeded; this and later items not listed", Severity.ERROR)
            return
        if isinstance(item, _Menu):
            _flatten(state, item, (*path, item.shown_title), out, where, inline=inline)
            continue
        label = state.runs.get(id(item), item)
        if label.kind is KernelKind.CONFIG and label.boots:
            if id(label) not in state.elsewhere:
                _follow_config(state, label, path, out, where, inline=label is inline)
            continue
        entry = _to_entry(state, label, path)
        if entry is not None:
            where[id(label)] = len(out)
            out.append(entry)


def _follow_config(
    state: _Parse, label: _Label, path: tuple[str, ...], out: list[BootEntry], where: dict[int, int], *, inline: bool
) -> None:
    """The entries of the config a CONFIG label loads, added where the user meets them.

    Inline (no submenu level) when `inline`: the label is the config's own default path and the config draws no menu
    (no UI), so ldlinux goes straight to the new config and its menu is the first and only one the user sees (Arch's
    `DEFAULT select` -> whichsys.c32 -> `CONFIG archiso_sys.cfg`). Otherwise the label is an item of a menu the user
    sees, and choosing it opens another menu: a submenu titled as the label is shown, like MENU BEGIN. Each config is
    loaded once per scan (a "back to the main menu" label that CONFIGs the first config is not a new menu), and the
    chain is at most MAX_CONFIG_DEPTH deep.
    """
    words = (label.kernel or "").split()
    line = label.kernel_line or label.line
    if not words:
        state.warn(label.file, line, f"LABEL {label.name}: CONFIG without a file name; ignored")
        return
    name = words[0]
    # ldlinux changes the working directory to the command line's directory when there is one: `CONFIG file dir`,
    # or the label's APPEND (the form config.c32 and old archiso/isolinux configs use).
    directory = words[1] if len(words) > 1 else (label.append or "").strip()
    target = state.resolve(name)
    if target in state.loaded:
        return  # already in the menu (or the menu being read): loading it again adds nothing and could loop
    if state.depth >= MAX_CONFIG_DEPTH:
        state.warn(label.file, line, f"CONFIG {name}: more than {MAX_CONFIG_DEPTH} configs deep; not followed")
        return
    state.bring(target)
    problem = file_problem(state.fs, target)
    if problem is not None:
        why = f"{shown(target)} not found" if problem == "not found" else problem
        state.warn(label.file, line, f"CONFIG {shown(name)}: {why}; LABEL {label.name} shows nothing")
        return
    workdir = state.resolve(directory) if directory else state.workdir
    sub = _Parse(
        fs=state.fs,
        workdir=workdir,
        loaded=state.loaded,
        depth=state.depth + 1,
        seen=state.seen,
        budget=state.budget,
        texts=state.texts,
        fetch=state.fetch,
        words=state.words,
    )
    known = set(state.seen)
    result, default = _load(sub, target)
    prefix = path if inline else (*path, label.title or label.name)
    for index, entry in enumerate(result.entries):
        # A label this scan already read (Debian's Help -> `CONFIG prompt.cfg`, which INCLUDEs the main menu again
        # for its boot prompt) is already in the menu: the user gains nothing from a second copy.
        if (entry.config, entry.line) in known:
            continue
        if index == default:
            where[id(label)] = len(out)
        out.append(entry.replace(submenu=(*prefix, *entry.submenu), default=False))
    state.diagnostics.extend(result.diagnostics)
    state.files.extend(f for f in result.configs if f not in state.files)
    if inline and result.timeout is not None:
        state.timeout_override = result.timeout


def _ui_file_menu(state: _Parse, path: str) -> tuple[LoadResult, int | None] | None:
    """`UI menu.c32 file`: the menu drawn is that file's, read afresh by the menu program in the same working
    directory (this config's labels stay reachable only by name at the `boot:` prompt, which bootmenu does not
    offer). None when the file is missing (diagnosed): the menu program then has nothing, and this config's labels
    are listed as before."""
    assert state.ui_file is not None
    name, file, line = state.ui_file
    target = state.resolve(name)
    problem = file_problem(state.fs, target)
    if problem is not None:
        why = f"{shown(target)} not found" if problem == "not found" else problem
        state.warn(file, line, f"UI {shown(name)}: {why}; this config's labels are listed instead")
        return None
    sub = _Parse(
        fs=state.fs,
        workdir=state.workdir,
        loaded=state.loaded,
        depth=state.depth + 1,
        seen=state.seen,
        budget=state.budget,
        texts=state.texts,
        words=state.words,
    )
    result, default = _load(sub, target)
    result = LoadResult(
        entries=result.entries,
        diagnostics=(*state.diagnostics, *result.diagnostics),
        timeout=result.timeout,
        configs=(*state.files, *(f for f in result.configs if f not in state.files)),
    )
    return result, default


def _ifcpu_target(state: _Parse, label: _Label | None, command: str = "") -> _Label | None:
    """What ifcpu64.c32 or ifcpu.c32 runs here, for a label running one (or a DEFAULT command line `command`);
    else `label`. bootmenu runs on the machine it boots, an x86_64 one: long mode (and PAE) are present, and
    ifcpu.c32's other feature names are looked up in /proc/cpuinfo's flags."""
    if label is not None:
        if label.kind is not KernelKind.COM32 or not label.kernel:
            return label
        append = label.append if label.append is not None else label.global_append
        words = [*label.kernel.split(), *(append or "").split()]
    else:
        words = command.split()
    if not words:
        return label
    module = PurePosixPath(words[0]).name.lower()
    if module not in (IFCPU64, IFCPU):
        return label
    groups: list[list[str]] = [[]]
    for word in words[1:]:
        if word == "--":
            groups.append([])
        else:
            groups[-1].append(word)
    if module == IFCPU64:
        # `long -- pae -- other` (two groups: `long -- other`): a 64-bit machine takes the first.
        choice = groups[0]
    else:
        features = [w for w in groups[0] if w not in ("dry-run", "debug")]
        flags = _cpu_flags()
        present = all(f.lower() in flags for f in features)
        choice = groups[1] if present and len(groups) > 1 else (groups[2] if len(groups) > 2 else [])
    return _find_label(state, " ".join(choice)) if choice else None


def _cpu_flags() -> frozenset[str]:
    """The running CPU's feature flags (/proc/cpuinfo); long mode and PAE always, bootmenu being x86_64."""
    flags = {"lm", "pae"}
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags.update(line.partition(":")[2].split())
                    break
    except OSError:
        pass
    return frozenset(flags)


def _whichsys_target(state: _Parse, label: _Label) -> _Label:
    """For a whichsys.c32 label, the label it runs on this medium (`-iso-` on ISO 9660, else `-sys-`); else `label`.

    Labels it names only for other derivatives (`-pxe-`) are remembered in `state.elsewhere`: they are not reachable
    from this medium's menu.
    """
    if label.kind is not KernelKind.COM32 or not label.kernel:
        return label
    image, *args = label.kernel.split(None, 1)
    if PurePosixPath(image).name.lower() != WHICHSYS:
        return label
    append = label.append if label.append is not None else label.global_append
    words = [*(args[0].split() if args else []), *(append or "").split()]
    commands: dict[str, list[str]] = {}
    current: list[str] | None = None
    for word in words:
        if len(word) > 2 and word.startswith("-") and word.endswith("-"):
            current = commands.setdefault(word.lower(), [])
        elif current is not None:
            current.append(word)
    ours = "-iso-" if state.fs.fstype == "iso9660" else "-sys-"
    found = {key: _find_label(state, " ".join(cmd)) for key, cmd in commands.items() if cmd}
    mine = found.get(ours)
    for key, other in found.items():
        if key != ours and other is not None and other is not mine:
            state.elsewhere.add(id(other))
    if mine is not None:
        return mine
    command = commands.get(ours, [])
    if command and PurePosixPath(command[0]).name.lower() in ("config", "config.c32") and len(command) > 1:
        # `-iso- config iso.cfg` (whichsys's own example): the command runs config.c32, which loads the file.
        runs = _Label(
            name=label.name,
            file=label.file,
            line=label.line,
            kernel=" ".join(command[1:]),
            kind=KernelKind.CONFIG,
            kernel_line=label.kernel_line,
            menu_label=label.menu_label,
        )
        state.runs[id(label)] = runs
        return runs
    return label


def _menu_default(menu: _Menu) -> _Label | None:
    """What a menu's timeout starts: its (last) MENU DEFAULT, else its first selectable item; into submenus."""
    index = menu.default
    if index is None:
        index = next(
            (n for n, it in enumerate(menu.items) if isinstance(it, _Menu) or (it.boots and not it.disabled)), None
        )
    if index is None:
        return None
    item = menu.items[index]
    return _menu_default(item) if isinstance(item, _Menu) else item


def _find_label(state: _Parse, text: str) -> _Label | None:
    """The label a DEFAULT/ONTIMEOUT names: its first word in syslinux (the whole text first in an extlinux.conf, as
    U-Boot reads it); the last one wins among duplicates in U-Boot, the first in syslinux: we take the first."""
    words = text.split()
    first = words[0] if words else ""
    # syslinux splits the command at the first space: `DEFAULT my label` names LABEL my (seen in QEMU); U-Boot
    # takes the whole text, which an extlinux.conf may be written for.
    order = (text.strip(), first) if state.uboot else (first, text.strip())
    for candidate in order:
        for label in state.labels:
            if candidate and label.name == candidate:
                return label
    return None


def _uboot_default(state: _Parse, entries: list[BootEntry], where: dict[int, int]) -> int | None:
    """pxe_menu_to_menu: the last label named exactly by the default; with none, U-Boot boots the labels in order
    (boot_unattempted_labels), so the first entry whose kernel file is there (else the first)."""
    if state.uboot_default is not None:
        text, file, line = state.uboot_default
        named = [label for label in state.labels if label.name == text.strip()]
        if named:
            index = where.get(id(named[-1]))
            if index is None:
                state.warn(file, line, f"the default, LABEL {named[-1].name}, does not boot Linux; no default")
            return index
        state.warn(file, line, f"the default {text.strip()!r} names no label; U-Boot boots the labels in order")
    present = (n for n, e in enumerate(entries) if file_problem(state.fs, e.kernel) is None)
    return next(present, 0 if entries else None)


def _command_line_entry(state: _Parse, text: str, file: str, line: int, what: str) -> BootEntry | None:
    image, *args = text.split(None, 1)
    if KernelKind.of_directive("kernel", image) is not KernelKind.LINUX:
        return None
    kernel = state.resolve(image)
    problem = file_problem(state.fs, kernel)
    if problem == "not found":
        state.warn(file, line, f"{what} {shown(image)} names no label and no kernel file; nothing to boot")
        return None
    if problem is not None:
        state.warn(file, line, f"{what} {shown(image)}: {problem}; nothing to boot")
        return None
    cmdline = args[0].strip() if args else ""
    initrds = tuple(state.resolve(p) for p in _initrd_option(cmdline))
    return BootEntry(
        title=text.strip(),
        kernel=kernel,
        initrds=initrds,
        cmdline=cmdline,
        loader_args=_boot_image(image),
        # ldlinux.c load_kernel -> execute(..., sysappend=true): the global mask's words after the command line.
        loader_tail=_sysappend_words(state, state.sysappend),
        format=SourceFormat.SYSLINUX,
        config=file,
        line=line,
        device=state.fs.name,
        config_device=state.fs.name,
    )


_STRTOUL = re.compile(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
MASK_BITS = 32


def _strtoul(text: str) -> int:
    """C's strtoul(text, NULL, 0) as 32-bit syslinux gets it: 0x hex, 0 octal, else decimal; the longest number at
    the start (none: 0); a minus sign wraps, a value too large saturates."""
    match = _STRTOUL.match(text)
    if match is None:
        return 0
    sign, digits = match.groups()
    value = min(int(digits, 0) if digits[1:2] in ("x", "X") else int(digits, 8 if digits[0] == "0" else 10),
                (1 << MASK_BITS) - 1)  # fmt: skip
    return -value % (1 << MASK_BITS) if sign == "-" else value


def _sysappend_words(state: _Parse, mask: int) -> tuple[str, ...]:
    """The SYSAPPEND words of `mask`, in bit order (readconfig.c record(): each present, non-empty string, its blanks
    made `_`). The values are this machine's (state.words, from discovery.dmi); FSUUID is the scanned filesystem's
    UUID as syslinux prints it (fat.c: XXXX-XXXX in capitals, ext2.c: lowercase), none on other filesystems."""
    words = []
    for bit in range(MASK_BITS):
        if not mask >> bit & 1:
            continue
        word = _fs_uuid_word(state.fs) if bit == FSUUID else state.words.get(bit)
        if word:
            words.append(mangled(word))
    return tuple(words)


def _fs_uuid_word(fs: Filesystem) -> str | None:
    if not fs.uuid:
        return None
    if fs.fstype in ("vfat", "fat", "msdos"):
        return f"FSUUID={fs.uuid.upper()}"
    if fs.fstype in ("ext2", "ext3", "ext4"):
        return f"FSUUID={fs.uuid.lower()}"
    return None


def _timeout(state: _Parse) -> float | None:
    if state.uboot:
        return _uboot_timeout(state)
    if state.timeout is None:
        return None
    text, file, line = state.timeout
    digits = text.split()[0] if text.split() else ""
    if not digits.isdigit():
        state.warn(file, line, f"TIMEOUT '{text}' is not a number of tenths of a second; ignored")
        return None
    tenths = int(digits)
    return tenths / 10 if tenths else None  # 0: wait for the user


def _uboot_timeout(state: _Parse) -> float | None:
    """pxe_utils: without a top-level MENU line U-Boot boots the default at once (PROMPT is ignored); with one it
    waits TIMEOUT tenths rounded up to whole seconds (menu_create), TIMEOUT 0 or none: for the user."""
    if not state.uboot_menu:
        return 0.0
    text = state.timeout[0] if state.timeout is not None else ""
    digits = text.split()[0] if text.split() else ""
    tenths = int(digits) if digits.isdigit() else 0
    return float(-(-tenths // 10)) if tenths else None


# Where U-Boot's distro boot looks for an extlinux.conf (boot_prefixes "/ /boot/", boot_syslinux_conf).
UBOOT_PATHS = ("/extlinux/extlinux.conf", "/boot/extlinux/extlinux.conf")
# What syslinux's extlinux installs beside its config; U-Boot needs neither.
LDLINUX = ("ldlinux.sys", "ldlinux.c32")


def uboot_macros(text: str) -> tuple[str, list[str]]:
    """APPEND as U-Boot passes it (pxe_utils label_boot runs cli_simple_process_macros on it): `${name}` and
    `$(name)` become the variable's value, which bootmenu cannot know (no U-Boot environment under LinuxBoot), so
    they become what U-Boot makes of an unset one, nothing; `\\$` is no variable (both characters stay); text in
    single quotes is literal, the quotes dropped. Returns the text and the variables' names."""
    out: list[str] = []
    names: list[str] = []
    i, prev = 0, ""
    while i < len(text):
        c = text[i]
        if c == "'" and prev != "\\":
            end = text.find("'", i + 1)
            end = len(text) if end < 0 else end
            out.append(text[i + 1 : end])
            i, prev = end + 1, "'"
            continue
        if c == "$" and prev != "\\" and text[i + 1 : i + 2] in ("{", "("):
            close = "}" if text[i + 1] == "{" else ")"
            end = text.find(close, i + 2)
            end = len(text) if end < 0 else end
            names.append(text[i + 2 : end])
            i, prev = end + 1, close
            continue
        out.append(c)
        i, prev = i + 1, c
    return "".join(out), names


def is_uboot_config(fs: Filesystem, path: str) -> bool:
    """Whether U-Boot, not syslinux, reads this config: see the module docstring."""
    if path.lower() not in UBOOT_PATHS:
        return False
    directory = str(PurePosixPath(path).parent)
    try:
        return not any(fs.find_ci(f"{directory}/{name}") is not None for name in LDLINUX)
    except OSError:
        return True


def load_config(
    fs: Filesystem,
    path: str,
    budget: Budget | None = None,
    *,
    workdir: str | None = None,
    fetch: Callable[[str], None] | None = None,
    sysappend: Sysappend | None = None,
) -> LoadResult:
    """The menu of one syslinux-family config file on `fs` (`path` absolute within it), CONFIG labels followed;
    all of it charged to `budget` (default: CONFIG_STEPS steps, no deadline). Relative paths start at `workdir`,
    by default the config's directory (pxelinux: the path prefix). `fetch(path)` brings an INCLUDEd or CONFIG'd
    file that is not on `fs` yet (pxelinux reads them from the server as it meets them). `sysappend`: the machine's
    SYSAPPEND words (discovery.dmi; default none)."""
    where = workdir if workdir is not None else str(PurePosixPath(path).parent)
    state = _Parse(
        fs=fs,
        workdir=where,
        budget=budget or Budget(CONFIG_STEPS),
        uboot=is_uboot_config(fs, path),
        fetch=fetch,
        words=sysappend or Sysappend(),
    )
    result, _ = _load(state, path)
    return result


def _chooser(state: _Parse) -> tuple[str, str, int, str] | None:
    """(text, file, line, directive) of what picks the default: ONTIMEOUT, else DEFAULT unless it names the menu
    program (DEFAULT vesamenu.c32 without UI: the menu's own default applies)."""
    chooser = state.ontimeout or state.default
    if chooser is None or not chooser[0].split():
        return None
    text, file, line = chooser
    what = "ONTIMEOUT" if chooser is state.ontimeout else "DEFAULT"
    module = PurePosixPath(text.split()[0]).name.lower()
    if what == "DEFAULT" and not state.has_ui and module.endswith(".c32") and module not in (IFCPU64, IFCPU):
        return None
    return text, file, line, what


def _load(state: _Parse, path: str) -> tuple[LoadResult, int | None]:
    """Parse `path` into `state` and build its entries; also the index of the default entry."""
    state.loaded.add(path)
    try:
        _parse_file(state, path, ())
    except _Stopped as stop:
        state.warn(stop.file, stop.line, f"{stop.message}; the config is read up to here", Severity.ERROR)
    state.budget.final_phase()
    state.record()
    if state.stack:
        top = state.stack[0]
        state.warn(top.file, top.line, "MENU BEGIN without MENU END; closed at the end of the file")
        state.stack.clear()
    state.seen.update((label.file, label.line) for label in state.labels)
    if state.ui_file is not None:
        shown_menu = _ui_file_menu(state, path)
        if shown_menu is not None:
            return shown_menu
    chooser = _chooser(state)
    named = _find_label(state, chooser[0]) if chooser is not None else None
    if named is not None:
        named = _ifcpu_target(state, _whichsys_target(state, named))
    elif chooser is not None and PurePosixPath(chooser[0].split()[0]).name.lower() in (IFCPU64, IFCPU):
        named = _ifcpu_target(state, None, chooser[0])
        if named is None:
            chooser = None
    # Without a UI no menu is drawn: a default that CONFIGs another file leads straight to that file's menu.
    inline = named if named is not None and named.kind is KernelKind.CONFIG and not state.has_ui else None
    entries: list[BootEntry] = []
    where: dict[int, int] = {}
    _flatten(state, state.root, (), entries, where, inline=inline)

    default_index: int | None = None
    chosen: _Label | None = None
    decided = False
    if chooser is not None:
        text, file, line, what = chooser
        chosen = named
        if chosen is not None and not chosen.hidden:
            decided = True
            # ldlinux boots `DEFAULT label args` with the args added; menu.c32 only looks at the label.
            appends = what == "ONTIMEOUT" or not state.has_ui
            words = text.split(None, 1)
            # (Only when the text names the label itself: a dispatcher's own arguments, ifcpu.c32's, are not added.)
            names = chosen.name in (text.strip(), words[0])
            extra = words[1] if appends and names and len(words) > 1 and chosen.name != text.strip() else ""
            if id(chosen) in where and extra and chosen.kind is KernelKind.LINUX:
                n = where[id(chosen)]
                entries[n] = entries[n].replace(cmdline=f"{entries[n].cmdline} {extra}".strip())
        elif chosen is None and not (state.has_ui and what == "DEFAULT"):
            synthetic = _command_line_entry(state, text, file, line, what)
            decided = True
            if synthetic is not None:
                entries.append(synthetic)
                default_index = len(entries) - 1
    if not decided:
        chosen = _menu_default(state.root)
    if state.uboot:
        default_index, chosen = _uboot_default(state, entries, where), None
    if default_index is None and chosen is not None:
        default_index = where.get(id(chosen))
        if default_index is None and chosen.kind is not KernelKind.CONFIG:
            # (A CONFIG default that yields no entry was diagnosed where it was followed.)
            state.warn(chosen.file, chosen.line, f"the default, LABEL {chosen.name}, does not boot Linux; no default")
    if default_index is not None:
        entries[default_index] = entries[default_index].replace(default=True)
    timeout = state.timeout_override if state.timeout_override is not None else _timeout(state)
    result = LoadResult(
        entries=tuple(entries),
        diagnostics=tuple(state.diagnostics),
        timeout=timeout,
        configs=tuple(state.files),
    )
    return result, default_index


def find_configs(fs: Filesystem) -> list[str]:
    """The configs present on `fs`, in probe order, each file once (symlinks and case variants collapse)."""
    found: list[str] = []
    seen: set[object] = set()
    for candidate in CONFIG_PATHS:
        path = fs.find_ci(candidate)
        if path is None or not fs.is_file(path):
            continue
        host = fs.host_path(path)
        if host in seen:
            continue
        seen.add(host)
        found.append(path)
    return found


def load(fs: Filesystem, ctx: LoadContext) -> LoadResult:
    """Every syslinux-family config on `fs`; a config already INCLUDEd by an earlier one is not read again."""
    total = LoadResult()  # (syslinux configs never name another filesystem: ctx gives only the deadline)
    for path in find_configs(fs):
        if path in total.configs:
            continue
        total = total + load_config(fs, path, ctx.budget(CONFIG_STEPS), sysappend=ctx.sysappend)
    return total
