"""Daemon settings: a TOML file, then `bootmenu.*` parameters from the kernel command line (which win).

File keys (all optional):

    timeout = 10            # seconds; 0 boots the default at once; "off" never autoboots
    boot_order = ["uuid:0a1b...", "label:root", "type:usb", "type:disk"]
    console = "80x24"       # terminal size for UIs on consoles that cannot report it
    debug = false
    quiesce = "unbind"      # unbind DMA-capable PCI drivers before the jump; "off" leaves them (discovery/quiesce.py)
    watchdog = 60           # arm the hardware watchdog with this timeout for the jump; default "off"
                            # (discovery/watchdog.py says the trade-off)
    state = "LABEL=BMSTATE" # the filesystem for the boot attempt record (discovery/attempts.py); default none

Kernel parameters: `bootmenu.timeout=SECONDS|0|off`, `bootmenu.order=uuid:X,label:Y,type:usb`,
`bootmenu.console=COLSxROWS`, `bootmenu.debug` (or `bootmenu.debug=1`), `bootmenu.quiesce=unbind|off`,
`bootmenu.watchdog=SECONDS|off`, `bootmenu.state=LABEL=X|UUID=X`.
"""

from __future__ import annotations

import enum
import math
import re
import shlex
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from discovery.attempts import StateSpec
from discovery.quiesce import Quiesce


class SettingsError(ValueError):
    """A bad value, naming where it came from (file and key, or the kernel parameter)."""


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


CONSOLE_RE = re.compile(r"^(\d+)x(\d+)$")
# A watchdog timeout beyond this is a typo (the i6300esb takes up to 2046 s, iTCO up to 613 s).
MAX_WATCHDOG = 3600
# Autoboot timeout when neither the settings nor any config give one (Petitboot's default).
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Settings:
    """`timeout`: None = from the config; a negative value never occurs (`off` is `autoboot=False`)."""

    timeout: float | None = None
    autoboot: bool = True
    boot_order: tuple[OrderRule, ...] = ()
    console: tuple[int, int] | None = None
    debug: bool = False
    quiesce: Quiesce = Quiesce.UNBIND
    watchdog: int | None = None  # seconds; None: off
    state: StateSpec | None = None

    def rank(self, *, uuid: str, label: str, kind: str) -> int:
        """The device's place in the boot order: index of the first matching rule, len(rules) when none."""
        for i, rule in enumerate(self.boot_order):
            if rule.kind.matches(rule.value, uuid=uuid, label=label, kind=kind):
                return i
        return len(self.boot_order)

    def effective_timeout(self, config_timeout: float | None) -> float | None:
        """Seconds before autoboot, or None for never: settings, else the config's, else DEFAULT_TIMEOUT."""
        if not self.autoboot:
            return None
        if self.timeout is not None:
            return self.timeout
        if config_timeout is not None:
            # GRUB's timeout=-1 means wait forever.
            return None if config_timeout < 0 else config_timeout
        return DEFAULT_TIMEOUT

    def to_json(self) -> dict[str, Any]:
        return {
            "timeout": self.timeout if self.autoboot else "off",
            "boot_order": [str(r) for r in self.boot_order],
            "console": f"{self.console[0]}x{self.console[1]}" if self.console else None,
            "debug": self.debug,
            "quiesce": str(self.quiesce),
            "watchdog": self.watchdog if self.watchdog is not None else "off",
            "state": str(self.state) if self.state else None,
        }

    # --- sources ---

    def with_value(self, key: str, value: Any, where: str) -> Settings:
        if key == "timeout":
            return self._with_timeout(value, where)
        if key in ("boot_order", "order"):
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
                raise SettingsError(f"{where}: boot order must be a list of strings")
            return replace(self, boot_order=tuple(OrderRule.parse(i.strip(), where) for i in items if i.strip()))
        if key == "console":
            match = CONSOLE_RE.match(str(value))
            if not match:
                raise SettingsError(f"{where}: console {value!r} is not COLSxROWS, for example 80x24")
            return replace(self, console=(int(match[1]), int(match[2])))
        if key == "debug":
            if isinstance(value, bool):
                return replace(self, debug=value)
            return replace(self, debug=str(value).lower() not in ("0", "no", "false", "off"))
        if key == "quiesce":
            if str(value) not in Quiesce.__members__.values():
                raise SettingsError(f"{where}: quiesce {value!r} is not 'unbind' or 'off'")
            return replace(self, quiesce=Quiesce(str(value)))
        if key == "watchdog":
            return self._with_watchdog(value, where)
        if key == "state":
            spec = StateSpec.parse(str(value))
            if spec is None:
                raise SettingsError(f"{where}: state {value!r} is not LABEL=NAME or UUID=UUID")
            return replace(self, state=spec)
        raise SettingsError(f"{where}: unknown setting {key!r}")

    def _with_watchdog(self, value: Any, where: str) -> Settings:
        if value is False or (isinstance(value, str) and value.lower() in ("off", "0", "no", "false")):
            return replace(self, watchdog=None)
        try:
            seconds = int(str(value), 10)
        except ValueError:
            raise SettingsError(f"{where}: watchdog {value!r} is not a number of seconds or 'off'") from None
        if isinstance(value, bool) or not 1 <= seconds <= MAX_WATCHDOG:
            raise SettingsError(f"{where}: watchdog {value!r} is not between 1 and {MAX_WATCHDOG} seconds or 'off'")
        return replace(self, watchdog=seconds)

    def _with_timeout(self, value: Any, where: str) -> Settings:
        if isinstance(value, str) and value.lower() in ("off", "never", "-1"):
            return replace(self, timeout=None, autoboot=False)
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{where}: timeout {value!r} is not a number of seconds or 'off'") from None
        if isinstance(value, bool) or not math.isfinite(seconds):
            raise SettingsError(f"{where}: timeout {value!r} is not a number of seconds or 'off'")
        if seconds < 0:
            return replace(self, timeout=None, autoboot=False)
        return replace(self, timeout=seconds, autoboot=True)

    def with_file(self, path: Path) -> Settings:
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise SettingsError(f"{path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: {exc}") from None
        out = self
        for key, value in data.items():
            out = out.with_value(key, value, f"{path}: {key}")
        return out

    def with_cmdline(self, cmdline: str) -> Settings:
        out = self
        try:
            words: Sequence[str] = shlex.split(cmdline)
        except ValueError:
            words = cmdline.split()
        for word in words:
            name, sep, value = word.partition("=")
            if not name.startswith("bootmenu."):
                continue
            key = name.removeprefix("bootmenu.")
            if key == "debug" and not sep:
                value = "1"
            out = out.with_value(key, value, f"kernel command line: {word}")
        return out

    @classmethod
    def load(cls, path: Path | None = None, cmdline: str | None = None) -> Settings:
        """Settings from `path` (when given and present) and `cmdline` (default: /proc/cmdline)."""
        out = cls()
        if path is not None and path.exists():
            out = out.with_file(path)
        if cmdline is None:
            try:
                cmdline = Path("/proc/cmdline").read_text()
            except OSError:
                cmdline = ""
        return out.with_cmdline(cmdline)
