"""The script language: expansion, control flow, functions, test expressions, limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.grub.evaluator import Interpreter, Limits
from discovery.grub.parser import parse
from tests.discovery.grub.grubtree import make_fs


def evaluate(tmp_path: Path, script: str, limits: Limits | None = None) -> Interpreter:
    fs = make_fs(tmp_path, {"/boot/grub/grub.cfg": script, "/boot/vmlinuz": "k", "/boot/empty": ""})
    it = Interpreter(fs, lambda kind, value: None, limits=limits)
    it.run_config(fs, "/boot/grub/grub.cfg")
    return it


def var(it: Interpreter, name: str) -> str:
    return it.scope.env.get(name)


def test_assignment_forms_and_unset(tmp_path: Path) -> None:
    it = evaluate(tmp_path, 'a=1\nset b="two words"\nset c=x=y\nd=$b\nunset a\nexport b\n')
    assert var(it, "a") == ""
    assert var(it, "b") == "two words"
    assert var(it, "c") == "x=y"
    assert var(it, "d") == "two words"


def test_unquoted_expansion_splits_quoted_does_not(tmp_path: Path) -> None:
    script = """
set opts="quiet  splash"
function count { set n=$# ; set first="$1" }
count $opts
set unquoted=$n
count "$opts"
set quoted=$n
count $empty "" $empty
set empties=$n
"""
    it = evaluate(tmp_path, script)
    assert (var(it, "unquoted"), var(it, "quoted"), var(it, "empties")) == ("2", "1", "1")


def test_functions_positional_parameters_and_return_status(tmp_path: Path) -> None:
    script = """
function pick { if [ "$2" = b ]; then return 3; fi; set all="$@"; return 0 }
pick a b c
set st=$?
pick a x c
set st2=$?
set all_out="$all"
"""
    it = evaluate(tmp_path, script)
    assert var(it, "st") == "3"
    assert var(it, "st2") == "0"
    assert var(it, "all_out") == "a x c"


def test_if_elif_else_and_exit_status(tmp_path: Path) -> None:
    script = """
for v in 1 2 3; do
  if [ $v = 1 ]; then set r1=one
  elif [ $v = 2 ]; then set r2=two
  else set r3=other; fi
done
false
set after_false=$?
true
set after_true=$?
"""
    it = evaluate(tmp_path, script)
    assert [var(it, n) for n in ("r1", "r2", "r3", "after_false", "after_true")] == ["one", "two", "other", "1", "0"]


def test_loops_break_continue(tmp_path: Path) -> None:
    script = """
set seen=
for i in a b c d e; do
  if [ $i = b ]; then continue; fi
  if [ $i = d ]; then break; fi
  set seen="${seen}$i"
done
set n=
until [ "$n" = xxx ]; do set n="${n}x"; done
set w=
while true; do set w=done; break; done
set outer=
for i in 1 2; do for j in 1 2; do set outer="$outer$i$j"; continue 2; done; done
"""
    it = evaluate(tmp_path, script)
    assert var(it, "seen") == "ac"
    assert var(it, "n") == "xxx"
    assert var(it, "w") == "done"
    assert var(it, "outer") == "1121"


@pytest.mark.parametrize(
    ("expr", "status"),
    [
        ("a = a", 0),
        ("a == b", 1),
        ("a != b", 0),
        ("abc < abd", 0),
        ("b > a", 0),
        ("-z ''", 0),
        ("-n ''", 1),
        ("-n x", 0),
        ("10 -eq 10", 0),
        ("9 -ne 9", 1),
        ("2 -lt 10", 0),
        ("10 -le 9", 1),
        ("10 -gt 9", 0),
        ("3 -ge 4", 1),
        ("! a = a", 1),
        ("a = a -a b = c", 1),
        ("a = a -o b = c", 0),
        ("( a = b -o a = a ) -a x = x", 0),
        ("-e /boot/vmlinuz", 0),
        ("-e /boot/missing", 1),
        ("-f /boot", 1),
        ("-d /boot", 0),
        ("-s /boot/vmlinuz", 0),
        ("-s /boot/empty", 1),
        ("-s /boot", 1),
        ("-e ''", 1),
        ("-s ''", 1),
        ("-f (sda1)/boot/vmlinuz", 0),
        ("x", 0),
        ("''", 1),
    ],
)
def test_test_expressions(tmp_path: Path, expr: str, status: int) -> None:
    it = evaluate(tmp_path, f"[ {expr} ]\nset s1=$?\ntest {expr}\nset s2=$?\n")
    assert (var(it, "s1"), var(it, "s2")) == (str(status), str(status))


def test_unknown_and_ignored_commands_return_a_status_and_never_abort(tmp_path: Path) -> None:
    it = evaluate(tmp_path, "insmod part_gpt\nset a=$?\nfrobnicate --x\nset b=$?\nset reached=yes\n")
    assert (var(it, "a"), var(it, "b"), var(it, "reached")) == ("0", "1", "yes")
    assert any("frobnicate" in d.message for d in it.diagnostics)


def test_grub_sets_its_own_variables(tmp_path: Path) -> None:
    fs = make_fs(tmp_path, {"/boot/grub/grub.cfg": "set seen=$prefix\n"})
    it = Interpreter(fs, lambda kind, value: None, firmware="efi", cpu="arm64")
    scope = it.run_config(fs, "/boot/grub/grub.cfg")
    env = scope.env
    assert env.get("prefix") == "(sda1)/boot/grub"
    assert env.get("config_directory") == "(sda1)/boot/grub"
    assert env.get("config_file") == "(sda1)/boot/grub/grub.cfg"
    assert env.get("root") == "sda1"
    assert (env.get("grub_platform"), env.get("grub_cpu")) == ("efi", "arm64")
    for flag in ("feature_menuentry_id", "feature_default_font_path", "feature_all_video_module"):
        assert env.get(flag) == "y"
    assert env.get("feature_platform_search_hint") == env.get("feature_timeout_style") == "y"
    assert env.get("feature_200_final") == env.get("feature_ntldr") == env.get("feature_chainloader_bpb") == "y"


def test_eval_regexp_and_setparams(tmp_path: Path) -> None:
    script = """
eval "set e=1"
regexp --set=1:dev '^\\(([^)]+)\\)' '(hd0,gpt2)/boot'
setparams x y z
set n=$#
shift
set two=$1
"""
    it = evaluate(tmp_path, script)
    assert (var(it, "e"), var(it, "dev"), var(it, "n"), var(it, "two")) == ("1", "hd0,gpt2", "3", "y")


@pytest.mark.parametrize(
    "script",
    [
        "function f { f }\nf\n",
        "while true; do true; done\n",
        "until false; do echo; done\n",
        "function a { b }\nfunction b { a }\na\n",
        "source $prefix/grub.cfg\n",
        "configfile $config_file\n",
        "eval 'eval \"eval true\"'\n" * 3,
        "for i in 1 2 3; do for j in 1 2 3; do for k in 1 2 3; do echo; done; done; done\n" * 200,
        "set x=ab\nfor i in " + "1 " * 45 + "; do set x=$x$x; done\n",
        "set x=ab\nfor i in " + "1 " * 45 + '; do set x="$x $x"; echo $x $x $x $x $x $x $x $x; done\n',
    ],
)
def test_every_loop_and_recursion_is_bounded(tmp_path: Path, script: str) -> None:
    limits = Limits(steps=2_000, iterations=50, nesting=20, source_depth=4)
    it = evaluate(tmp_path, script + "set after=1\n", limits)
    # Terminated; either finished or stopped with a diagnostic that says which bound was hit.
    assert var(it, "after") == "1" or any(
        w in d.message for d in it.diagnostics for w in ("nest", "iterations", "commands", "deeper", "longer")
    )


def test_syntax_error_skips_smallest_construct(tmp_path: Path) -> None:
    script = "set a=1\nif true; then\n  set b=2\n  while x; do\nfi\nset c=3\n"
    parsed = parse(script, "/boot/grub/grub.cfg")
    assert [d.line for d in parsed.diagnostics] == [5]
    assert "while" in parsed.diagnostics[0].message
    it = evaluate(tmp_path, script)
    assert (var(it, "a"), var(it, "b"), var(it, "c")) == ("1", "2", "3")


def test_stray_closer_at_top_level_is_skipped(tmp_path: Path) -> None:
    it = evaluate(tmp_path, "fi\ndone\n}\nset ok=1\n")
    assert var(it, "ok") == "1"
    assert [d.line for d in it.diagnostics] == [1, 2, 3]


def test_ubuntu_hidden_menu_and_hardware_probes_take_the_no_key_no_blacklist_path(tmp_path: Path) -> None:
    script = """
set timeout=0
if keystatus; then
  if keystatus --shift; then set timeout=-1; else set timeout=0; fi
fi
if hwmatch ${prefix}/gfxblacklist.txt 3; then
  if [ ${match} = 0 ]; then set linux_gfx_mode=keep; else set linux_gfx_mode=text; fi
fi
"""
    it = evaluate(tmp_path, script)
    assert (var(it, "timeout"), var(it, "linux_gfx_mode")) == ("0", "keep")


def test_an_empty_command_between_semicolons_drops_the_construct(tmp_path: Path) -> None:
    # parser.y: one `;` or newline between commands, then newlines only. grub-emu sets t2 and t4, never t1 or t3.
    script = "if true;then t1=1; ;fi\nif true; then t2=2;\n\nfi\n;t3=3\nt4=4;\n"
    it = evaluate(tmp_path, script)
    assert [var(it, f"t{n}") for n in (1, 2, 3, 4)] == ["", "2", "", "4"]
    assert [d.line for d in it.diagnostics] == [1, 5]
    assert all("';'" in d.message for d in it.diagnostics)
