"""Seeded mutational fuzzing of the GRUB, BLS and syslinux loaders (issue 9, "How it is shown").

Every config the loaders read in the distribution fixtures (tests/fixtures/distros) and, when present, a seeded
sample of the shared corpus (../shared/corpus) is mutated, one file at a time, with span deletions, duplications,
truncations and hostile fragments (nested loops, self-inclusion, unterminated quotes and `${`, path components over
255 bytes, repeated keys). For every mutant the whole filesystem is loaded again, and:
- no exception escapes a loader (load_filesystem would report it as "... loader failed");
- every config finished within its step budget (each Budget the loaders took stayed within its limit plus one
  charge);
- the entries of the same filesystem that do not depend on the mutated file are all still there: entries of the
  other formats (and, for a BLS entry file, every entry from another file).

Deterministic: the mutations come from `random.Random` seeded with the file's name, so a failure reproduces; the
number of mutants is fixed, which keeps the run to seconds.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from discovery import bls, syslinux
from discovery.budget import Budget
from discovery.entry import BootEntry, LoadResult
from discovery.fs import Filesystem, Platform, StaticResolver
from discovery.grub import loader as grub
from discovery.loaders import LoadContext, load_filesystem
from discovery.scan import filesystem_for
from tools.corpus_cases import all_cases
from tools.regen_goldens import fixture_dirs

MUTANTS_PER_FILE = 4
CORPUS_SAMPLE = 12
LARGEST_CHARGE = 8 * 1024 + 2  # one step can be charged at most this much (an 8 MiB file, or a 256 KiB expansion)

LONG = "n" * 300

HOSTILE = {
    "grub": [
        "for i in 1 2; do " * 24 + "true; " + "done; " * 24,
        "for a in 1 2 3 4 5 6 7 8 9 0; do for b in 1 2 3 4 5 6 7 8 9 0; do for c in 1 2 3 4 5 6 7 8 9 0; do "
        "true; done; done; done",
        "while true; do until false; do true; done; done",
        "function f { f; f; }\nf",
        "source $config_file\n" * 3,
        "configfile $config_file",
        "${" * 500,
        '"',
        "'",
        "\\",
        f"linux /{LONG}/vmlinuz\ninitrd /{LONG}",
        f"menuentry long {{ linux /{LONG}; initrd /{LONG}; }}",
        "set x=xxxxxxxxxxxxxxxx\n" + "set x=$x$x\n" * 20,
        'eval "$x $x"',
        "menuentry 'open' {",
        "}",
        "fi",
        "done",
        "if true; then",
    ],
    "bls": [
        "title again\n" * 500,
        f"linux /{LONG}/vmlinuz",
        f"initrd /{LONG}",
        f"devicetree /{LONG}",
        "options " + "o " * 3000,
        "architecture aa64",
        "linux",
        "\x00\xff",
        "sort-key ~~~~\nversion ^^^-~.",
    ],
    "syslinux": [
        "INCLUDE {self}",
        "CONFIG {self}",
        "LABEL loop\n  CONFIG {self}",
        f"LABEL long\n  KERNEL /{LONG}/vmlinuz\n  INITRD /{LONG}\n  FDT /{LONG}",
        "MENU BEGIN\n" * 20,
        "MENU BEGIN x\n" * 3000 + "LABEL deep\n  KERNEL /vmlinuz\n" + "MENU END\n" * 3000,
        "MENU END\n" * 5,
        "TEXT HELP\n",
        f"DEFAULT /{LONG} quiet",
        f"INCLUDE /{LONG}.cfg",
        "LABEL\nKERNEL\nAPPEND\nINITRD ,,,\n",
        "LABEL c32\n  COM32 whichsys.c32\n  APPEND -sys- config {self} -iso- config {self}",
    ],
}


def mutate(text: str, fmt: str, own_path: str, rng: random.Random) -> str:
    """One seeded mutation of a config's text."""
    n = len(text)
    a = rng.randrange(n + 1)
    b = min(n, a + rng.choice((1, 8, 64, 512)))
    op = rng.choice(("delete", "duplicate", "truncate", "hostile", "hostile", "hostile"))
    if op == "delete":
        return text[:a] + text[b:]
    if op == "duplicate":
        return text[:b] + text[a:b] * rng.choice((2, 10)) + text[b:]
    if op == "truncate":
        return text[:a]
    fragment = rng.choice(HOSTILE[fmt]).replace("{self}", own_path)
    # At a line start, so a fragment is read as what it is (a directive, a command), or anywhere.
    if rng.random() < 0.7:
        a = text.rfind("\n", 0, a) + 1
    return text[:a] + fragment + "\n" + text[a:]


@dataclass(frozen=True)
class WatchedContext(LoadContext):
    """A LoadContext that remembers every budget the loaders took, to check each stayed within its limit."""

    budgets: list[Budget] = field(default_factory=list)

    def budget(self, steps: int) -> Budget:
        b = super().budget(steps)
        self.budgets.append(b)
        return b


@dataclass(frozen=True)
class Target:
    name: str
    trees: list[Filesystem]


def fixture_targets(tmp: Path) -> Iterator[Target]:
    for fixture in fixture_dirs():
        copy = tmp / fixture.name
        shutil.copytree(fixture, copy, symlinks=True)
        yield Target(f"fixture:{fixture.name}", [filesystem_for(p) for p in sorted(copy.iterdir()) if p.is_dir()])
    cases = all_cases()
    for index, case in enumerate(random.Random("corpus").sample(cases, min(CORPUS_SAMPLE, len(cases)))):
        work = tmp / f"corpus-{index}"
        work.mkdir()
        yield Target(f"corpus:{case.key}", case.build(work))


def configs_by_format(fs: Filesystem, ctx: LoadContext) -> list[tuple[str, str]]:
    """(format, path) of every config file each loader reads on `fs`."""
    found: list[tuple[str, str]] = []
    for fmt, load in (("grub", grub.load), ("bls", bls.load), ("syslinux", syslinux.load)):
        for path in load(fs, ctx).configs:
            if (fmt, path) not in found and not path.endswith("grubenv"):
                found.append((fmt, path))
    return found


def key(entry: BootEntry) -> tuple[str, str, str, int, str]:
    return (str(entry.format), entry.device, entry.config, entry.line, entry.kernel)


def independent(entry: BootEntry, fmt: str, path: str) -> bool:
    """Whether `entry` cannot depend on config file `path` of format `fmt`."""
    if fmt == "bls":
        return entry.config != path and not (entry.format == "bls" and entry.config.endswith("loader.conf"))
    return str(entry.format) != fmt


def check(fs: Filesystem, fmt: str, path: str, baseline: LoadResult, ctx: WatchedContext, *, name: str) -> None:
    result = load_filesystem(fs, ctx)
    where = f"{name} {fs.name}:{path}"
    escaped = [str(d) for d in result.diagnostics if "loader failed" in d.message]
    assert not escaped, f"{where}: {escaped}"
    for b in ctx.budgets:
        assert b.used <= b.limit + LARGEST_CHARGE, f"{where}: budget {b.used}/{b.limit}"
    survivors = {key(e) for e in result.entries}
    lost = [e.title for e in baseline.entries if independent(e, fmt, path) and key(e) not in survivors]
    assert not lost, f"{where}: entries that do not read this file vanished: {lost}"


def test_mutated_configs_never_escape_a_loader_and_keep_independent_entries(tmp_path: Path) -> None:
    mutants = 0
    for target in fixture_targets(tmp_path):
        ctx = LoadContext(resolver=StaticResolver(tuple(target.trees)), platform=Platform(firmware="efi"))
        for fs in target.trees:
            baseline = load_filesystem(fs, ctx)
            for fmt, path in configs_by_format(fs, ctx):
                host = fs.host_path(path)
                if host is None or not host.is_file() or host.is_symlink():
                    continue
                original = host.read_bytes()
                text = original.decode("utf-8", errors="surrogateescape")
                rng = random.Random(f"{target.name}:{fs.name}:{path}")
                try:
                    for _ in range(MUTANTS_PER_FILE):
                        host.write_bytes(mutate(text, fmt, path, rng).encode("utf-8", errors="surrogateescape"))
                        watched = WatchedContext(resolver=ctx.resolver, platform=ctx.platform)
                        check(fs, fmt, path, baseline, watched, name=target.name)
                        mutants += 1
                finally:
                    host.write_bytes(original)
    print(f"{mutants} mutants loaded")
    assert mutants >= 100, f"only {mutants} mutants: fixtures missing?"


@pytest.mark.parametrize("fmt", sorted(HOSTILE))
def test_every_hostile_fragment_alone_keeps_the_other_formats(tmp_path: Path, fmt: str) -> None:
    # One tree with all three formats; each fragment in turn appended to this format's config.
    files = {
        "k": "x",
        "boot/grub/grub.cfg": "menuentry grub-good { linux /k }\n",
        "loader/entries/good.conf": "title bls-good\nlinux /k\n",
        "loader/entries/bad.conf": "title bls-bad\nlinux /k\n",
        "syslinux.cfg": "LABEL sys-good\n  KERNEL /k\n",
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    fs = Filesystem(root=tmp_path, name="sda1")
    baseline = load_filesystem(fs)
    assert len(baseline.entries) == 4
    target_path = {"grub": "/boot/grub/grub.cfg", "bls": "/loader/entries/bad.conf", "syslinux": "/syslinux.cfg"}[fmt]
    for fragment in HOSTILE[fmt]:
        host = tmp_path / target_path.lstrip("/")
        host.write_text(files[target_path.lstrip("/")] + fragment.replace("{self}", target_path) + "\n")
        check(fs, fmt, target_path, baseline, WatchedContext(), name="hostile")
