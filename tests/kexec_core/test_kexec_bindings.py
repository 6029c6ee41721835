"""The compiled cffi module: present, and its constants are the kernel headers' (asked of the C preprocessor)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from kexec_core import syscalls


def header_value(header: str, name: str) -> int:
    """What `gcc -E` makes of NAME after including HEADER."""
    src = f"#include <{header}>\nbootmenu_value = {name};\n"
    out = subprocess.run(["gcc", "-E", "-P", "-x", "c", "-"], input=src, capture_output=True, text=True, check=True)
    match = re.search(r"bootmenu_value = (.*);", out.stdout)
    assert match is not None
    # A constant integer expression such as `( 0 << 16)` or `0x01021994`: safe to evaluate without builtins.
    return int(eval(match.group(1), {"__builtins__": {}}))


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("linux/kexec.h", "KEXEC_FILE_UNLOAD"),
        ("linux/kexec.h", "KEXEC_FILE_NO_INITRAMFS"),
        ("linux/kexec.h", "KEXEC_ARCH_DEFAULT"),
        ("linux/reboot.h", "LINUX_REBOOT_CMD_KEXEC"),
        ("linux/magic.h", "TMPFS_MAGIC"),
        ("linux/magic.h", "RAMFS_MAGIC"),
    ],
)
def test_constants_come_from_headers(header: str, name: str) -> None:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to build kexec_core._kexec (make setup installs it)")
    assert getattr(syscalls.flags(), name) == header_value(header, name)


def test_flag_names_for_messages() -> None:
    f = syscalls.flags()
    assert f.names(f.KEXEC_FILE_NO_INITRAMFS | f.KEXEC_FILE_UNLOAD, "KEXEC_FILE_") == (
        "KEXEC_FILE_UNLOAD|KEXEC_FILE_NO_INITRAMFS"
    )
    assert f.names(0, "KEXEC_FILE_") == "0"
    assert f.names(0x100, "KEXEC_FILE_") == "0x100"


def test_module_is_inside_the_package() -> None:
    # The payload builder copies the kexec_core directory: the extension must live in it.
    from pathlib import Path

    import kexec_core
    from kexec_core import _kexec

    assert Path(_kexec.__file__).parent == Path(kexec_core.__file__).parent
