"""One live run of real syslinux in QEMU (the rest compares recorded answers): proves the harness still drives it.

Boots the `label-spaces` fixture's menu (three items, one a label with spaces that is also the DEFAULT) afresh and
checks that bootmenu agrees with it (and that it equals the recorded answer, when there is one), so a change in
syslinux, QEMU or the harness that the recorded answers hide is seen.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery import syslinux
from discovery.scan import filesystem_for
from tests.conformance import syslinux_qemu
from tests.conformance.compare import Kind
from tests.conformance.test_syslinux_conformance import ANSWERS, REPO, verdict_of

TREE = REPO / "tests" / "fixtures" / "syslinux" / "label-spaces" / "sda1"
CONFIG = "/syslinux/syslinux.cfg"


@pytest.mark.qemu
@pytest.mark.skipif(not syslinux_qemu.available(), reason="syslinux packages not unpacked: `make syslinux`")
def test_live_syslinux_boot_matches_bootmenu(tmp_path: Path) -> None:
    fs = filesystem_for(TREE)
    live = syslinux_qemu.answer_config(TREE, CONFIG, fs.fstype or "", fs.name, tmp_path)
    print(f"syslinux live run: {live.seconds_per_boot} s per boot")
    verdict = verdict_of(live, syslinux.load_config(fs, CONFIG).entries, None)
    assert verdict.kind is Kind.IDENTICAL, "\n".join(verdict.lines)
    assert [i.path for i in live.items] == [("First entry",), ("Label with spaces",), ("Just my",)]
    key = f"label-spaces:sda1:{CONFIG}@{syslinux_qemu.tree_digest(TREE, CONFIG)}"
    recorded = syslinux_qemu.load_answers(ANSWERS).get(key)
    if recorded:
        want = recorded[0]
        # The default run's own path says whether the countdown or Enter started it, which the machine's load decides.
        assert (live.ui, live.items) == (want.ui, want.items)
        assert live.default is not None
        assert want.default is not None
        assert (live.default.cmdline, live.default.initrds) == (want.default.cmdline, want.default.initrds)
