"""bootmenu's reading of the shared corpus's U-Boot-style extlinux.conf files against real U-Boot 2023.01.

The corpus holds extlinux.conf files written for U-Boot boards (an extlinux.conf where distro boot looks, with no
ldlinux beside it: discovery/syslinux.py `is_uboot_config`). bootmenu reads those in U-Boot's dialect, so real
syslinux is the wrong oracle for them (test_syslinux_corpus.py leaves them to this test) and real U-Boot
(tests/conformance/uboot.py) the right one. A corpus case holds the config alone: the tree is staged with a file at
every path its KERNEL/LINUX, INITRD, FDT and `initrd=` lines name (relative ones from the config's directory, as
pxe_utils resolves them), so both sides see files to load; bootmenu and U-Boot then read the same staged tree.
Answers are recorded in tests/data/uboot_conformance.json under `corpus:<key>/<device>@<hash>`, reasons in
tests/data/uboot_conformance.toml under `["corpus:<key>"]`. Differences are reported, not failed on: the corpus is
not the project's. Skipped when the corpus is absent.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from pathlib import Path

import pytest

from discovery import syslinux
from tests.conformance import uboot
from tests.conformance.test_syslinux_conformance import RECORD
from tests.conformance.test_uboot_conformance import ANSWERS, check
from tools import corpus_cases

# Keys whose value names a file to load (pxe_utils' keywords; FDTDIR/DEVICETREEDIR name a directory).
FILE_KEYS = ("kernel", "linux", "initrd", "fdt", "devicetree")
DIRECTORY_KEYS = ("fdtdir", "devicetreedir")


def uboot_configs() -> list[tuple[corpus_cases.Case, str, str]]:
    """(case, device, config) of every corpus config bootmenu reads in U-Boot's dialect."""
    found = []
    for case in corpus_cases.all_cases():
        with tempfile.TemporaryDirectory() as tmp:
            for fs in corpus_cases.scanned(case, case.build(Path(tmp) / "tree")):
                found += [(case, fs.name, c) for c in syslinux.find_configs(fs) if syslinux.is_uboot_config(fs, c)]
    return found


CASES = uboot_configs()


def named_files(text: str, config: str) -> tuple[set[str], set[str]]:
    """(files, directories) the config's lines name, as absolute paths within the filesystem."""
    base = posixpath.dirname(config)
    files: set[str] = set()
    directories: set[str] = set()
    for raw in text.splitlines():
        words = raw.split()
        if len(words) < 2 or words[0].startswith("#"):
            continue
        key = words[0].lower()
        names = []
        if key in FILE_KEYS:
            names = [n for n in words[1].split(",") if n]
        names += [n for w in words if w.startswith("initrd=") for n in w[len("initrd=") :].split(",") if n]
        for name in names:
            if "$" not in name:
                files.add(posixpath.normpath(posixpath.join(base, name)))
        if key in DIRECTORY_KEYS and "$" not in words[1]:
            directories.add(posixpath.normpath(posixpath.join(base, words[1])))
    return files, directories


def stage(root: Path, config: str, into: Path) -> Path:
    """A copy of the corpus tree with a file at every path the config names (its own path as the contents)."""
    shutil.copytree(root, into)
    files, directories = named_files((into / config.lstrip("/")).read_text(errors="replace"), config)
    for directory in sorted(directories):
        (into / directory.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for name in sorted(files):
        target = into / name.lstrip("/")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f"{name}\n")
    return into


def test_staging_names_every_file_a_label_loads() -> None:
    text = "LABEL a\n  KERNEL ../zImage\n  FDT /b.dtb\n  APPEND initrd=/i1,i2 root=x\n  FDTDIR /dtbs\n  INITRD ${x}\n"
    assert named_files(text, "/extlinux/extlinux.conf") == ({"/zImage", "/b.dtb", "/i1", "/extlinux/i2"}, {"/dtbs"})


@pytest.mark.skipif(not CASES, reason="the shared corpus (../shared/corpus) is not here")
@pytest.mark.parametrize(("case", "device", "config"), CASES, ids=[f"{c.key}:{d}:{p}" for c, d, p in CASES])
def test_corpus_extlinux_matches_real_uboot(case: corpus_cases.Case, device: str, config: str, tmp_path: Path) -> None:
    fs = next(f for f in corpus_cases.scanned(case, case.build(tmp_path / "tree")) if f.name == device)
    tree = stage(fs.root, config, tmp_path / "staged" / device)
    name = f"corpus:{case.key}"
    key = f"{name}/{tree.name}@{uboot.tree_digest(tree, {})}"
    if key not in uboot.load_answers(ANSWERS) and not os.environ.get(RECORD):
        # Recording boots U-Boot a few times per config: `make conformance` does it, `make test` names what is missing.
        pytest.skip(f"no recorded U-Boot answer for {key}: `make conformance` records it")
    problems = check(name, tree)
    # Corpus differences are reported, not failed on (the verdicts are in the report per loader).
    print(f"uboot-conformance corpus {case.key} {device}:{config}: " + ("\n".join(problems) or "no difference"))
