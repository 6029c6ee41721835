"""The guests' framed console values: a kernel message printed into the middle of a line is cut out again (issue 9
item 9: a second kernel's command line was read cut at `root=UUID=3f1c7a52-8d4e-4b`)."""

from __future__ import annotations

import pexpect
import pytest

from initramfs import guests
from tests.qemu.qemu_console import read_second_stage_cmdline

CMDLINE = "console=ttyS0,115200 panic=-1 quiet root=UUID=3f1c7a52-8d4e-4b8a-9c1e-2a6b5d0e7f11 ro e2e=bls"


def console(text: str) -> bytes:
    """What a serial console shows of the second stage's output: \\r\\n line ends."""
    return text.replace("\n", "\r\n").encode()


def test_a_kernel_message_inside_the_value_is_removed() -> None:
    cut = CMDLINE.index("-4b") + 3
    between = console(f"{CMDLINE[:cut]}[   12.345678] random: crng init done\n{CMDLINE[cut:]}\n")
    assert guests.parse_framed(between, len(CMDLINE)) == CMDLINE


def test_kernel_messages_before_and_after_the_line_are_removed() -> None:
    between = console(f"[    3.1] virtio_blk virtio1: [vdb] 65536 512-byte blocks\n{CMDLINE}\n[ 4.5] x\n")
    assert guests.parse_framed(between, len(CMDLINE)) == CMDLINE


def test_a_value_that_lost_bytes_is_an_error_not_a_wrong_answer() -> None:
    with pytest.raises(guests.FramedValueError, match=rf"expected {len(CMDLINE)} bytes between the markers, got 30"):
        guests.parse_framed(console(CMDLINE[:30] + "\n"), len(CMDLINE))


def test_the_second_stage_init_frames_its_command_line() -> None:
    """The real /init script under the host's busybox sh, its /proc/cmdline and poweroff replaced (argv only)."""
    script = guests.SECOND_STAGE_INIT.replace("/bin/busybox cat /proc/cmdline", f"echo '{CMDLINE}'")
    script = script.replace("/bin/busybox poweroff -f", "exit 0").replace("/bin/busybox mount", "true")
    script = script.replace("/bin/busybox dmesg", "true").replace("/bin/busybox grep", "true")
    child = pexpect.spawn(str(guests.find_busybox()), ["sh", "-c", script], timeout=30)
    try:
        assert read_second_stage_cmdline(child, timeout=30) == CMDLINE
    finally:
        child.close(force=True)
