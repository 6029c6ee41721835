"""Real U-Boot once, live (a few seconds): the harness of tests/conformance/test_uboot_conformance.py still works.

The comparison there reads U-Boot's recorded answers; this boots one probe item in U-Boot 2023.01 under QEMU TCG and
checks that U-Boot still does what was recorded.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.conformance import uboot
from tests.conformance.test_uboot_conformance import PROBES, _menu_of, answers_for


@pytest.mark.qemu
def test_live_uboot_agrees_with_the_recorded_answer() -> None:
    """The harness still works (a few seconds): real U-Boot boots one probe item, initrd= in APPEND and no INITRD,
    and does what was recorded: it loads that initrd and the kernel (Linux's own `Command line:`) gets the APPEND."""
    if not uboot.available():
        pytest.skip("u-boot-qemu, QEMU or the test kernel missing: `make kernel`")
    tree = PROBES / "initrd-append" / "disk"
    recorded = answers_for("initrd-append", tree)[0]
    number, title = _menu_of(recorded)[0]
    with tempfile.TemporaryDirectory(prefix="bootmenu-uboot-") as tmp:
        live = uboot.Machine(tree, Path(tmp), {}).run(recorded.config, number)
    assert live.menu == _menu_of(recorded)
    assert live.attempts == recorded.items[0].attempts
    booted = live.booted
    assert booted is not None
    assert booted.title == title
    assert booted.loaded("initrd") == ("/initrd-a.img",)
    assert booted.kernel_cmdline == booted.append == "console=ttyS0,115200 initrd=/initrd-a.img probe=1"
