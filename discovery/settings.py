"""Settings: one table (`PARAMS`) of every knob, read from a TOML file and from `bootmenu.*` kernel parameters.

The kernel command line wins over the file. The table says, for each knob, its kernel parameter, its file key (None:
only a kernel parameter), what it accepts, who consumes it (the daemon, the payload's /init, the menu) and its help;
the README's settings table is `markdown_table()` (tests/discovery/test_settings.py checks they agree).

Bad input never stops the daemon: an unknown or malformed parameter or key, or an unreadable or invalid file, becomes
a warning in `Settings.warnings` (the daemon logs it and pins it on every menu's status line) and the value keeps its
default. Parameters for /init or the menu are validated here too, so a typo there is reported just the same.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
import shlex
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from discovery.quiesce import Quiesce

if TYPE_CHECKING:  # imported where parsed: the menu reads settings without hashing or the attempt record's stack
    from discovery.attempts import StateSpec
    from discovery.password import PasswordHash

PREFIX = "bootmenu."
# Where `bootmenu initramfs build --settings FILE` puts the file and where the daemon looks by default.
PAYLOAD_SETTINGS = Path("/etc/bootmenu/settings.toml")
# Autoboot countdown in seconds when nothing says otherwise (Petitboot's default).
DEFAULT_TIMEOUT = 10.0
# Warnings kept and the length of each: they come from the command line or a file, both of unbounded size.
MAX_WARNINGS = 20
MAX_WARNING_LEN = 240
MAX_FILE_BYTES = 64 * 1024


class SettingsError(ValueError):
    """A bad value, naming where it came from (file and key, or the kernel parameter)."""


class Consumer(enum.StrEnum):
    """Who acts on a setting (the daemon validates them all)."""

    DAEMON = "daemon"
    INIT = "init"  # the payload's /init (initramfs/data/init), before any Python runs
    UI = "ui"  # `bootmenu ui`, which reads /proc/cmdline itself


class OrderKind(enum.StrEnum):
    UUID = "uuid"
    LABEL = "label"
    TYPE = "type"

    def matches(self, value: str, *, uuid: str, label: str, kind: str) -> bool:
        if self is OrderKind.UUID:
            return uuid.lower() == value.lower()
        if self is OrderKind.LABEL:
            return label == value
        return kind == value


@dataclass(frozen=True)
class OrderRule:
    """One boot-order item: devices matching it come before those matching later rules, or none."""

    kind: OrderKind
    value: str

    @classmethod
    def parse(cls, text: str, where: str) -> OrderRule:
        kind, sep, value = text.partition(":")
        if not sep or not value or kind not in OrderKind.__members__.values():
            raise SettingsError(f"{where}: boot order item {text!r} is not uuid:X, label:X or type:X")
        return cls(OrderKind(kind), value)

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class StaticIp:
    """`bootmenu.ip=` in the kernel's `ip=` syntax (Documentation/admin-guide/nfs/nfsroot.rst):
    `client:server:gateway:netmask:hostname:device:autoconf:dns0:dns1`, fields after the netmask optional. The
    server is the TFTP server; `device` empty means the first interface. With autoconf `off`/`none` (or `static`)
    the address is set without DHCP; otherwise it is the fallback when DHCP gets no lease."""

    client: str
    server: str = ""
    gateway: str = ""
    netmask: str = "255.255.255.0"
    hostname: str = ""
    device: str = ""
    autoconf: str = ""
    dns: tuple[str, ...] = ()

    @property
    def dhcp_first(self) -> bool:
        return self.autoconf not in ("off", "none", "static")

    @property
    def prefix_length(self) -> int:
        return ipaddress.IPv4Network(f"0.0.0.0/{self.netmask}").prefixlen

    @classmethod
    def parse(cls, text: str, where: str) -> StaticIp:
        fields = text.split(":")
        if len(fields) < 4 or len(fields) > 10:
            raise SettingsError(
                f"{where}: {text!r} is not client:server:gateway:netmask[:hostname:device:autoconf:dns0:dns1]"
            )
        fields += [""] * (9 - len(fields))
        client, server, gateway, netmask, hostname, device, autoconf, dns0, dns1 = fields[:9]
        for name, value in (
            ("client", client),
            ("server", server),
            ("gateway", gateway),
            ("dns0", dns0),
            ("dns1", dns1),
        ):
            if (value or name == "client") and not _ipv4(value):
                raise SettingsError(f"{where}: {name} address {value!r} in {text!r} is not an IPv4 address")
        netmask = netmask or "255.255.255.0"
        try:
            ipaddress.IPv4Network(f"0.0.0.0/{netmask}")
        except ValueError:
            raise SettingsError(f"{where}: netmask {netmask!r} in {text!r} is not a netmask or prefix length") from None
        if device and not IFNAME_RE.match(device):
            raise SettingsError(f"{where}: device {device!r} in {text!r} is not an interface name")
        if autoconf not in ("", "off", "none", "static", "on", "any", "dhcp"):
            raise SettingsError(f"{where}: autoconf {autoconf!r} in {text!r} is not off, none, on, any or dhcp")
        return cls(client, server, gateway, netmask, hostname, device, autoconf, tuple(d for d in (dns0, dns1) if d))

    def __str__(self) -> str:
        words = [self.client, self.server, self.gateway, self.netmask, self.hostname, self.device, self.autoconf]
        return ":".join(words + list(self.dns)).rstrip(":")


def _ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


# An interface name as the kernel accepts it (dev_valid_name: at most 15 bytes, no '/', ':' or whitespace).
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
CONSOLE_RE = re.compile(r"^(\d{2,4})x(\d{1,4})$")
# A tty name, optionally with the kernel's console options (`ttyS0`, `ttyS0,115200n8`, `hvc0`, `tty0`).
TTY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,31}(,[A-Za-z0-9]{1,32})?$")
# A watchdog timeout beyond this is a typo (the i6300esb takes up to 2046 s, iTCO up to 613 s).
MAX_WATCHDOG = 3600
_TRUE = ("1", "yes", "true", "on")
_FALSE = ("0", "no", "false", "off")


# --- value parsers: (value from TOML or the command line, where) -> field changes; raise SettingsError ---


def _bool(name: str) -> Callable[[Any, str], dict[str, Any]]:
    def parse(value: Any, where: str) -> dict[str, Any]:
        if isinstance(value, bool):
            return {name: value}
        text = str(value).lower()
        if text in _TRUE:
            return {name: True}
        if text in _FALSE:
            return {name: False}
        raise SettingsError(f"{where}: {value!r} is not a yes/no value (1, 0, true, false, on, off)")

    return parse


def _timeout(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str) and value.lower() in ("off", "never", "-1"):
        return {"autoboot": False}
    if isinstance(value, str) and value.lower() == "config":
        return {"autoboot": True, "timeout_from_config": True}
    bad = SettingsError(f"{where}: timeout {value!r} is not a number of seconds, 'off' or 'config'")
    if isinstance(value, bool):
        raise bad
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise bad from None
    if not math.isfinite(seconds) or seconds > 86400:
        raise bad
    if seconds < 0:
        return {"autoboot": False}
    return {"timeout": seconds, "autoboot": True, "timeout_from_config": False}


def _order(value: Any, where: str) -> dict[str, Any]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise SettingsError(f"{where}: boot order must be a list of strings")
    return {"boot_order": tuple(OrderRule.parse(i.strip(), where) for i in items if i.strip())}


def _interfaces(value: Any, where: str) -> dict[str, Any]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise SettingsError(f"{where}: network interfaces must be a list of interface names")
    names = tuple(i.strip() for i in items if i.strip())
    for name in names:
        if not IFNAME_RE.match(name):
            raise SettingsError(f"{where}: {name!r} is not an interface name")
    return {"network_interfaces": names}


def _static_ip(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, str):
        raise SettingsError(f"{where}: ip must be a string in the kernel's ip= syntax")
    return {"ip": StaticIp.parse(value, where) if value else None}


def _console_size(value: Any, where: str) -> dict[str, Any]:
    match = CONSOLE_RE.match(str(value))
    if not match or int(match[1]) < 20 or int(match[2]) < 5:
        raise SettingsError(f"{where}: console {value!r} is not COLSxROWS, for example 80x24")
    return {"console": (int(match[1]), int(match[2]))}


def _tty(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, str) or not (value in ("", "none") or TTY_RE.match(value)):
        raise SettingsError(f"{where}: {value!r} is not a tty name such as ttyS0 (or ttyS0,115200n8, or none)")
    return {"autoboot_console": value}


def _quiesce(value: Any, where: str) -> dict[str, Any]:
    if str(value) not in Quiesce.__members__.values():
        raise SettingsError(f"{where}: quiesce {value!r} is not 'unbind' or 'off'")
    return {"quiesce": Quiesce(str(value))}


def _watchdog(value: Any, where: str) -> dict[str, Any]:
    if value is False or (isinstance(value, str) and value.lower() in _FALSE):
        return {"watchdog": None}
    try:
        seconds = int(str(value), 10)
    except ValueError:
        raise SettingsError(f"{where}: watchdog {value!r} is not a number of seconds or 'off'") from None
    if isinstance(value, bool) or not 1 <= seconds <= MAX_WATCHDOG:
        raise SettingsError(f"{where}: watchdog {value!r} is not between 1 and {MAX_WATCHDOG} seconds or 'off'")
    return {"watchdog": seconds}


def _state(value: Any, where: str) -> dict[str, Any]:
    from discovery.attempts import StateSpec

    spec = StateSpec.parse(str(value))
    if spec is None:
        raise SettingsError(f"{where}: state {value!r} is not LABEL=NAME or UUID=UUID")
    return {"state": spec}


def _password(value: Any, where: str) -> dict[str, Any]:
    """The menu password's hash. Never quoted in a message; a malformed one locks the gated actions (fail closed: a
    typo must not turn the protection off), and it is refused on the kernel command line, which every process reads."""
    if where.startswith("kernel command line"):
        name = where.split("=", maxsplit=1)[0]
        raise SettingsError(f"{name}: the password belongs in the settings file, not on the command line")
    from discovery.password import PasswordError, PasswordHash

    if not isinstance(value, str):
        return {"password": PasswordHash.locked(), "_error": f"{where}: not a string from `bootmenu passwd`"}
    try:
        return {"password": PasswordHash.parse(value)}
    except PasswordError as exc:
        return {"password": PasswordHash.locked(), "_error": f"{where}: {exc}"}


def _checked(parse: Callable[[Any, str], dict[str, Any]]) -> Callable[[Any, str], dict[str, Any]]:
    """For knobs consumed elsewhere (/init, the menu): validate the value, change nothing here."""

    def check(value: Any, where: str) -> dict[str, Any]:
        parse(value, where)
        return {}

    return check


@dataclass(frozen=True)
class Param:
    """One knob. `name` is the kernel parameter without `bootmenu.`; `key` its settings-file key, None if none."""

    name: str
    key: str | None
    parse: Callable[[Any, str], dict[str, Any]]
    consumers: tuple[Consumer, ...]
    values: str  # what it accepts, for the README
    help: str
    flag: bool = False  # `bootmenu.NAME` alone means true
    cmdline: bool = True  # False: a settings-file key only (a secret: the command line is readable by everyone)

    @property
    def parameter(self) -> str:
        return PREFIX + self.name


PARAMS: tuple[Param, ...] = (
    Param(
        "timeout", "timeout", _timeout, (Consumer.DAEMON,), "seconds, `off`, `config`",
        "autoboot countdown (default 10 s). It always governs: a config's own timeout or hidden menu is shown in "
        "the entry's details but never shortens it, unless `config` asks for the config's timeout (10 s if none); "
        "`0` boots at once, `off` never",
    ),
    Param(
        "order", "boot_order", _order, (Consumer.DAEMON,), "`uuid:X`, `label:X`, `type:X` items",
        "devices first in this order, whose default autoboots (`type`: disk, usb, cdrom, nvme, mmc, directory, "
        "network); a comma-separated list on the command line, a list of strings in the file",
    ),
    Param(
        "console", "console", _console_size, (Consumer.DAEMON, Consumer.UI), "`COLSxROWS`",
        "terminal size for menus on consoles that cannot report it (default 80x24)",
    ),
    Param(
        "console_handoff", "console_handoff", _bool("console_handoff"), (Consumer.DAEMON,), "yes/no",
        "add `console=` for the menu's console to a booted command line that names none (default yes)",
    ),
    Param(
        "autoboot_console", "autoboot_console", _tty, (Consumer.DAEMON,), "tty, `tty,OPTIONS`, `none`",
        "the console autoboot hands off to: its line settings are read from the device (default: the payload's own "
        "last `console=`; `none`: no hand-off on autoboot)",
    ),
    Param(
        "network", "network", _bool("network"), (Consumer.DAEMON,), "yes/no",
        "DHCP on every Ethernet interface, then its pxelinux or GRUB config over TFTP/HTTP (default yes); `no` "
        "never touches a network interface",
    ),
    Param(
        "network_interfaces", "network_interfaces", _interfaces, (Consumer.DAEMON,), "interface names",
        "only these interfaces get DHCP (default: every Ethernet interface with a driver); a comma-separated list "
        "on the command line, a list of strings in the file",
    ),
    Param(
        "ip", "ip", _static_ip, (Consumer.DAEMON,), "`client:server:gw:mask[:host:dev:autoconf:dns0:dns1]`",
        "a static address in the kernel's `ip=` syntax: the fallback when DHCP gets no lease on `dev` (default: the "
        "first interface), or the address itself with autoconf `off`/`none`; `server` is the TFTP server",
    ),
    Param(
        "debug", "debug", _bool("debug"), (Consumer.DAEMON, Consumer.INIT), "yes/no",
        "debug logging in the daemon; /init traces itself (`set -x`)", flag=True,
    ),
    Param(
        "quiesce", "quiesce", _quiesce, (Consumer.DAEMON,), "`unbind`, `off`",
        "before the jump, unbind the drivers of PCI storage, network, USB and Fibre Channel controllers (their "
        "`remove()` stops DMA a missing `shutdown()` leaves running), never the one behind an active console "
        "(default `unbind`)",
    ),
    Param(
        "watchdog", "watchdog", _watchdog, (Consumer.DAEMON,), "seconds, `off`",
        "arm `/dev/watchdog0` with this timeout as the last step before the jump, so a kernel that dies before it "
        "takes the watchdog over is reset back into the menu (default `off`). Trade-off: a system that boots fine "
        "but never takes it over (no driver, no watchdog service) is reset too",
    ),
    Param(
        "state", "state", _state, (Consumer.DAEMON,), "`LABEL=X`, `UUID=X`",
        "the filesystem (vfat is simplest) for the boot attempt record that names an entry which did not come up "
        "(an EFI variable instead when efivarfs is mounted; default none)",
    ),
    Param(
        "password", "password", _password, (Consumer.DAEMON,), "`$scrypt$...` from `bootmenu passwd` (file only)",
        "asked before editing an entry, the shell, booting anything but the default, reboot and power off; checked "
        "by the daemon. A malformed value refuses those actions until it is fixed",
        cmdline=False,
    ),
    Param(
        "shell", None, _checked(_bool("shell")), (Consumer.INIT,), "yes/no",
        "a shell on the console before the menu (the menu starts when it exits)", flag=True,
    ),
    Param(
        "ascii", None, _checked(_bool("ascii")), (Consumer.UI,), "yes/no",
        "menus draw with ASCII only", flag=True,
    ),
    Param(
        "mono", None, _checked(_bool("mono")), (Consumer.UI,), "yes/no",
        "menus use no colours", flag=True,
    ),
    Param(
        "timeline", None, _checked(_bool("timeline")), (Consumer.INIT, Consumer.DAEMON, Consumer.UI), "yes/no",
        "boot timeline: /init, the daemon and the menu stamp their start-up events in the kernel log "
        "(`bootmenu-timeline:` lines in `dmesg`; `make bench` prints them with deltas)", flag=True,
    ),
)  # fmt: skip
BY_NAME: Mapping[str, Param] = {p.name: p for p in PARAMS}
BY_KEY: Mapping[str, Param] = {p.key: p for p in PARAMS if p.key is not None}


def _clip(text: str) -> str:
    return text if len(text) <= MAX_WARNING_LEN else text[: MAX_WARNING_LEN - 3] + "..."


def cmdline_words(cmdline: str) -> list[str]:
    try:
        return shlex.split(cmdline)
    except ValueError:
        return cmdline.split()


def cmdline_flag(cmdline: str, name: str) -> bool | None:
    """The yes/no parameter `bootmenu.NAME` (bare = yes) from a command line, the last one winning; None if absent or
    malformed (the daemon reports it)."""
    param = BY_NAME[name]
    found: bool | None = None
    for word in cmdline_words(cmdline):
        key, sep, value = word.partition("=")
        if key != param.parameter:
            continue
        try:
            found = bool(_bool(name)(value if sep else "1", word)[name])
        except SettingsError:
            continue
    return found


@dataclass(frozen=True)
class Settings:
    """`timeout` counts when `autoboot`; `timeout_from_config` lets a config's timeout replace it."""

    timeout: float = DEFAULT_TIMEOUT
    autoboot: bool = True
    timeout_from_config: bool = False
    boot_order: tuple[OrderRule, ...] = ()
    console: tuple[int, int] | None = None
    console_handoff: bool = True
    network: bool = True
    network_interfaces: tuple[str, ...] = ()
    ip: StaticIp | None = None
    autoboot_console: str = ""
    debug: bool = False
    quiesce: Quiesce = Quiesce.UNBIND
    watchdog: int | None = None  # seconds; None: off
    state: StateSpec | None = None
    password: PasswordHash | None = field(default=None, repr=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def rank(self, *, uuid: str, label: str, kind: str) -> int:
        """The device's place in the boot order: index of the first matching rule, len(rules) when none."""
        for i, rule in enumerate(self.boot_order):
            if rule.kind.matches(rule.value, uuid=uuid, label=label, kind=kind):
                return i
        return len(self.boot_order)

    def effective_timeout(self, config_timeout: float | None) -> float | None:
        """Seconds before autoboot, or None for never. The firmware's setting, unless `timeout = "config"`."""
        if not self.autoboot:
            return None
        if self.timeout_from_config and config_timeout is not None:
            # GRUB's timeout=-1 means wait forever.
            return None if config_timeout < 0 else config_timeout
        return self.timeout

    def timeout_json(self) -> float | str:
        if not self.autoboot:
            return "off"
        return "config" if self.timeout_from_config else self.timeout

    def to_json(self) -> dict[str, Any]:
        out = {
            "timeout": self.timeout_json(),
            "boot_order": [str(r) for r in self.boot_order],
            "console": f"{self.console[0]}x{self.console[1]}" if self.console else None,
            "console_handoff": self.console_handoff,
            "network": self.network,
            "network_interfaces": list(self.network_interfaces),
            "ip": str(self.ip) if self.ip else None,
            "autoboot_console": self.autoboot_console,
            "debug": self.debug,
            "quiesce": str(self.quiesce),
            "watchdog": self.watchdog if self.watchdog is not None else "off",
            "state": str(self.state) if self.state else None,
            "warnings": list(self.warnings),
        }
        if self.password is not None:
            out["password"] = True  # menus ask before gated actions; the hash itself never leaves the daemon
        return out

    # --- sources ---

    def warn(self, message: str) -> Settings:
        if len(self.warnings) >= MAX_WARNINGS:
            return self
        if len(self.warnings) == MAX_WARNINGS - 1:
            message = "more settings warnings left out"
        return replace(self, warnings=(*self.warnings, _clip(message)))

    def with_param(self, param: Param, value: Any, where: str) -> Settings:
        """`value` for `param`; raises SettingsError when it is malformed."""
        changes = param.parse(value, where)
        error = changes.pop("_error", None)  # a value taken in a safe form, with a warning (the password)
        out = replace(self, **changes)
        return out.warn(f"{error}; gated actions are refused until it is fixed") if error else out

    def _try(self, param: Param, value: Any, where: str) -> Settings:
        try:
            return self.with_param(param, value, where)
        except SettingsError as exc:
            return self.warn(f"{exc}; ignored")

    def with_file(self, path: Path) -> Settings:
        try:
            with path.open("rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            return self.warn(f"{path}: {exc.strerror}; settings file ignored")
        if len(raw) > MAX_FILE_BYTES:
            return self.warn(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB; settings file ignored")
        try:
            data = tomllib.loads(raw.decode())
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            return self.warn(f"{path}: {exc}; settings file ignored")
        out = self
        for key, value in data.items():
            param = BY_KEY.get(key)
            if param is None:
                out = out.warn(f"{path}: unknown setting {key!r} ignored (known: {', '.join(BY_KEY)})")
                continue
            out = out._try(param, value, f"{path}: {key}")
        return out

    def with_cmdline(self, cmdline: str) -> Settings:
        out = self
        for word in cmdline_words(cmdline):
            name, sep, value = word.partition("=")
            if not name.startswith(PREFIX):
                continue
            where = f"kernel command line: {word}"
            param = BY_NAME.get(name.removeprefix(PREFIX))
            if param is None:
                known = ", ".join(p.parameter for p in PARAMS if p.cmdline)
                out = out.warn(f"{where}: unknown parameter ignored (known: {known})")
            elif not param.cmdline:
                out = out.warn(f"kernel command line: {param.parameter}: belongs in the settings file; ignored")
            elif not sep and not param.flag:
                out = out.warn(f"{where}: needs a value ({param.parameter}=...); ignored")
            else:
                out = out._try(param, value if sep else "1", where)
        return out

    @classmethod
    def load(cls, path: Path | None = None, cmdline: str | None = None) -> Settings:
        """Settings from `path` (when given and present) and `cmdline` (default: /proc/cmdline). Never raises."""
        out = cls()
        if path is not None and (path.exists() or path.is_symlink()):
            out = out.with_file(path)
        if cmdline is None:
            try:
                cmdline = Path("/proc/cmdline").read_text(errors="replace")
            except OSError:
                cmdline = ""
        return out.with_cmdline(cmdline)


def markdown_table() -> str:
    """The README's settings table, generated from PARAMS."""
    rows = ["| kernel parameter | file key | values | read by | meaning |", "| --- | --- | --- | --- | --- |"]
    for p in PARAMS:
        key = f"`{p.key}`" if p.key else "-"
        parameter = f"`{p.parameter}`" if p.cmdline else "-"
        values = p.values + (" (bare: yes)" if p.flag else "")
        consumers = ", ".join(p.consumers)
        rows.append(f"| {parameter} | {key} | {values} | {consumers} | {p.help} |")
    return "\n".join(rows) + "\n"
