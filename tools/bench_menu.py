"""How much the menu costs on a slow serial line: bytes sent to an 80x24 vt100 terminal per action, and start-up time.

Runs the real `bootmenu demo` in a pseudo-terminal (like tests/bootmenu/test_demo.py) and counts the bytes the menu
writes: the first full screen, one selection move, one second of autoboot countdown, opening and closing a window.
At 115200 baud a serial line carries about 11.5 KB/s; the figures show how long each redraw takes there.

Usage: python -m tools.bench_menu [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import pexpect

REPO = Path(__file__).resolve().parent.parent
BAUD_BYTES = 115200 / 10  # 8N1: ten bits a byte


def _drain(child: pexpect.spawn, seconds: float) -> bytes:
    out = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            out += child.read_nonblocking(65536, timeout=0.05)
        except pexpect.TIMEOUT:
            continue
    return out


def _until(child: pexpect.spawn, marker: bytes, timeout: float = 20.0) -> tuple[bytes, float]:
    start = time.monotonic()
    out = b""
    while marker not in out:
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"no {marker!r} after {timeout}s")
        try:
            out += child.read_nonblocking(65536, timeout=0.05)
        except pexpect.TIMEOUT:
            continue
    return out + _drain(child, 0.3), time.monotonic() - start


def run_once() -> dict[str, float]:
    env = {**os.environ, "TERM": "vt100", "LANG": "C.UTF-8"}
    child = pexpect.spawn(sys.executable, ["-m", "bootmenu", "demo"], cwd=str(REPO), env=env, dimensions=(24, 80))
    try:
        first, started = _until(child, b"Linux lts (single user)")
        first += _drain(child, 0.7)
        tick = _drain(child, 1.0)  # one second of countdown, nothing pressed
        child.send("\x1b[B")
        cancel = _drain(child, 0.5)  # the first key: moves and stops the countdown
        child.send("\x1b[B")
        move = _drain(child, 0.5)
        child.send("i")
        window = _drain(child, 0.5)
        child.send("q")
        close = _drain(child, 0.5)
        child.send("q")
        child.expect(pexpect.EOF, timeout=15)
    finally:
        if child.isalive():
            child.terminate(force=True)
    return {
        "start to full menu (s)": started,
        "first screen (bytes)": len(first),
        "countdown tick (bytes/s)": len(tick),
        "first key: move + cancel countdown (bytes)": len(cancel),
        "selection move (bytes)": len(move),
        "open details window (bytes)": len(window),
        "close window (bytes)": len(close),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    results = [run_once() for _ in range(args.runs)]
    print(f"bootmenu demo on an 80x24 vt100 pty, {args.runs} runs (median; time at 115200 baud)")
    for key in results[0]:
        value = statistics.median(r[key] for r in results)
        if key.endswith("(s)"):
            print(f"  {key:<46} {value:8.2f}")
        else:
            print(f"  {key:<46} {value:8.0f}   {value / BAUD_BYTES * 1000:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
