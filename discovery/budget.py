"""The work one config may cost: a step budget and a deadline, both checked inside the loaders as they run.

Issue 9 item 7. A config is untrusted input read at every boot: whatever it contains, reading it must end, soon.
Every unit of work a loader does (a GRUB command, loop iteration, variable expansion, sourced file; a syslinux or
BLS line, INCLUDE, entry) is charged to the `Budget` of the config it belongs to; when the steps run out or the
deadline passes, `BudgetExceeded` stops that config where it is and the loader turns what it found so far into
entries plus one diagnostic. Because the check runs in the loader's own thread, a loader over its time limit stops
burning CPU: the daemon never has to abandon a thread that keeps running.

The deadline comes from `LoadContext.deadline`, or else from `time_limit()`, which the daemon wraps around each of
its load jobs (a context variable, so it follows the job into its worker thread without changing every signature).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

Clock = Callable[[], float]

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("bootmenu_load_deadline", default=None)


class BudgetExceeded(Exception):
    """The config used up its steps or its time; `message` says which, for the diagnostic."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Budget:
    """Steps left for one config and the moment it must stop. `charge` is the only way work is paid for.

    `grace` is time added once by `final_phase()`: a loader that stopped reading a config at the deadline still
    turns the menu it read into entries (bounded by the steps left), so entries before the expensive construct
    survive even a timeout.
    """

    limit: int
    deadline: float | None = None
    grace: float = 0.0
    clock: Clock = time.monotonic
    used: int = 0

    def charge(self, steps: int = 1) -> None:
        self.used += steps
        if self.used > self.limit:
            raise BudgetExceeded(f"step budget of {self.limit} used up")
        if self.deadline is not None and self.clock() > self.deadline:
            raise BudgetExceeded("time limit exceeded")

    @property
    def late(self) -> bool:
        """The deadline has passed."""
        return self.deadline is not None and self.clock() > self.deadline

    @property
    def exhausted(self) -> bool:
        """No more work may be done: steps used up or deadline passed."""
        return self.used >= self.limit or self.late

    def final_phase(self) -> None:
        """From now on only building entries from what was read: allow the grace time once."""
        if self.deadline is not None and self.grace:
            self.deadline += self.grace
            self.grace = 0.0


def current_deadline() -> float | None:
    """The deadline `time_limit()` set for this thread's load job, if any."""
    return _DEADLINE.get()


@contextmanager
def time_limit(seconds: float | None, clock: Clock = time.monotonic) -> Iterator[None]:
    """Loads started inside this block stop `seconds` from now (None: no limit)."""
    token = _DEADLINE.set(None if seconds is None else clock() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)
