"""The whole-entry editor's state: kernel, initrds (in order), devicetree and command line; no urwid here.

Like Petitboot's boot editor and GRUB's `e`: the edit boots once (Ctrl-X) and is then forgotten. Paths are on the
entry's device, as the entry writes them. The checks here are the ones a menu can make alone (a path is absolute,
no field is empty, the bounds of protocol.Boot); whether each file exists on the device the menu asks the daemon as
the operator types (protocol.CheckPaths), and the daemon checks again when the edit is booted, the same check as for
any entry, refusing a missing file with a status line naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from discovery import protocol as p
from discovery.entry import BootEntry


@dataclass(frozen=True)
class EntryEdit:
    kernel: str
    initrds: tuple[str, ...] = ()
    devicetree: str = ""  # empty: none
    cmdline: str = ""

    @classmethod
    def of(cls, entry: BootEntry) -> EntryEdit:
        return cls(entry.kernel, tuple(entry.initrds), entry.devicetree or "", entry.cmdline)

    # --- the initrd list ---

    def add_initrd(self, after: int | None) -> tuple[EntryEdit, int]:
        """A new empty initrd after index `after` (None: at the end); returns the edit and the new row's index."""
        at = len(self.initrds) if after is None else min(after + 1, len(self.initrds))
        return replace(self, initrds=(*self.initrds[:at], "", *self.initrds[at:])), at

    def remove_initrd(self, index: int) -> tuple[EntryEdit, int | None]:
        """Without initrd `index`; returns the edit and the index of the row to select (None when none is left)."""
        if not 0 <= index < len(self.initrds):
            return self, None
        initrds = self.initrds[:index] + self.initrds[index + 1 :]
        return replace(self, initrds=initrds), min(index, len(initrds) - 1) if initrds else None

    def move_initrd(self, index: int, delta: int) -> tuple[EntryEdit, int]:
        """Initrd `index` moved `delta` places (clamped to the list); returns the edit and its new index."""
        if not 0 <= index < len(self.initrds):
            return self, index
        to = max(0, min(len(self.initrds) - 1, index + delta))
        items = list(self.initrds)
        items.insert(to, items.pop(index))
        return replace(self, initrds=tuple(items)), to

    # --- checks and the boot request ---

    def problems(self) -> list[str]:
        """What stops this edit from booting, one line each (empty: it may be booted)."""
        out = []
        if not self.kernel:
            out.append("kernel: empty")
        elif not _absolute(self.kernel):
            out.append(f"kernel: {self.kernel} is not an absolute path (/boot/...) or a URL")
        for number, initrd in enumerate(self.initrds, 1):
            if not initrd:
                out.append(f"initrd {number}: empty (remove it or name a file)")
            elif not _absolute(initrd):
                out.append(f"initrd {number}: {initrd} is not an absolute path or a URL")
        if len(self.initrds) > p.MAX_INITRDS:
            out.append(f"at most {p.MAX_INITRDS} initrds")
        if self.devicetree and not _absolute(self.devicetree):
            out.append(f"devicetree: {self.devicetree} is not an absolute path or a URL")
        return out

    def paths(self) -> tuple[str, ...]:
        """The paths worth asking the daemon about (protocol.CheckPaths): the well-formed ones, in row order."""
        return tuple(path for path in (self.kernel, *self.initrds, self.devicetree) if _absolute(path))

    def boot(self, entry_id: str, entry: BootEntry, console: str | None) -> p.Boot:
        """The boot request: only what differs from `entry` is sent, so an unedited part stays the daemon's own."""
        return p.Boot(
            entry_id,
            self.cmdline if self.cmdline != entry.cmdline else None,
            console,
            kernel=self.kernel if self.kernel != entry.kernel else None,
            initrds=self.initrds if self.initrds != tuple(entry.initrds) else None,
            devicetree=self.devicetree if self.devicetree != (entry.devicetree or "") else None,
        )


def _absolute(path: str) -> bool:
    return p.is_path(path)
