"""The autoboot countdown: pure state over an injected clock, so its rules are testable without waiting.

Rules (issues 5 and 10): the countdown starts when the first default entry appears, with the timeout of that moment
(the firmware's setting, or with `timeout = "config"` that config's), and keeps both when a better default (a device
earlier in the boot order) shows up later: a config appearing during the countdown changes which entry boots, never
when. Any client's cancel stops it for good; a timeout of 0 boots at once; None never autoboots.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Autoboot:
    """`started` is the clock time the first default entry appeared; `cancelled` is final."""

    timeout: float | None = None
    entry_id: str | None = None
    started: float | None = None
    cancelled: bool = False
    fired: bool = False

    def offer(self, entry_id: str | None, timeout: float | None, now: float) -> Autoboot:
        """The current default entry and its timeout; the first non-None entry starts the clock and fixes the
        timeout, later offers only change the entry."""
        if self.cancelled or self.fired:
            return self
        if self.started is not None:
            return replace(self, entry_id=entry_id)
        if entry_id is None:
            return replace(self, entry_id=None, timeout=timeout)
        return replace(self, entry_id=entry_id, timeout=timeout, started=now)

    def cancel(self) -> Autoboot:
        return replace(self, cancelled=True)

    @property
    def active(self) -> bool:
        return not (self.cancelled or self.fired) and self.entry_id is not None and self.timeout is not None

    def remaining(self, now: float) -> float | None:
        """Seconds left, or None when no countdown runs."""
        if not self.active or self.started is None or self.timeout is None:
            return None
        return max(0.0, self.started + self.timeout - now)

    def due(self, now: float) -> str | None:
        """The entry to boot now, if the countdown has run out."""
        left = self.remaining(now)
        return self.entry_id if left is not None and left <= 0 else None

    def fire(self) -> Autoboot:
        return replace(self, fired=True)
