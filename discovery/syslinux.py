"""syslinux, extlinux, isolinux and pxelinux configs (and U-Boot's extlinux.conf dialect), read as the loaders do.

Follows the syslinux configuration reference (doc/syslinux.txt, doc/menu.txt) as implemented by ldlinux and
menu.c32/vesamenu.c32, plus U-Boot's `doc/README.pxe` keys (FDT, DEVICETREE, FDTDIR). Behaviour kept on purpose:

- Parser state is shared across INCLUDEs, as if the files were concatenated (a LABEL may continue in an include).
- Relative paths (KERNEL, INITRD, FDT, INCLUDE) resolve against the working directory, which is the directory of the
  config file the loader started from, not that of an included file. `::path` (pxelinux TFTP) is absolute.
- The command line is the label's APPEND (else the global APPEND in force when the label ends; `APPEND -`: none),
  preceded by any arguments on the KERNEL line, exactly as written; an `initrd=` option stays in it, as syslinux passes
  it on (the kernel ignores it). Initrds come from INITRD (comma list) or else the first `initrd=` option. The
  `initrd=` that syslinux itself appends for an INITRD line is not added (U-Boot does not add it either).
- The default: ONTIMEOUT, else DEFAULT when it names a label (DEFAULT `*.c32` names the menu program, not a label;
  DEFAULT that names no label is a kernel command line), else the last MENU DEFAULT (descending into a submenu marked
  default), else the first item of the top menu. When that item does not boot Linux, nothing is marked default.
- Labels that do not boot Linux (COM32, CONFIG, LOCALBOOT, boot sectors, `.c32` modules, MENU EXIT/GOTO/QUIT/HELP,
  memdisk) and hidden (MENU HIDE), disabled and separator items are not entries. File order is kept.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from discovery.entry import BootEntry, Diagnostic, LoadResult, Severity, SourceFormat
from discovery.fs import Filesystem

if TYPE_CHECKING:
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

# Directives that change nothing a boot entry carries (display, input, serial, help text, network append).
SILENT = frozenset(
    {"say", "prompt", "ui", "serial", "console", "font", "kbdmap", "display", "noescape", "nocomplete", "nohalt",
     "implicit", "allowoptions", "totaltimeout", "onerror", "path", "ipappend", "sysappend", "f1", "f2", "f3", "f4",
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
    hidden: bool = False
    default: bool = False
    disabled: bool = False
    action: str | None = None  # MENU EXIT / GOTO / QUIT / HELP: navigation, not a boot
    global_append: str | None = None  # the global APPEND in force when the label ended

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
    timeout: tuple[str, str, int] | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    labels: list[_Label] = field(default_factory=list)

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
        joined = str(PurePosixPath(self.workdir, path)) if not path.startswith("/") else path
        normal = _normalise(joined)
        return self.fs.find_ci(normal) or normal


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


def _parse_file(state: _Parse, path: str, chain: tuple[str, ...]) -> None:
    try:
        text = state.fs.read_text(path)
    except OSError as exc:
        state.warn(chain[-1] if chain else path, 0, f"cannot read {path}: {exc.strerror or exc}", Severity.ERROR)
        return
    state.files.append(path)
    chain = (*chain, path)
    lines = iter(enumerate(text.splitlines(), 1))
    for number, raw in lines:
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, rest = _split(stripped)
        if key == "menu":
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
            state.label = _Label(name=rest, file=path, line=number)
        elif key in KERNEL_DIRECTIVES:
            label = state.label
            if label is None:
                state.warn(path, number, f"{key.upper()} outside a LABEL; ignored")
                continue
            label.kernel, label.kernel_line = rest, number
            label.kind = KernelKind.of_directive(key, rest)
        elif key == "append":
            if state.label is not None:
                state.label.append = rest
            else:
                state.append = rest
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
                state.label.fdtdir = rest
            else:
                state.warn(path, number, f"{key.upper()} outside a LABEL; ignored")
        elif key == "default":
            state.default = (rest, path, number)
        elif key == "ontimeout":
            state.ontimeout = (rest, path, number)
        elif key == "timeout":
            if not state.stack:
                state.timeout = (rest, path, number)
        elif key == "ui":
            state.has_ui = True
        elif key in SILENT:
            continue
        else:
            state.warn(path, number, f"unknown directive '{stripped.split()[0]}'; ignored")


def _menu_directive(state: _Parse, path: str, number: int, *, sub: str, arg: str, chain: tuple[str, ...]) -> None:
    menu = state.menu
    label = state.label
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
            parent.default = parent.items.index(menu)
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
        submenu = _Menu(title=arg, file=path, line=number, tag=arg or None)
        menu.items.append(submenu)
        state.stack.append(submenu)
    elif sub == "end":
        state.record()
        if state.stack:
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
    if not state.fs.is_file(target):
        state.warn(path, number, f"INCLUDE {name}: {target} not found; ignored")
        return
    tag = tag.strip()
    if tag:
        # MENU INCLUDE file tagname / INCLUDE file tagname: the file becomes a submenu.
        state.record()
        submenu = _Menu(title=tag, file=path, line=number, tag=tag)
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


def _to_entry(state: _Parse, label: _Label, submenu: tuple[str, ...]) -> BootEntry | None:
    ctx_diags = state.diagnostics
    if not label.boots or label.kind is not KernelKind.LINUX:
        if label.kind is KernelKind.CONFIG and label.boots and label.kernel:
            ctx_diags.append(
                Diagnostic(label.file, label.kernel_line, f"LABEL {label.name} loads another config; not followed")
            )
        return None
    warnings: list[Diagnostic] = []
    kernel_text = label.kernel
    if not kernel_text:
        # syslinux boots a file named like the label when the label names no kernel.
        if label.kernel is None and state.fs.is_file(state.resolve(label.name)):
            kernel_text = label.name
        else:
            ctx_diags.append(Diagnostic(label.file, label.line, f"LABEL {label.name} has no KERNEL or LINUX; skipped"))
            return None
    image, *kernel_args = kernel_text.split(None, 1)
    if PurePosixPath(image).name.lower() == "memdisk":
        ctx_diags.append(
            Diagnostic(label.file, label.kernel_line, f"LABEL {label.name} boots memdisk, which needs a BIOS; skipped")
        )
        return None
    append = label.append if label.append is not None else label.global_append
    if append is not None and append.strip() == "-":
        append = None
    cmdline = " ".join(p for p in (*kernel_args, append or "") if p).strip()
    kernel = state.resolve(image)
    line = label.kernel_line or label.line
    if not state.fs.is_file(kernel):
        warnings.append(Diagnostic(label.file, line, f"kernel {image} not found"))
    if label.initrd is not None:
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
        if not state.fs.is_file(found):
            warnings.append(Diagnostic(label.file, initrd_line, f"initrd {name} not found"))
    devicetree = None
    if label.fdt:
        devicetree = state.resolve(label.fdt)
        if not state.fs.is_file(devicetree):
            warnings.append(Diagnostic(label.file, label.fdt_line, f"devicetree {label.fdt} not found"))
    elif label.fdtdir:
        warnings.append(
            Diagnostic(label.file, line, f"FDTDIR {label.fdtdir}: the firmware picks the file; the running one is used")
        )
    ctx_diags.extend(warnings)
    return BootEntry(
        title=label.title or label.name,
        kernel=kernel,
        initrds=tuple(initrds),
        cmdline=cmdline,
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


def _flatten(state: _Parse, menu: _Menu, path: tuple[str, ...], out: list[BootEntry], where: dict[int, int]) -> None:
    """Depth first, in file order; `where` maps id(label) to its entry's index."""
    for item in menu.items:
        if isinstance(item, _Menu):
            _flatten(state, item, (*path, item.shown_title), out, where)
            continue
        entry = _to_entry(state, item, path)
        if entry is not None:
            where[id(item)] = len(out)
            out.append(entry)


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
    """The label a DEFAULT/ONTIMEOUT names: the whole text (U-Boot) or its first word (syslinux); the last one wins
    among duplicates in U-Boot, the first in syslinux: we take the first."""
    words = text.split()
    for candidate in (text.strip(), words[0] if words else ""):
        for label in state.labels:
            if candidate and label.name == candidate:
                return label
    return None


def _command_line_entry(state: _Parse, text: str, file: str, line: int, what: str) -> BootEntry | None:
    image, *args = text.split(None, 1)
    if KernelKind.of_directive("kernel", image) is not KernelKind.LINUX:
        return None
    kernel = state.resolve(image)
    if not state.fs.is_file(kernel):
        state.warn(file, line, f"{what} {image} names no label and no kernel file; nothing to boot")
        return None
    cmdline = args[0].strip() if args else ""
    initrds = tuple(state.resolve(p) for p in _initrd_option(cmdline))
    return BootEntry(
        title=text.strip(),
        kernel=kernel,
        initrds=initrds,
        cmdline=cmdline,
        format=SourceFormat.SYSLINUX,
        config=file,
        line=line,
        device=state.fs.name,
        config_device=state.fs.name,
    )


def _timeout(state: _Parse) -> float | None:
    if state.timeout is None:
        return None
    text, file, line = state.timeout
    digits = text.split()[0] if text.split() else ""
    if not digits.isdigit():
        state.warn(file, line, f"TIMEOUT '{text}' is not a number of tenths of a second; ignored")
        return None
    tenths = int(digits)
    return tenths / 10 if tenths else None  # 0: wait for the user


def load_config(fs: Filesystem, path: str) -> LoadResult:
    """The menu of one syslinux-family config file on `fs` (`path` absolute within it)."""
    state = _Parse(fs=fs, workdir=str(PurePosixPath(path).parent))
    _parse_file(state, path, ())
    state.record()
    if state.stack:
        top = state.stack[0]
        state.warn(top.file, top.line, "MENU BEGIN without MENU END; closed at the end of the file")
        state.stack.clear()
    entries: list[BootEntry] = []
    where: dict[int, int] = {}
    diags = state.diagnostics
    _flatten(state, state.root, (), entries, where)

    default_index: int | None = None
    chooser = state.ontimeout or state.default
    chosen: _Label | None = None
    decided = False
    if chooser is not None and chooser[0].split():
        text, file, line = chooser
        what = "ONTIMEOUT" if chooser is state.ontimeout else "DEFAULT"
        first = text.split()[0]
        if what == "DEFAULT" and not state.has_ui and first.lower().endswith(".c32"):
            pass  # DEFAULT vesamenu.c32: the menu program; the menu's own default applies
        else:
            chosen = _find_label(state, text)
            if chosen is not None and not chosen.hidden:
                decided = True
                # ldlinux boots `DEFAULT label args` with the args added; menu.c32 only looks at the label.
                appends = what == "ONTIMEOUT" or not state.has_ui
                words = text.split(None, 1)
                extra = words[1] if appends and len(words) > 1 and chosen.name != text.strip() else ""
                if id(chosen) in where and extra:
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
    if default_index is None and chosen is not None:
        default_index = where.get(id(chosen))
        if default_index is None:
            state.warn(chosen.file, chosen.line, f"the default, LABEL {chosen.name}, does not boot Linux; no default")
    if default_index is not None:
        entries[default_index] = entries[default_index].replace(default=True)
    timeout = _timeout(state)
    return LoadResult(
        entries=tuple(entries),
        diagnostics=tuple(diags),
        timeout=timeout,
        configs=tuple(state.files),
    )


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
    del ctx  # syslinux configs never name another filesystem
    total = LoadResult()
    for path in find_configs(fs):
        if path in total.configs:
            continue
        total = total + load_config(fs, path)
    return total
