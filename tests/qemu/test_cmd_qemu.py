"""`bootmenu qemu` as a user runs it: the demo samples become disks whose default entry really kexecs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from bootmenu.cmd_demo import sample_roots
from tests.qemu.qemu_console import read_second_stage_cmdline

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(300)]


def test_default_sample_entry_kexecs_the_real_kernel(payload: Path) -> None:
    scanned = subprocess.run(
        [sys.executable, "-m", "bootmenu", "scan", "--json", *map(str, sample_roots())],
        check=True,
        capture_output=True,
        text=True,
    )
    # One default per disk; the first disk (vda, the Ubuntu sample) is first in the boot order, so its default boots.
    defaults = [e for e in json.loads(scanned.stdout) if e["default"]]
    assert defaults[0]["device"] == sample_roots()[0].name
    command = [sys.executable, "-m", "bootmenu", "qemu", "--initramfs", str(payload), "--append", "bootmenu.timeout=2"]
    child = pexpect.spawn(command[0], command[1:], timeout=200, dimensions=(24, 80))
    try:
        # What the kernel receives: the boot loader's own words (GRUB's BOOT_IMAGE=) around the entry's cmdline.
        entry = defaults[0]
        received = [*entry.get("loader_args", []), *entry["cmdline"].split(), *entry.get("loader_tail", [])]
        if not any(word.startswith("console=") for word in received):
            # The console hand-off: autoboot adds the payload's own console (bootmenu qemu's serial line).
            received.append("console=ttyS0,115200")
        assert read_second_stage_cmdline(child, timeout=200).split() == received
        # The second kernel powers off; QEMU ends and so does the command, successfully.
        child.expect(pexpect.EOF, timeout=60)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
