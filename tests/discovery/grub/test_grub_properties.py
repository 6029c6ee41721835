"""Property tests: on any input the lexer, parser and interpreter raise nothing and terminate."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discovery.entry import LoadResult
from discovery.fs import Filesystem
from discovery.grub.evaluator import Limits
from discovery.grub.lexer import TokenKind, tokenize
from discovery.grub.loader import evaluate
from discovery.grub.parser import parse
from discovery.loaders import LoadContext

FRAGMENTS = [
    "if", "then", "elif", "else", "fi", "while", "until", "do", "done", "for", "i", "in", "function", "f", "g",
    "{", "}", ";", "\n", "\n", "menuentry", "submenu", "hiddenentry", "'T'", '"t $x"', "--id", "x", "linux",
    "/k", "initrd", "/i", "devicetree", "$x", "${x}", "$1", "$@", "$#", "$?", "x=$x$x", "set", "x=1", "unset",
    "[", "]", "=", "!=", "-eq", "-e", "-z", "!", "-a", "-o", "(", ")", "test", "true", "false", "break",
    "continue", "return", "exit", "source", "$prefix/grub.cfg", "configfile", "$config_file", "eval",
    "load_env", "save_env", "blscfg", "search", "--set=root", "-u", "--label", "search.fs_uuid", "setparams",
    "shift", "regexp", "'^(.)'", "chainloader", "(hd0,gpt1)/k", "($root)/k", "default=0", "\\", "'", '"',
    "#", "insmod", "echo", "f", "g", "2",
]  # fmt: skip

SMALL = Limits(steps=400, entry_steps=200, iterations=20, nesting=12, source_depth=3, submenu_depth=4, menu_size=40)

scripts = st.one_of(
    st.text(max_size=400),
    st.lists(st.sampled_from(FRAGMENTS), max_size=120).map(" ".join),
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_lexer_and_parser_never_raise(text: str) -> None:
    tokens = tokenize(text)
    assert tokens[-1].kind is TokenKind.EOF
    parse(text, "/boot/grub/grub.cfg")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripts)
def test_parser_never_raises_on_grub_like_input(text: str) -> None:
    script = parse(text, "/boot/grub/grub.cfg")
    assert all(d.file == "/boot/grub/grub.cfg" for d in script.diagnostics)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripts)
def test_interpreter_raises_nothing_and_terminates(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "boot/grub").mkdir(parents=True)
        (root / "boot/grub/grub.cfg").write_text(text, errors="surrogateescape")
        (root / "k").write_text("k")
        fs = Filesystem(root=root, name="sda1", uuid="u")
        result, _ = evaluate(fs, "/boot/grub/grub.cfg", LoadContext(), SMALL)
    assert isinstance(result, LoadResult)
    assert sum(e.default for e in result.entries) == (1 if result.entries else 0)


REAL = """
function gfxmode { set gfxpayload="${1}"; if [ "${1}" = "keep" ]; then set vt_handoff=vt.handoff=7; fi }
if [ -s $prefix/grubenv ]; then load_env; fi
set default="${saved_entry}"
search --no-floppy --fs-uuid --set=root u
menuentry 'Ubuntu' --class ubuntu $menuentry_id_option 'gnulinux-simple' {
    gfxmode keep
    linux /k root=UUID=1 ro quiet splash $vt_handoff
    initrd /k
}
submenu 'Advanced options' $menuentry_id_option 'adv' {
    for v in 1 2; do menuentry "v$v" { linux /k "v=$1"; }; done
}
"""


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_real_configs_still_evaluate(data: st.DataObject) -> None:
    # Cut a random span out of a real-looking config: recovery must keep going and never raise.
    start = data.draw(st.integers(0, len(REAL)))
    end = data.draw(st.integers(start, min(len(REAL), start + 40)))
    text = REAL[:start] + REAL[end:]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "boot/grub").mkdir(parents=True)
        (root / "boot/grub/grub.cfg").write_text(text)
        (root / "k").write_text("k")
        result, _ = evaluate(Filesystem(root=root, name="sda1", uuid="u"), "/boot/grub/grub.cfg", LoadContext(), SMALL)
    if start == end:
        assert [e.title for e in result.entries] == ["Ubuntu", "v1", "v2"]
        assert result.entries[0].cmdline == "root=UUID=1 ro quiet splash vt.handoff=7"
    assert sum(e.default for e in result.entries) == (1 if result.entries else 0)
