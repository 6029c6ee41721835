"""The content hash every conformance harness keys its recorded answers by (tests/data/*_conformance.json).

A real loader's answers are recorded once and reused while the tree, the harness (its version, in the salt) and
its inputs are unchanged; each harness has its own salt, so one harness's change keeps the others' answers.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def files_digest(fixture: Path, salt: str, skip: tuple[str, ...] = ("expected.json",)) -> str:
    """A hash of `salt` (a harness's version and inputs) and every file of the tree but those named in `skip`:
    names, modes, contents. Shared by the conformance harnesses (each its own salt, so one harness's change keeps
    the others' recorded answers)."""
    h = hashlib.sha256(salt.encode())
    for path in sorted(p for p in fixture.rglob("*") if p.name not in skip):
        rel = path.relative_to(fixture)
        if path.is_symlink():
            h.update(f"L {rel} {os.readlink(path)}\0".encode())
        elif path.is_file():
            # As git records modes (644 or 755), so a checkout under another umask hashes the same.
            mode = 0o755 if path.stat().st_mode & 0o100 else 0o644
            h.update(f"F {rel} {mode:o}\0".encode())
            h.update(path.read_bytes())
        elif path.is_dir():
            h.update(f"D {rel}\0".encode())
    return h.hexdigest()
