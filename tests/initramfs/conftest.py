"""A payload built once per test session (about 20 s), with its staged tree kept for inspection."""

from __future__ import annotations

from pathlib import Path

import pytest

from initramfs.builder import BuildOptions, BuildReport, build


@pytest.fixture(scope="session")
def payload(kernel_root: Path, tmp_path_factory: pytest.TempPathFactory) -> BuildReport:
    """The built payload's report; the archive is `.output`, the staged tree `payload_stage`."""
    out = tmp_path_factory.mktemp("payload")
    (modules,) = sorted((kernel_root / "lib/modules").iterdir())
    options = BuildOptions(output=out / "payload.cpio.xz", kernel_modules=modules, keep_stage=out / "stage")
    report = build(options)
    print(report.format())
    return report


@pytest.fixture(scope="session")
def payload_stage(payload: BuildReport) -> Path:
    return payload.output.parent / "stage"
