"""The payload checks menu passwords: its Python has no OpenSSL (no hashlib.scrypt), so discovery/password.py uses
the libsodium the builder ships, and a hash made on the build machine with hashlib.scrypt is accepted there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from discovery import password
from tests.initramfs.test_builder import payload_python

pytestmark = pytest.mark.slow


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_a_build_machine_hash_is_checked_inside_the_payload(payload_stage: Path) -> None:
    hashed = password.make("open sesame", ln=10)
    code = (
        "import hashlib\n"
        "from discovery import password\n"
        f"h = password.PasswordHash.parse({hashed!r})\n"
        "print(hasattr(hashlib, 'scrypt'), password.implementation().__name__,"
        " h.matches('open sesame'), h.matches('open sesame!'))\n"
    )
    proc = payload_python(payload_stage, code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "_sodium_scrypt", "True", "False"]
