"""tools/retry: a network step that fails for a while (a mirror that cannot be resolved) is run again until it works,
and gives up after its window with one clear line and the command's exit status."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

RETRY = REPO / "tools" / "retry"


def flaky(tmp_path: Path, failures: int, status: int = 100) -> Path:
    """A command that fails `failures` times like apt-get without DNS, then succeeds; it counts its calls in a file."""
    counter = tmp_path / "calls"
    counter.write_text("0")
    script = tmp_path / "flaky"
    script.write_text(
        "#!/bin/sh\n"
        f'n=$(($(cat "{counter}") + 1)); echo "$n" > "{counter}"\n'
        f'if [ "$n" -le {failures} ]; then\n'
        "    echo \"E: Temporary failure resolving 'deb.debian.org' (call $n)\" >&2\n"
        f"    exit {status}\n"
        "fi\n"
        'echo "fetched on call $n"\n'
    )
    script.chmod(0o755)
    return script


def run_retry(*argv: str, window: int = 3) -> subprocess.CompletedProcess[str]:
    # 1 s waits (the defaults are 5 s doubling to 120 s over 900 s) so the window is spent in `window` seconds.
    env = dict(os.environ, RETRY_DELAY="1", RETRY_MAX_DELAY="1", RETRY_WINDOW=str(window))
    return subprocess.run([str(RETRY), *argv], capture_output=True, text=True, env=env, timeout=60, check=False)


def calls(tmp_path: Path) -> int:
    return int((tmp_path / "calls").read_text())


def test_succeeds_after_transient_failures_and_shows_each_error(tmp_path: Path) -> None:
    result = run_retry("--what", "apt-get update", str(flaky(tmp_path, failures=2)), window=10)
    assert result.returncode == 0, result.stderr
    assert "fetched on call 3" in result.stdout
    assert calls(tmp_path) == 3
    # The tool's own message for every failed attempt, and one retry line for each.
    assert result.stderr.count("Temporary failure resolving") == 2
    assert "apt-get update failed (exit status 100, attempt 1); trying again in 1s" in result.stderr
    assert "attempt 2" in result.stderr
    assert "giving up" not in result.stderr


def test_first_success_runs_once(tmp_path: Path) -> None:
    result = run_retry(str(flaky(tmp_path, failures=0)))
    assert result.returncode == 0
    assert calls(tmp_path) == 1
    assert result.stderr == ""


def test_gives_up_after_the_window_with_one_clear_line(tmp_path: Path) -> None:
    result = run_retry("--what", "pip install", str(flaky(tmp_path, failures=1000, status=7)), window=2)
    assert result.returncode == 7
    # Waits 1 s, then 1 s (capped): the window of 2 s is spent after two waits, then a last attempt.
    assert calls(tmp_path) == 3
    last = result.stderr.strip().splitlines()[-1]
    assert last == "retry: giving up on pip install after 3 attempts over 2s (last exit status 7)"


def test_missing_command_is_not_retried(tmp_path: Path) -> None:
    result = run_retry(str(tmp_path / "no-such-command"), window=100)
    assert result.returncode == 127
    assert "giving up" in result.stderr
    assert "after 1 attempts" in result.stderr


@pytest.mark.parametrize("argv", [[], ["--what", "x"]])
def test_usage(argv: list[str]) -> None:
    result = subprocess.run([str(RETRY), *argv], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_fetch_kernel_waits_for_an_unreachable_mirror(tmp_path: Path) -> None:
    """tools/fetch-kernel on a machine whose mirror fails twice: apt-get is a fake on PATH (the syscall boundary of
    this script is the package archive), the .deb it serves is real and unpacked with dpkg -x, depmod is real."""
    version = "9.9.9-test-amd64"
    package = tmp_path / "pkg"
    (package / "DEBIAN").mkdir(parents=True)
    (package / "DEBIAN" / "control").write_text(
        f"Package: linux-image-{version}\nVersion: 1\nArchitecture: amd64\nMaintainer: t <t@t>\nDescription: t\n"
    )
    (package / "boot").mkdir()
    (package / "boot" / f"vmlinuz-{version}").write_bytes(b"kernel")
    (package / "lib" / "modules" / version / "kernel").mkdir(parents=True)
    deb = tmp_path / f"linux-image-{version}_1_amd64.deb"
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(package), str(deb)], check=True, capture_output=True
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    counter = tmp_path / "downloads"
    counter.write_text("0")
    (bin_dir / "apt-cache").write_text(
        f"#!/bin/sh\necho 'linux-image-amd64'\necho '  Depends: linux-image-{version}'\n"
    )
    (bin_dir / "apt-get").write_text(
        "#!/bin/sh\n"
        '[ "$1" = download ] || exit 0\n'
        f'n=$(($(cat "{counter}") + 1)); echo "$n" > "{counter}"\n'
        f'if [ "$n" -le 2 ]; then echo "E: Failed to fetch http://deb.debian.org/x  Temporary failure resolving" >&2; '
        "exit 100; fi\n"
        f'cp "{deb}" .\n'
    )
    for tool in ("apt-cache", "apt-get"):
        (bin_dir / tool).chmod(0o755)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}:{os.environ['PATH']}:/usr/sbin:/sbin",
        RETRY_DELAY="1",
        RETRY_MAX_DELAY="1",
        RETRY_WINDOW="30",
    )
    cache = tmp_path / "cache"
    result = subprocess.run(
        # Run as the Makefile runs it: a relative path from the repository (it changes directory into the cache).
        ["tools/fetch-kernel", str(cache)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{cache}/root"
    assert result.stderr.count("Temporary failure resolving") == 2
    assert (cache / "root" / "boot" / f"vmlinuz-{version}").read_bytes() == b"kernel"
    assert (cache / "root" / "lib" / "modules" / version / "modules.dep").exists()
    assert (cache / "root" / ".complete").exists()


def test_fetch_kernel_arm64_takes_the_x86_version_and_private_package_lists(tmp_path: Path) -> None:
    """tools/fetch-kernel-arm64: the package name comes from the x86 test kernel's version, apt runs with arm64 lists
    kept in the cache (the host's apt configuration untouched), a mirror failure is waited out, modules are dropped."""
    x86 = tmp_path / "x86"
    (x86 / "boot").mkdir(parents=True)
    (x86 / "boot" / "vmlinuz-9.9.9-7-amd64").write_bytes(b"x86 kernel")
    package = tmp_path / "pkg"
    (package / "DEBIAN").mkdir(parents=True)
    (package / "DEBIAN" / "control").write_text(
        "Package: linux-image-9.9.9-7-arm64\nVersion: 1\nArchitecture: arm64\nMaintainer: t <t@t>\nDescription: t\n"
    )
    (package / "boot").mkdir()
    (package / "boot" / "vmlinuz-9.9.9-7-arm64").write_bytes(b"arm64 kernel")
    (package / "lib" / "modules" / "9.9.9-7-arm64").mkdir(parents=True)
    (package / "usr" / "lib" / "linux-image-9.9.9-7-arm64" / "arm").mkdir(parents=True)
    (package / "usr" / "lib" / "linux-image-9.9.9-7-arm64" / "arm" / "board.dtb").write_bytes(b"\xd0\x0d\xfe\xed")
    deb = tmp_path / "linux-image-9.9.9-7-arm64_1_arm64.deb"
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(package), str(deb)], check=True, capture_output=True
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"
    counter = tmp_path / "downloads"
    counter.write_text("0")
    (bin_dir / "apt-cache").write_text(f'#!/bin/sh\necho "apt-cache $*" >> "{log}"\nexit 100\n')
    (bin_dir / "apt-get").write_text(
        "#!/bin/sh\n"
        f'echo "apt-get $*" >> "{log}"\n'
        'for a in "$@"; do last=$a; done\n'
        'case " $* " in *" download "*) ;; *) exit 0 ;; esac\n'
        f'n=$(($(cat "{counter}") + 1)); echo "$n" > "{counter}"\n'
        f'if [ "$n" -le 1 ]; then echo "E: Temporary failure resolving" >&2; exit 100; fi\n'
        f'[ "$last" = "linux-image-9.9.9-7-arm64:arm64" ] && cp "{deb}" .\n'
    )
    for tool in ("apt-cache", "apt-get"):
        (bin_dir / tool).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", RETRY_DELAY="1", RETRY_MAX_DELAY="1")
    cache = tmp_path / "cache"
    result = subprocess.run(
        ["tools/fetch-kernel-arm64", str(x86), str(cache)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    root = cache / "root"
    assert result.stdout.strip() == str(root)
    assert (root / "boot" / "vmlinuz-9.9.9-7-arm64").read_bytes() == b"arm64 kernel"
    assert (root / "usr" / "lib" / "linux-image-9.9.9-7-arm64" / "arm" / "board.dtb").exists()
    assert not (root / "lib" / "modules").exists()
    calls = log.read_text().splitlines()
    assert any(" update " in f" {c} " for c in calls)
    for call in calls:
        assert "APT::Architecture=arm64" in call
        assert f"Dir::State::Lists={cache}/apt/lists" in call
    assert result.stderr.count("Temporary failure resolving") == 1
