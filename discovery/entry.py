"""The boot entry: the one value every config loader returns and every UI shows.

Loaders (GRUB, BLS, syslinux) differ in syntax; what a user boots is the same thing: a kernel, its initrds in order,
an optional devicetree and a command line, living on one filesystem. Paths are absolute within that filesystem.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class SourceFormat(enum.StrEnum):
    GRUB = "grub"
    BLS = "bls"
    SYSLINUX = "syslinux"
    DHCP = "dhcp"  # a DHCP bootfile that is a kernel (no config names it): discovery.netboot


class Severity(enum.StrEnum):
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Diagnostic:
    """A problem found while reading a config, with the file and line it came from (line 0: the whole file)."""

    file: str
    line: int
    message: str
    severity: Severity = Severity.WARNING

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "message": self.message, "severity": str(self.severity)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Diagnostic:
        return cls(
            file=str(data["file"]),
            line=int(data["line"]),
            message=str(data["message"]),
            severity=Severity(data.get("severity", "warning")),
        )


@dataclass(frozen=True)
class BootCount:
    """Boot counting from a BLS file name `NAME+LEFT[-DONE].conf` (systemd's automatic boot assessment)."""

    left: int
    done: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"left": self.left, "done": self.done}


@dataclass(frozen=True)
class EnvSave:
    """One `save_env` that booting the entry performs: variable `name` set to `value` (None: deleted, as GRUB does
    for an unset variable) in the grubenv file `path` of filesystem `device`. Daemon-side only, not in the JSON."""

    device: str
    path: str
    name: str
    value: str | None

    def __str__(self) -> str:
        return f"{self.name}={self.value}" if self.value is not None else f"{self.name} deleted"


@dataclass(frozen=True)
class BootEntry:
    """One bootable Linux entry, as GRUB or syslinux would show it.

    `device` names the filesystem holding the kernel, initrds and devicetree (its `Filesystem.name`);
    `config_device` the one holding the config that described it (they differ after `search --fs-uuid`).
    `unresolved` is set when the kernel's filesystem was named (by UUID, label, file) but not present yet.
    """

    title: str
    kernel: str
    initrds: tuple[str, ...] = ()
    cmdline: str = ""
    devicetree: str | None = None
    default: bool = False
    submenu: tuple[str, ...] = ()
    id: str | None = None
    format: SourceFormat = SourceFormat.GRUB
    config: str = ""
    line: int = 0
    device: str = ""
    config_device: str = ""
    unresolved: str | None = None
    version: str | None = None
    sort_key: str | None = None
    architecture: str | None = None
    boot_count: BootCount | None = None
    warnings: tuple[Diagnostic, ...] = field(default=())
    # Words the boot loader itself puts before the command line, which the kernel receives too: GRUB's Linux loaders
    # prepend `BOOT_IMAGE=<the kernel path as written>` (grub-core/loader/*/linux.c, LINUX_IMAGE), syslinux too
    # (com32/elflink/ldlinux/kernel.c). Not part of `cmdline`, so the editor shows what GRUB's editor shows;
    # `kernel_cmdline` is what is booted.
    loader_args: tuple[str, ...] = ()
    # Words the boot loader puts after the command line: syslinux's `initrd=<INITRD as written>` for an INITRD
    # directive (com32/elflink/ldlinux/readconfig.c, record()). After `cmdline`, so after the user's edits too.
    loader_tail: tuple[str, ...] = ()
    # What booting writes back (discovery.loaderwrites): GRUB `save_env` calls of the config and of the entry body.
    env_saves: tuple[EnvSave, ...] = field(default=(), compare=False)

    @property
    def bad(self) -> bool:
        """BLS boot counting says every try failed (`+0-N`): listed last, marked, never the autoboot default."""
        return self.boot_count is not None and self.boot_count.left == 0

    @property
    def key(self) -> str:
        """A stable identity for the entry within one daemon run: device, config, menu path and title."""
        path = ">".join((*self.submenu, self.title))
        return f"{self.config_device or self.device}:{self.config}:{self.line}:{path}"

    def kernel_cmdline(self) -> str:
        """The command line the kernel gets: the loader's own words around the entry's (possibly edited) cmdline."""
        return " ".join(w for w in (*self.loader_args, self.cmdline, *self.loader_tail) if w)

    def replace(self, **changes: Any) -> BootEntry:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "kernel": self.kernel,
            "initrd": list(self.initrds),
            "cmdline": self.cmdline,
            "loader_args": list(self.loader_args),
            # Only when there is one (syslinux INITRD), so the other loaders' JSON stays as it was.
            **({"loader_tail": list(self.loader_tail)} if self.loader_tail else {}),
            "devicetree": self.devicetree,
            "default": self.default,
            "submenu": list(self.submenu),
            "id": self.id,
            "format": str(self.format),
            "config": self.config,
            "line": self.line,
            "device": self.device,
            "config_device": self.config_device,
            "unresolved": self.unresolved,
            "version": self.version,
            "sort_key": self.sort_key,
            "architecture": self.architecture,
            "boot_count": self.boot_count.to_json() if self.boot_count else None,
            "warnings": [w.to_json() for w in self.warnings],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BootEntry:
        count = data.get("boot_count")
        return cls(
            title=str(data["title"]),
            kernel=str(data["kernel"]),
            initrds=tuple(str(i) for i in data.get("initrd", ())),
            cmdline=str(data.get("cmdline", "")),
            loader_args=tuple(str(w) for w in data.get("loader_args", ())),
            loader_tail=tuple(str(w) for w in data.get("loader_tail", ())),
            devicetree=data.get("devicetree"),
            default=bool(data.get("default", False)),
            submenu=tuple(str(s) for s in data.get("submenu", ())),
            id=data.get("id"),
            format=SourceFormat(data.get("format", "grub")),
            config=str(data.get("config", "")),
            line=int(data.get("line", 0)),
            device=str(data.get("device", "")),
            config_device=str(data.get("config_device", "")),
            unresolved=data.get("unresolved"),
            version=data.get("version"),
            sort_key=data.get("sort_key"),
            architecture=data.get("architecture"),
            boot_count=BootCount(int(count["left"]), count.get("done")) if count else None,
            warnings=tuple(Diagnostic.from_json(w) for w in data.get("warnings", ())),
        )


@dataclass(frozen=True)
class LoadResult:
    """What one loader found on one filesystem."""

    entries: tuple[BootEntry, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    timeout: float | None = None
    configs: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = ()
    # Paths of BLS entry files already expanded by GRUB's blscfg, so the BLS loader does not list them twice.
    consumed: tuple[str, ...] = ()
    # How the config wants its menu shown: GRUB's timeout_style (menu, countdown, hidden), loader.conf's
    # menu-hidden as "hidden". Shown in the entry's details; the firmware's own countdown governs (issue 10).
    timeout_style: str | None = None

    def __add__(self, other: LoadResult) -> LoadResult:
        return LoadResult(
            entries=self.entries + other.entries,
            diagnostics=self.diagnostics + other.diagnostics,
            timeout=self.timeout if self.timeout is not None else other.timeout,
            configs=self.configs + other.configs,
            unresolved=self.unresolved + other.unresolved,
            consumed=self.consumed + other.consumed,
            timeout_style=self.timeout_style if self.timeout is not None else other.timeout_style,
        )
