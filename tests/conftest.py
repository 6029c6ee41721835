"""Shared fixtures (where the repository, the shared corpus and the cached test kernel are) and the session rules.

Session rules, for `make test` on two pytest-xdist workers (`-n 2 --dist loadscope`, scopes defined here):
- scheduling: each test under tests/qemu is a group of its own (both workers boot VMs; they share the payload
  build through a lock), every other file is one group (its module fixtures are built once). QEMU groups go first,
  longest first (durations of earlier runs from pytest's cache, else tests/data/durations.json), so the slow VMs
  do not start last.
- no process left behind: every process the run starts inherits BOOTMENU_TEST_SESSION; at the end, any `bootmenu`
  or QEMU process still carrying this run's token fails the run (and is killed, after being listed).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

# Property tests search the same examples on every run (and on CI), so a failure is reproducible, not luck.
hypothesis_settings.register_profile("bootmenu", derandomize=True)
hypothesis_settings.load_profile("bootmenu")

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
KERNEL_CACHE = REPO / ".cache" / "kernel" / "root"
QEMU_PREFIX = "tests/qemu/"  # node ids are relative to the repository
DURATION_HINTS = REPO / "tests" / "data" / "durations.json"
DURATIONS_KEY = "bootmenu/durations"
SESSION_ENV = "BOOTMENU_TEST_SESSION"
# A test marked qemu with no recorded duration: assume it is slow, so it is still scheduled first.
UNKNOWN_QEMU_SECONDS = 60.0
# How long the leftover check waits for processes that are already exiting (killed VMs, daemons told to stop).
LEFTOVER_GRACE = 15.0


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


@pytest.fixture(scope="session")
def kernel_version(kernel_root: Path) -> str:
    """The cached kernel's version (`6.1.0-57-amd64`), from its modules directory: never hard-code it."""
    versions = sorted(p.name for p in (kernel_root / "lib" / "modules").iterdir() if p.is_dir())
    assert len(versions) == 1, f"expected one kernel in {kernel_root}/lib/modules, found {versions}"
    return versions[0]


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    # Set before xdist starts its workers, so they and everything they start inherit it. Always a new one: a run that
    # a test starts (tests/bootmenu/test_urwid_parts.py) must not take the outer run's processes for its leftovers and
    # kill them (it inherited the outer token and killed the other worker's `bootmenu demo` under test).
    if _is_controller(config):
        os.environ[SESSION_ENV] = uuid.uuid4().hex


# --- scheduling ---------------------------------------------------------------------------------------------------


def _group_of_nodeid(nodeid: str) -> str:
    return nodeid if nodeid.startswith(QEMU_PREFIX) else nodeid.split("::", 1)[0]


def _group_of(item: pytest.Item) -> str:
    return _group_of_nodeid(item.nodeid)


def _known_durations(config: pytest.Config) -> dict[str, float]:
    known: dict[str, float] = {}
    with contextlib.suppress(OSError, ValueError):
        known.update(json.loads(DURATION_HINTS.read_text()))
    cache = getattr(config, "cache", None)
    if cache is not None:
        known.update(cache.get(DURATIONS_KEY, {}))
    return known


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook appends the group to each node id
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    known = _known_durations(config)
    groups: dict[str, list[pytest.Item]] = {}
    for item in items:
        groups.setdefault(_group_of(item), []).append(item)

    def cost(name: str) -> tuple[bool, float]:
        members = groups[name]
        qemu = any(m.get_closest_marker("qemu") for m in members)
        default = UNKNOWN_QEMU_SECONDS if qemu else 0.0
        return (not qemu, -sum(known.get(m.nodeid, default) for m in members))

    # sorted() is stable: equal costs keep the collection order, the same in every worker.
    items[:] = [item for name in sorted(groups, key=cost) for item in groups[name]]


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """With `--dist loadscope`, the scopes are our groups (see _group_of), sent to the workers in collection order.

    A scheduler rather than xdist_group marks: pytest 9 node ids ignore the "@group" suffix xdist 3.8 writes."""
    if config.getoption("dist", "no") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist is untyped
        def _split_scope(self, nodeid: str) -> str:
            return _group_of_nodeid(nodeid)

    # Our order (QEMU first, longest first), not xdist's "most tests first".
    config.option.loadscopereorder = False
    return GroupScheduling(config, log)


# Seconds per test (setup + call + teardown) in this run; recorded in pytest's cache at the end.
_session_durations: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # On the controller under xdist this sees every worker's reports.
    _session_durations[report.nodeid] = _session_durations.get(report.nodeid, 0.0) + report.duration


# --- no process left behind ---------------------------------------------------------------------------------------


def _leftovers(token: str) -> dict[int, str]:
    """Processes of this run (its token in their environment) that are a bootmenu command or QEMU."""
    found: dict[int, str] = {}
    marker = f"{SESSION_ENV}={token}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        command = " ".join(a.decode(errors="replace") for a in argv if a)
        words = command.split()
        if any(w.endswith("/bootmenu") or w == "bootmenu" or "qemu-system" in w for w in words[:4]):
            found[int(entry.name)] = command
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not _is_controller(config):
        return
    cache = getattr(config, "cache", None)  # absent with -p no:cacheprovider
    if cache is not None and _session_durations:
        recorded = cache.get(DURATIONS_KEY, {})
        recorded.update({k: round(v, 2) for k, v in _session_durations.items()})
        cache.set(DURATIONS_KEY, recorded)
    token = os.environ.get(SESSION_ENV)
    if not token:
        return
    deadline = time.monotonic() + LEFTOVER_GRACE
    left = _leftovers(token)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)  # polling processes that are exiting; the condition is re-checked each time
        left = _leftovers(token)
    if not left:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"the test session left {len(left)} process(es) running (now killed):"]
    lines += [f"  pid {pid}: {command}" for pid, command in sorted(left.items())]
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if reporter is not None:
        reporter.write_sep("=", "leftover processes", red=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
