"""One live run of real syslinux in QEMU (the rest compares recorded answers): proves the harness still drives it.

Boots the `label-spaces` fixture's menu (three items, one a label with spaces that is also the DEFAULT) afresh and
checks the answer equals the recorded one, so a change in syslinux, QEMU or the harness that the recorded answers
hide is seen.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.scan import filesystem_for
from tests.conformance import syslinux_qemu
from tests.conformance.test_syslinux_conformance import ANSWERS, REPO

TREE = REPO / "tests" / "fixtures" / "syslinux" / "label-spaces" / "sda1"
CONFIG = "/syslinux/syslinux.cfg"


@pytest.mark.qemu
@pytest.mark.skipif(not syslinux_qemu.available(), reason="syslinux packages not unpacked: `make conformance`")
def test_live_syslinux_boot_matches_recorded_answer(tmp_path: Path) -> None:
    key = f"label-spaces:sda1:{CONFIG}@{syslinux_qemu.tree_digest(TREE, CONFIG)}"
    recorded = syslinux_qemu.load_answers(ANSWERS).get(key)
    assert recorded, f"no recorded answer {key}: run `make conformance`"
    fs = filesystem_for(TREE)
    live = syslinux_qemu.answer_config(TREE, CONFIG, fs.fstype or "", fs.name, tmp_path)
    want = recorded[0]
    assert (live.ui, live.items, live.default, live.highlighted) == (
        want.ui,
        want.items,
        want.default,
        want.highlighted,
    )
