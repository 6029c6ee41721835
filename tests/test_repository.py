"""The repository itself is fit for a clean clone: no local environment is committed (a `.venv` symlink to one
developer's venv once was, and `python3 -m venv .venv` then failed on every fresh machine)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO

LOCAL_ONLY = (".venv", ".cache", "build", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis")


def test_no_local_environment_is_tracked() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "--", *LOCAL_ONLY], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked == [], f"committed by mistake (git rm --cached them): {tracked}"
    # Ignored whether a directory or a symlink (".venv/" would not match a symlink named .venv).
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *LOCAL_ONLY[:2]], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.split()
    assert ignored == list(LOCAL_ONLY[:2])
