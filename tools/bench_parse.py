"""Parse benchmark: time to load every config of the shared corpus and of the distribution fixtures, and growth
with size on generated configs.

Prints the time per config (mean, median, worst with its name). Each case's trees are built once, outside the timed
part; the figure is `discovery.loaders.load_filesystem` over the case's filesystems, best of a few runs.

Then generated configs of 1 MB and 5 MB side by side (issue 9 item 7: linear, never quadratic): a GRUB config of
Ubuntu-like entries (its lexing and parsing alone, and the whole loader, which stops at the config's step budget with
a diagnostic, as it must) and a syslinux config of labels; the ms/MB column should stay flat. `--lexer` adds the
issue's pathological input, an unterminated `${` repeated over 1.6 MB and 3.2 MB (once quadratic: 18 s and 82 s).

    make bench-parse        (or .venv/bin/python -m tools.bench_parse [--repeat N] [--sizes 1,5] [--lexer])
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from discovery import syslinux
from discovery.entry import LoadResult
from discovery.fs import Filesystem, StaticResolver
from discovery.grub import loader as grub
from discovery.grub.parser import parse
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


MB = 1_000_000


def grub_text(size: int) -> str:
    """A grub.cfg of about `size` bytes: Ubuntu-style entries (if/insmod/search/linux/initrd), numbered."""
    out: list[str] = ["set default=0\nset timeout=5\nfunction load_video { insmod all_video; }\n"]
    total = len(out[0])
    n = 0
    while total < size:
        block = (
            f"menuentry 'Ubuntu, with Linux 6.8.0-{n}-generic' --class ubuntu $menuentry_id_option 'gnulinux-{n}' {{\n"
            "\trecordfail\n\tload_video\n\tgfxmode $linux_gfx_mode\n\tinsmod gzio\n"
            "\tif [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi\n\tinsmod part_gpt\n\tinsmod ext2\n"
            "\tsearch --no-floppy --fs-uuid --set=root 3f1c7a52-8d4e-4b1a-9f0e-2a6b5c4d3e21\n"
            f"\tlinux /boot/vmlinuz-6.8.0-{n}-generic root=UUID=3f1c7a52-8d4e-4b1a-9f0e-2a6b5c4d3e21 ro quiet splash "
            "$vt_handoff\n"
            f"\tinitrd /boot/initrd.img-6.8.0-{n}-generic\n}}\n"
        )
        out.append(block)
        total += len(block)
        n += 1
    return "".join(out)


def syslinux_text(size: int) -> str:
    """A syslinux.cfg of about `size` bytes: labels with MENU LABEL, KERNEL, INITRD and a long APPEND."""
    out: list[str] = ["UI menu.c32\nPROMPT 0\nTIMEOUT 50\nDEFAULT l0\n"]
    total = len(out[0])
    n = 0
    while total < size:
        block = (
            f"LABEL l{n}\n  MENU LABEL Linux {n}\n  KERNEL /boot/vmlinuz\n  INITRD /boot/initrd.img\n"
            f"  APPEND root=/dev/sda1 ro quiet splash console=ttyS0,115200 panic=30 entry={n}" + " x" * 60 + "\n"
        )
        out.append(block)
        total += len(block)
        n += 1
    return "".join(out)


def _cpu(repeat: int, fn: Callable[[], object]) -> float:
    """Best CPU time of `repeat` runs: this process's own time, so a busy shared machine does not blur growth."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def _error(result: LoadResult) -> str:
    return next((f"; {d.message}" for d in result.diagnostics if d.severity == "error"), "")


def measure_generated(sizes: Sequence[float], repeat: int, *, lexer: bool) -> list[tuple[str, float, float, str]]:
    """(what, MB, CPU seconds, note) for each generated config and size."""
    rows: list[tuple[str, float, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-parse-gen-") as tmp:
        for mb in sizes:
            size = int(mb * MB)
            root = Path(tmp, f"grub-{mb}")
            (root / "boot/grub").mkdir(parents=True)
            text = grub_text(size)
            (root / "boot/grub/grub.cfg").write_text(text)
            seconds = _cpu(repeat, functools.partial(parse, text, "grub.cfg"))
            rows.append(("grub.cfg lex+parse", len(text) / MB, seconds, ""))
            load = functools.partial(grub.load, Filesystem(root=root, name="gen"), LoadContext())
            result = load()
            rows.append(("grub.cfg whole loader", len(text) / MB, _cpu(1, load), f"{len(result.entries)} entries"))
            rows[-1] = (*rows[-1][:3], rows[-1][3] + _error(result))
            root = Path(tmp, f"sys-{mb}")
            root.mkdir()
            text = syslinux_text(size)
            (root / "syslinux.cfg").write_text(text)
            load = functools.partial(syslinux.load, Filesystem(root=root, name="gen"), LoadContext())
            result = load()
            note = f"{len(result.entries)} entries{_error(result)}"
            rows.append(("syslinux.cfg whole loader", len(text) / MB, _cpu(repeat, load), note))
        if lexer:
            for mb in (1.6, 3.2):
                text = "${" * int(mb * MB / 2)
                rows.append(
                    ("unterminated ${ lex+parse", len(text) / MB, _cpu(1, functools.partial(parse, text, "x")), "")
                )
    return sorted(rows, key=lambda r: (r[0], r[1]))


def report_generated(rows: list[tuple[str, float, float, str]]) -> str:
    lines = ["generated configs, CPU time (linear growth: ms/MB stays flat):"]
    for what, mb, seconds, note in rows:
        lines.append(f"  {what:26} {mb:5.2f} MB {seconds * 1e3:10.1f} ms {seconds * 1e3 / mb:9.1f} ms/MB  {note}")
    return "\n".join(lines)


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
    parser.add_argument("--sizes", default="1,5", help="MB of the generated configs, comma-separated (default 1,5)")
    parser.add_argument("--lexer", action="store_true", help="also lex an unterminated ${ over 1.6 MB and 3.2 MB")
    args = parser.parse_args(argv)
    sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
    print(report(measure(max(1, args.repeat))))
    print(report_generated(measure_generated(sizes, 1, lexer=args.lexer)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
