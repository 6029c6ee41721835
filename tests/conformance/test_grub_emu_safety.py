"""grub-emu runs only as nobody with every capability dropped: the check the harness makes before any run."""

from __future__ import annotations

import pytest

from tests.conformance import grub_emu


def test_the_privilege_drop_takes_effect() -> None:
    grub_emu.check_unprivileged()


def test_a_drop_that_keeps_capabilities_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # As root, keeping the bounding set and inheritable caps leaves CapBnd non-zero: the check must notice.
    weaker = [arg for arg in grub_emu.DROP if not arg.startswith(("--bounding-set", "--inh-caps"))]
    monkeypatch.setattr(grub_emu, "DROP", weaker)
    with pytest.raises(grub_emu.EmuUnavailable, match="privilege drop did not take effect"):
        grub_emu.check_unprivileged()
