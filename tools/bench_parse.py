"""Parse benchmark: time to load every config of the shared corpus and of the distribution fixtures.

Prints the time per config (mean, median, worst with its name). Each case's trees are built once, outside the timed
part; the figure is `discovery.loaders.load_filesystem` over the case's filesystems, best of a few runs.

    make bench-parse        (or .venv/bin/python -m tools.bench_parse [--repeat N])
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from discovery.fs import Filesystem, StaticResolver
from discovery.loaders import LoadContext, load_filesystem
from discovery.scan import filesystem_for
from tools.corpus_cases import PLATFORM, all_cases, scanned
from tools.regen_goldens import fixture_dirs


def _time_load(filesystems: list[Filesystem], repeat: int, targets: list[Filesystem] | None = None) -> float:
    ctx = LoadContext(resolver=StaticResolver(tuple(filesystems)), platform=PLATFORM)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for fs in filesystems if targets is None else targets:
            load_filesystem(fs, ctx)
        best = min(best, time.perf_counter() - start)
    return best


def measure(repeat: int) -> dict[str, float]:
    """Seconds per case, keyed by corpus path or fixture name."""
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        for index, case in enumerate(all_cases()):
            work = Path(tmp, str(index))
            work.mkdir()
            filesystems = case.build(work)
            timings[f"corpus:{case.key}"] = _time_load(filesystems, repeat, scanned(case, filesystems))
    for fixture in fixture_dirs():
        trees = [filesystem_for(p) for p in sorted(fixture.iterdir()) if p.is_dir()]
        timings[f"fixture:{fixture.name}"] = _time_load(trees, repeat)
    return timings


def report(timings: dict[str, float]) -> str:
    if not timings:
        return "bench-parse: no configs found"
    values = list(timings.values())
    worst = max(timings, key=lambda k: timings[k])
    return "\n".join(
        [
            f"bench-parse: {len(values)} configs, {sum(values) * 1e3:.1f} ms in all",
            f"  mean   {statistics.fmean(values) * 1e3:8.3f} ms/config",
            f"  median {statistics.median(values) * 1e3:8.3f} ms/config",
            f"  worst  {timings[worst] * 1e3:8.3f} ms  {worst}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="time per config to parse the corpus and fixtures")
    parser.add_argument("--repeat", type=int, default=3, help="runs per config; the best is kept (default 3)")
    args = parser.parse_args(argv)
    print(report(measure(max(1, args.repeat))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
