"""A payload built once per test session (about 20 s), with its staged tree kept for inspection.

Under pytest-xdist the workers share one build: the first builds it in the run's shared temp directory under a lock.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from initramfs.builder import BuildOptions, BuildReport, build
from initramfs.cpio import Compression
from tests.shared import file_lock, session_dir


@pytest.fixture(scope="session")
def payload(kernel_root: Path, tmp_path_factory: pytest.TempPathFactory) -> BuildReport:
    """The built payload's report; the archive is `.output`, the staged tree `payload_stage`."""
    out = session_dir(tmp_path_factory.getbasetemp()) / "payload"
    (modules,) = sorted((kernel_root / "lib/modules").iterdir())
    # xz, not the default zstd: the tests read the archive with the standard library's lzma.
    options = BuildOptions(
        output=out / "payload.cpio.xz", kernel_modules=modules, keep_stage=out / "stage", compression=Compression.XZ
    )
    with file_lock(out.with_name("payload.lock")):
        # The report travels between workers as a pickle written by this same run (never a foreign file).
        saved = out.with_name("payload-report.pickle")
        if saved.exists():
            loaded: BuildReport = pickle.loads(saved.read_bytes())
            return loaded
        report = build(options)
        print(report.format())
        saved.write_bytes(pickle.dumps(report))
    return report


@pytest.fixture(scope="session")
def payload_stage(payload: BuildReport) -> Path:
    return payload.output.parent / "stage"
