"""Shared fixtures: where the repository, the shared corpus and the cached test kernel are."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
KERNEL_CACHE = REPO / ".cache" / "kernel" / "root"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def kernel_root() -> Path:
    """The unpacked Debian kernel package (`make kernel`). Missing is a failure, not a skip: `make test` fetches it."""
    if not (KERNEL_CACHE / ".complete").exists():
        pytest.fail("no test kernel: run `make kernel` (tools/fetch-kernel) first")
    return KERNEL_CACHE


@pytest.fixture(scope="session")
def kernel_image(kernel_root: Path) -> Path:
    images = sorted((kernel_root / "boot").glob("vmlinuz-*"))
    assert images, f"no vmlinuz in {kernel_root}/boot"
    return images[-1]
