"""The lexer: GRUB quoting, variables, comments, continuation; errors become tokens, never exceptions."""

from __future__ import annotations

from discovery.grub.lexer import PartKind, TokenKind, tokenize
from discovery.grub.parser import Command, If, MenuDef, parse

PartTuple = tuple[str, str, bool]
WordTuple = tuple[PartTuple, ...]


def words(text: str) -> list[list[WordTuple]]:
    out: list[list[WordTuple]] = []
    line: list[WordTuple] = []
    for tok in tokenize(text):
        if tok.kind is TokenKind.WORD:
            assert tok.word is not None
            line.append(tuple((p.kind.value, p.text, p.quoted) for p in tok.word.parts))
        elif tok.kind is TokenKind.SEPARATOR and line:
            out.append(line)
            line = []
    if line:
        out.append(line)
    return out


def test_single_quotes_keep_everything_literally() -> None:
    [[_, arg]] = words("echo 'a $b \\c \"d\"'")
    assert arg == (("literal", 'a $b \\c "d"', True),)


def test_double_quotes_expand_variables_and_honour_escapes() -> None:
    [[_, arg]] = words('echo "x $y ${z}w \\"q\\" \\$n \\a"')
    assert arg == (
        ("literal", "x ", True),
        ("variable", "y", True),
        ("literal", " ", True),
        ("variable", "z", True),
        ("literal", 'w "q" $n \\a', True),
    )


def test_special_and_positional_variables() -> None:
    [[_, *args]] = words("echo $? $# $@ $* $1 $12 ${10} $ x$")
    kinds = [[(p[0], p[1]) for p in a] for a in args]
    assert kinds[:7] == [
        [("variable", "?")],
        [("variable", "#")],
        [("variable", "@")],
        [("variable", "*")],
        [("variable", "1")],
        [("variable", "12")],
        [("variable", "10")],
    ]
    assert kinds[7] == [("literal", "$")]


def test_backslash_escapes_and_line_continuation() -> None:
    tokens = tokenize("linux /vmlinuz a\\ b \\\n   c\necho next")
    lines = words("linux /vmlinuz a\\ b \\\n   c\necho next")
    assert len(lines) == 2
    assert "".join(p[1] for p in lines[0][2]) == "a b"
    assert "".join(p[1] for p in lines[0][3]) == "c"
    assert [t.line for t in tokens if t.kind is TokenKind.WORD][-2:] == [3, 3]


def test_comments_only_at_word_start() -> None:
    [[_, a, b]] = words("echo a#b c # a comment ; not a command")
    assert a == (("literal", "a#b", False),)
    assert b == (("literal", "c", False),)


def test_multiline_quoted_string_counts_lines() -> None:
    tokens = tokenize("set x='a\nb'\necho y")
    word_lines = [t.line for t in tokens if t.kind is TokenKind.WORD]
    assert word_lines == [1, 1, 3, 3]


def test_unterminated_quote_is_an_error_token_and_lexing_resumes_next_line() -> None:
    tokens = tokenize("echo 'oops\necho fine\n")
    kinds = [t.kind for t in tokens]
    assert TokenKind.ERROR in kinds
    last_words = [t.word.parts[0].text for t in tokens if t.kind is TokenKind.WORD and t.word]
    assert last_words[-2:] == ["echo", "fine"]


def test_braces_are_separate_words_even_glued_to_a_quote() -> None:
    script = parse('submenu "Advanced"{\n menuentry x{\n linux /k\n }\n}\n', "g.cfg")
    assert not script.diagnostics
    [sub] = script.body
    assert isinstance(sub, MenuDef)
    assert sub.kind == "submenu"
    [inner] = sub.body
    assert isinstance(inner, MenuDef)
    assert inner.kind == "menuentry"


def test_keywords_only_in_command_position() -> None:
    script = parse("echo if then fi\nif true; then echo fi; fi\n", "g.cfg")
    assert not script.diagnostics
    first, second = script.body
    assert isinstance(first, Command)
    assert len(first.words) == 4
    assert isinstance(second, If)


def test_quoted_keyword_is_a_plain_word() -> None:
    [tok, *_] = tokenize("'if'")
    assert tok.word is not None
    assert tok.word.plain is None
    assert tok.word.parts[0].kind is PartKind.LITERAL
