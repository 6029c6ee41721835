"""The daemon's Resolver: GRUB `search` over every filesystem mounted right now, whichever device it is on."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from discovery.fs import Filesystem, SearchKind


class LiveResolver:
    """Looks filesystems up in the daemon's current set; `snapshot` is read on every call, so devices that appear
    later are found when the config is evaluated again (the daemon re-runs loaders whose results had unresolved
    references when a device appears)."""

    def __init__(self, snapshot: Callable[[], Sequence[Filesystem]]) -> None:
        self._snapshot = snapshot

    def find(self, kind: SearchKind, value: str) -> Filesystem | None:
        for fs in self._snapshot():
            if kind.matches(fs, value):
                return fs
        return None
