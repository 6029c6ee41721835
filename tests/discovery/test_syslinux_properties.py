"""The syslinux loader on arbitrary config text: never raises, always terminates, every entry is a Linux boot."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.fs import Filesystem
from discovery.syslinux import load_config

WORDS = ["label", "LABEL", "kernel", "linux", "append", "append -", "initrd", "include", "include s.cfg", "menu",
         "menu begin", "menu end", "menu label", "menu default", "menu hide", "default", "ontimeout", "timeout",
         "text help", "endtext", "com32", "localboot", "config", "fdt", "fdtdir", "x", "a.c32", "initrd=i", "^", "#",
         "vmlinuz", "s.cfg", "1", "0", "-"]  # fmt: skip

lines = st.lists(st.lists(st.sampled_from(WORDS), max_size=4).map(" ".join), max_size=30).map("\n".join)


@settings(max_examples=200, deadline=None)
@given(lines, st.text(max_size=200))
def test_any_config_loads_without_raising(text: str, noise: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "vmlinuz").write_text("k")
        (root / "s.cfg").write_text(text + "\n" + noise)  # includes itself when it says `include s.cfg`
        result = load_config(Filesystem(root=root, name="t"), "/s.cfg")
    assert sum(e.default for e in result.entries) <= 1
    for entry in result.entries:
        assert entry.kernel.startswith("/")
        # A COM32 module is never a Linux entry, unless LINUX names it (syslinux then boots it as a kernel).
        assert not entry.kernel.lower().endswith(".c32") or "linux a.c32" in text.lower()
