"""Issue 9 item 7: configs that never finish. Every loop iteration, expansion, sourced file and entry body is charged
to one step budget per config, which also carries the loader's deadline; the lexer and loaders are linear.

No test here measures time: each asserts that loading terminates with a diagnostic naming the bound that stopped it,
and that the good entries before the expensive construct survive. The deadline is driven by a fake clock.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.budget import Budget, time_limit
from discovery.entry import LoadResult
from discovery.fs import Filesystem
from discovery.grub.evaluator import Limits
from discovery.grub.lexer import rescanned
from discovery.grub.loader import evaluate
from discovery.loaders import LoadContext, load_filesystem
from discovery.syslinux import load_config


def write(root: Path, path: str, text: str = "x") -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def grub(root: Path, text: str, limits: Limits | None = None, ctx: LoadContext | None = None) -> LoadResult:
    write(root, "k")
    write(root, "boot/grub/grub.cfg", text)
    result, _ = evaluate(Filesystem(root=root, name="sda1"), "/boot/grub/grub.cfg", ctx or LoadContext(), limits)
    return result


def titles(result: LoadResult) -> list[str]:
    return [e.title for e in result.entries]


def stopped(result: LoadResult, *words: str) -> bool:
    return any(all(w in d.message for w in words) for d in result.diagnostics)


GOOD = "menuentry good { linux /k }\n"
AFTER = "menuentry after { linux /k }\n"


@pytest.mark.parametrize(
    "construct",
    [
        pytest.param("for i in 1 2; do " * 30 + "true; " + "done; " * 30, id="30 nested for loops over 2 words"),
        pytest.param("for i in 1 2; do " * 30 + "for j in; do true; done; " + "done; " * 30, id="nested, no command"),
        pytest.param(
            'set w="' + "x " * 1000 + '"\nfor a in $w; do for b in $w; do for c in $w; do true; done; done; done',
            id="three nested loops over 1000 words",
        ),
        pytest.param("while true; do until false; do true; done; done", id="nested while/until"),
        pytest.param("function f { f; f; }\nf", id="function recursion, two calls each"),
        pytest.param(
            "set x=" + "y" * 100_000 + "\nfor i in 1 2 3 4 5 6 7 8 9; do for j in 1 2 3 4 5 6 7 8 9; do "
            "for k in 1 2 3 4 5 6 7 8 9; do set z=$x$x; done; done; done",
            id="expansions of a 100 KB value",
        ),
        pytest.param("eval 'eval \"for i in 1 2 3; do eval true; done\"'\n" * 5000, id="eval text"),
    ],
)
def test_expensive_constructs_stop_on_the_budget_and_earlier_entries_survive(tmp_path: Path, construct: str) -> None:
    result = grub(tmp_path, GOOD + construct + "\n" + AFTER)
    assert titles(result)[:1] == ["good"]
    assert stopped(result, "evaluation stopped") or titles(result) == ["good", "after"]
    if titles(result) != ["good", "after"]:
        assert any(w in d.message for d in result.diagnostics for w in ("steps", "step budget", "nesting"))


def test_a_config_sourcing_itself_three_times_is_bounded(tmp_path: Path) -> None:
    text = GOOD + "source /boot/grub/grub.cfg\n" * 3
    result = grub(tmp_path, text)
    assert titles(result)[0] == "good"
    # Terminated by a bound (source depth, menu size or the step budget), said in a diagnostic.
    assert any(w in d.message for d in result.diagnostics for w in ("deeper", "menu entries", "step"))


def test_sourced_files_share_the_one_budget(tmp_path: Path) -> None:
    # Each file alone stays well under the limit (about 9,000 steps); together they exceed it.
    loop = "for i in " + "1 " * 900 + "; do true; done\n"
    for n in range(8):
        write(tmp_path, f"boot/grub/part{n}.cfg", loop * 5)
    text = GOOD + "".join(f"source /boot/grub/part{n}.cfg\n" for n in range(8)) + AFTER
    result = grub(tmp_path, text, Limits(steps=20_000))
    assert titles(result) == ["good"]
    assert stopped(result, "more than 20000 steps")


def test_entry_bodies_count_against_the_config_budget(tmp_path: Path) -> None:
    body = "for i in " + "1 " * 900 + "; do true; done; linux /k"
    text = "".join(f"menuentry e{n} {{ {body} }}\n" for n in range(40))
    result = grub(tmp_path, text, Limits(total_steps=20_000))
    # The first entries were evaluated in full; the rest are reported once, not 30 times.
    assert titles(result)[:3] == ["e0", "e1", "e2"]
    assert len(result.entries) < 40
    assert sum("not evaluated" in d.message for d in result.diagnostics) == 1


class Ticking:
    """A clock that advances by `step` seconds each time it is read: a deadline that is certain to pass."""

    def __init__(self, step: float) -> None:
        self.now = itertools.count()
        self.step = step

    def __call__(self) -> float:
        return next(self.now) * self.step


def test_grub_stops_at_the_deadline_and_keeps_the_entries_read_before(tmp_path: Path) -> None:
    clock = Ticking(0.001)
    ctx = LoadContext(deadline=5.0, clock=clock)  # 5,000 clock reads: far fewer than the loop below needs
    text = GOOD + "for a in 1 2 3 4 5 6 7 8 9 10; do " * 5 + "true; " + "done; " * 5 + "\n" + AFTER
    result = grub(tmp_path, text, ctx=ctx)
    assert titles(result) == ["good"]
    assert stopped(result, "time limit exceeded")


def test_load_filesystem_takes_the_deadline_of_the_daemon_job(tmp_path: Path) -> None:
    clock = Ticking(0.001)
    write(tmp_path, "k")
    write(tmp_path, "boot/grub/grub.cfg", GOOD + "while true; do while true; do true; done; done\n" + AFTER)
    write(tmp_path, "syslinux.cfg", "LABEL sys\n  KERNEL /k\n" + "SAY padding\n" * 100_000)
    with time_limit(30.0, clock):
        result = load_filesystem(Filesystem(root=tmp_path, name="sda1"), LoadContext(clock=clock))
    # Each loader got its share of the time: the syslinux label survives the GRUB loop that used up its own.
    assert titles(result) == ["good", "sys"]
    assert stopped(result, "time limit exceeded")


def test_syslinux_include_explosion_is_bounded(tmp_path: Path) -> None:
    # Each level INCLUDEs the next twice: 2^16 file reads without a budget.
    for level in range(16):
        write(tmp_path, f"l{level}.cfg", f"SAY level {level}\nINCLUDE /l{level + 1}.cfg\nINCLUDE /l{level + 1}.cfg\n")
    write(tmp_path, "l16.cfg", "SAY bottom\n")
    write(tmp_path, "syslinux.cfg", "LABEL good\n  KERNEL /k\nINCLUDE /l0.cfg\nLABEL after\n  KERNEL /k\n")
    write(tmp_path, "k")
    result = load_config(Filesystem(root=tmp_path, name="sdb1"), "/syslinux.cfg", Budget(20_000))
    assert titles(result) == ["good"]
    assert stopped(result, "step budget of 20000 used up", "read up to here")


def test_syslinux_stops_at_the_deadline(tmp_path: Path) -> None:
    write(tmp_path, "k")
    write(tmp_path, "syslinux.cfg", "LABEL good\n  KERNEL /k\n" + "SAY x\n" * 50_000 + "LABEL after\n  KERNEL /k\n")
    result = load_config(
        Filesystem(root=tmp_path, name="sdb1"), "/syslinux.cfg", Budget(10**9, 1.0, 0.5, Ticking(0.001))
    )
    assert titles(result) == ["good"]
    assert stopped(result, "time limit exceeded")


def test_bls_ten_thousand_repeated_keys_give_one_warning(tmp_path: Path) -> None:
    write(tmp_path, "k")
    write(tmp_path, "loader/entries/a.conf", "title x\n" * 10_000 + "linux /k\n")
    write(tmp_path, "loader/entries/b.conf", "title good\nlinux /k\n")
    result = load_filesystem(Filesystem(root=tmp_path, name="sda1"))
    assert sorted(titles(result)) == ["good", "x"]
    repeated = [str(d) for d in result.diagnostics if "given" in d.message]
    assert repeated == ["/loader/entries/a.conf:10000: 'title' given 10000 times; this later value is used"]


def test_bls_entries_directory_is_bounded(tmp_path: Path) -> None:
    write(tmp_path, "k")
    write(tmp_path, "loader/entries/a.conf", "title good\nlinux /k\n")
    write(tmp_path, "loader/entries/b.conf", "title long\nlinux /k\n" + "options x\n" * 300_000)
    write(tmp_path, "loader/entries/c.conf", "title later\nlinux /k\n")
    result = load_filesystem(Filesystem(root=tmp_path, name="sda1"))
    assert "good" in titles(result)
    assert stopped(result, "step budget")


@pytest.mark.parametrize(
    "unit",
    ["${", "'", '"\n', '"${x\\\\\\"\n', "$", "\\", '"\\"', "${\n", "#${", '"$"'],
)
def test_lexer_is_linear_on_repeated_unterminated_constructs(unit: str) -> None:
    text = unit * (100_000 // len(unit))
    # Characters looked at again (rewinds, searches ahead) stay within three times the text: no quadratic rescans.
    assert rescanned(text) <= 3 * len(text) + 16


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.lists(st.sampled_from(["${", "}", "'", '"', "\\", "\n", "$", "x", " ", "#", ";", "{"]), max_size=400))
def test_lexer_rescans_are_linear_on_any_mix(units: list[str]) -> None:
    text = "".join(units) * 20
    assert rescanned(text) <= 3 * len(text) + 16


@pytest.mark.parametrize(
    ("pattern", "risk"),
    [
        ("(a+)+b", "repeated group"),
        ("(a|aa)*c", "repeated group"),
        ("(x*)*y", "repeated group"),
        (".*.*.*.*b", "unbounded repetitions"),
        ("(a)\\1", "back-reference"),
    ],
)
def test_regexp_that_could_backtrack_exponentially_is_refused(tmp_path: Path, pattern: str, risk: str) -> None:
    # No budget can interrupt the matcher itself: such a pattern on 40 characters would not finish.
    text = GOOD + f"regexp --set=m '{pattern}' '{'a' * 40}'\nif [ -z \"$m\" ]; then set ok=1; fi\n" + AFTER
    result = grub(tmp_path, text)
    assert titles(result) == ["good", "after"]
    assert stopped(result, "may take exponential time", risk)


def test_regexp_as_real_configs_use_it_still_matches(tmp_path: Path) -> None:
    text = (
        "regexp --set=1:dev --set=2:path '^\\(([^)]*)\\)(.*)$' '(hd0,gpt2)/vmlinuz-6.8'\n"
        'menuentry "$dev $path" { linux /k }\n'
    )
    assert titles(grub(tmp_path, text)) == ["hd0,gpt2 /vmlinuz-6.8"]


def test_syslinux_submenus_nested_thousands_deep_join_their_parent(tmp_path: Path) -> None:
    write(tmp_path, "k")
    deep = "MENU BEGIN x\n" * 5000 + "LABEL deep\n  KERNEL /k\n" + "MENU END\n" * 5000
    write(tmp_path, "syslinux.cfg", "LABEL good\n  KERNEL /k\n" + deep + "LABEL after\n  KERNEL /k\n")
    result = load_filesystem(Filesystem(root=tmp_path, name="sdb1"))
    assert titles(result) == ["good", "deep", "after"]
    assert [len(e.submenu) for e in result.entries] == [0, 32, 0]
    assert stopped(result, "MENU BEGIN nested deeper than 32")
    assert not stopped(result, "MENU END without")


def test_grub_configs_per_filesystem_are_bounded(tmp_path: Path) -> None:
    write(tmp_path, "k")
    for n in range(40):
        write(tmp_path, f"EFI/vendor{n:02}/grub.cfg", f"menuentry v{n:02} {{ linux /k }}\n")
    result = load_filesystem(Filesystem(root=tmp_path, name="esp"))
    assert titles(result) == [f"v{n:02}" for n in range(16)]
    assert stopped(result, "more than 16 GRUB configs")
