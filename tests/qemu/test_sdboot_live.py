"""One live boot of real systemd-boot on OVMF (QEMU TCG), proving the recorded-answer harness of
tests/conformance/test_sdboot_conformance.py works on this machine (the comparisons themselves use recorded answers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance import sdboot_qemu
from tests.conformance.test_sdboot_conformance import TREES, _id_of, answer_for, bootmenu_entries


@pytest.mark.qemu
@pytest.mark.timeout(600)
def test_live_systemd_boot_agrees_with_the_recorded_answer(tmp_path: Path) -> None:
    """One real boot (about 15 s under TCG), proving the harness works here: systemd-boot on OVMF boots the default of
    the smallest tree unattended, and what it showed and booted is what was recorded and what bootmenu lists."""
    if not sdboot_qemu.available():
        pytest.fail("no OVMF, systemd-boot or test kernel: run `make kernel`")
    name = "sdboot-saved"
    recorded = answer_for(name)
    image = sdboot_qemu.stage_esp(TREES[name], tmp_path, force_menu=False)
    with sdboot_qemu.qemu_lock():
        live = sdboot_qemu.boot_once(image, tmp_path, None)
    assert live == recorded.first
    entries, _ = bootmenu_entries(TREES[name])
    default = next(e for e in entries if e.default)
    assert live.cmdline == default.kernel_cmdline()
    assert live.variables["LoaderEntrySelected"] == _id_of(default)
