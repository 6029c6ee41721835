"""The payload's boot timeline (discovery/timeline.py), read from the kernel log through the menu's rescue shell."""

from __future__ import annotations

from discovery import timeline
from tests.qemu.qemu_console import SerialVm

# The `""` keeps the echoed command line from matching the end marker.
COMMAND = 'dmesg | grep bootmenu-timeline; echo TIMELINE-""DONE'
END = r"TIMELINE-DONE\r*\n"


def read_in_shell(vm: SerialVm, timeout: float = 30.0) -> tuple[list[timeline.Stamp], str]:
    """(the stamps, the shell's raw output) from a VM already at the payload's rescue shell prompt."""
    vm.child.sendline(COMMAND)
    vm.expect(END, timeout=timeout)
    before: bytes = vm.child.before
    out = before.decode("utf-8", "replace")
    return timeline.parse(out), out
