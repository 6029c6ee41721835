"""GRUB script parser: tokens to an AST of commands, if/while/until/for, functions and menu entry blocks.

Follows the grammar of grub-core/script/parser.y (GRUB 2.06). Keywords count only in command position and only when
unquoted. Error recovery, so one bad construct never costs the whole file: a syntax error abandons the smallest
enclosing construct (the `if`, loop, function or command being parsed), records a diagnostic naming file and line,
and parsing resumes at the token that broke it when that token closes an outer construct, else on the next line.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass

from discovery.entry import Diagnostic
from discovery.grub.errors import GrubSyntaxError
from discovery.grub.lexer import Token, TokenKind, Word, tokenize

# Tokens that end a command list; the construct that opened the list decides whether it is the one it expects.
CLOSERS = frozenset({"then", "do", "else", "elif", "fi", "done", "}"})
MENU_COMMANDS = frozenset({"menuentry", "submenu", "hiddenentry"})
# Deeper nesting than this is refused (bounded recursion in parser and evaluator).
MAX_NESTING = 48


@dataclass(frozen=True)
class Command:
    words: tuple[Word, ...]
    line: int


@dataclass(frozen=True)
class If:
    branches: tuple[tuple[Block, Block], ...]
    orelse: Block | None
    line: int


@dataclass(frozen=True)
class Loop:
    condition: Block
    body: Block
    until: bool
    line: int


@dataclass(frozen=True)
class For:
    variable: str
    items: tuple[Word, ...]
    body: Block
    line: int


@dataclass(frozen=True)
class FunctionDef:
    name: str
    body: Block
    line: int


@dataclass(frozen=True)
class MenuDef:
    """`menuentry`, `submenu` or `hiddenentry` with its argument words and its (unevaluated) body."""

    kind: str
    words: tuple[Word, ...]
    body: Block
    line: int


Node = Command | If | Loop | For | FunctionDef | MenuDef
Block = tuple[Node, ...]


@dataclass(frozen=True)
class Script:
    file: str
    body: Block
    diagnostics: tuple[Diagnostic, ...]
    size: int = 0  # characters of the text: what reading it again costs


class _Parser:
    def __init__(self, tokens: list[Token], file: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.file = file
        self.depth = 0
        self.diags: list[Diagnostic] = []

    # Token helpers

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def keyword(self) -> str | None:
        tok = self.peek()
        if tok.kind is TokenKind.WORD and tok.word is not None:
            plain = tok.word.plain
            if plain in CLOSERS or plain in ("if", "while", "until", "for", "function", "{"):
                return plain
        return None

    def error(self, message: str) -> GrubSyntaxError:
        return GrubSyntaxError(message, self.file, self.peek().line)

    def expect(self, word: str, construct: str, line: int) -> None:
        if self.keyword() != word:
            found = self.describe()
            raise self.error(f"expected '{word}' to close '{construct}' of line {line}, found {found}")
        self.pos += 1

    def describe(self) -> str:
        tok = self.peek()
        if tok.kind is TokenKind.EOF:
            return "end of file"
        if tok.kind is TokenKind.SEPARATOR:
            return "end of line" if tok.text == "\n" else "';'"
        if tok.kind is TokenKind.ERROR:
            return tok.text
        assert tok.word is not None
        return f"'{tok.word.source()}'"

    def at_semicolon(self) -> bool:
        return self.peek().kind is TokenKind.SEPARATOR and self.peek().text == ";"

    def skip_newlines(self) -> None:
        while self.peek().kind is TokenKind.SEPARATOR and self.peek().text == "\n":
            self.pos += 1

    def delimiters(self) -> None:
        """parser.y's `delimiters1`: one `;` or newline, then only newlines (a second `;` is a syntax error)."""
        if self.at_semicolon():
            self.pos += 1
        self.skip_newlines()

    # Grammar

    def program(self) -> Block:
        nodes: list[Node] = []
        while True:
            nodes.extend(self.command_list(top=True))
            if self.peek().kind is TokenKind.EOF:
                return tuple(nodes)
            self.diags.append(Diagnostic(self.file, self.peek().line, f"unexpected {self.describe()}; skipped"))
            self.pos += 1

    def command_list(self, *, top: bool = False) -> Block:
        """parser.y's `commands1`: newlines, then commands each ended by one delimiter and any newlines. An empty
        command (`;` where a command belongs: `a; ;b`, a line starting with `;`) is a syntax error of the enclosing
        construct, which GRUB then drops whole (grub-emu: `if true;then t4=4; ;fi` sets nothing)."""
        nodes: list[Node] = []
        delimited = False  # the previous command's own delimiter has not been read yet
        while True:
            if delimited:
                self.delimiters()
            else:
                self.skip_newlines()
            delimited = False
            if self.peek().kind is TokenKind.EOF or self.keyword() in CLOSERS:
                return tuple(nodes)
            if self.at_semicolon():
                error = self.error("unexpected ';' where a command belongs")
                if not top:
                    raise error
                self.diags.append(Diagnostic(self.file, error.line, f"syntax error: {error.message}; line skipped"))
                while self.peek().kind is not TokenKind.EOF and not (
                    self.peek().kind is TokenKind.SEPARATOR and self.peek().text == "\n"
                ):
                    self.pos += 1
                continue
            start = self.pos
            try:
                nodes.append(self.command())
                delimited = True
            except GrubSyntaxError as exc:
                self.diags.append(Diagnostic(self.file, exc.line, f"syntax error: {exc.message}; construct skipped"))
                if self.peek().kind is TokenKind.EOF or self.keyword() in CLOSERS:
                    if self.pos > start:
                        continue
                    return tuple(nodes)
                self.pos = max(self.pos, start + 1)
                while self.peek().kind not in (TokenKind.EOF, TokenKind.SEPARATOR) or self.peek().text == ";":
                    self.pos += 1

    def command(self) -> Node:
        kw = self.keyword()
        if kw in ("if", "while", "until", "for", "function"):
            self.depth += 1
            try:
                if self.depth > MAX_NESTING:
                    raise self.error(f"nesting deeper than {MAX_NESTING}")
                if kw == "if":
                    return self.if_()
                if kw == "for":
                    return self.for_()
                if kw == "function":
                    return self.function()
                return self.loop(until=kw == "until")
            finally:
                self.depth -= 1
        if kw == "{":
            raise self.error("unexpected '{'")
        return self.simple()

    def simple(self) -> Node:
        line = self.peek().line
        words: list[Word] = []
        while True:
            tok = self.peek()
            if tok.kind is TokenKind.ERROR:
                raise self.error(tok.text)
            if tok.kind is not TokenKind.WORD:
                break
            assert tok.word is not None
            plain = tok.word.plain
            if plain == "}":
                break  # the block closes right after the command (`{ echo hi }`): leave it to the block
            if plain == "{":
                if words and words[0].plain in MENU_COMMANDS:
                    return self.menu(words, line)
                raise self.error("unexpected '{'")
            words.append(tok.word)
            self.pos += 1
        if words and words[0].plain in MENU_COMMANDS:
            raise self.error(f"'{words[0].plain}' without a '{{' body")
        return Command(tuple(words), line)

    def block(self, construct: str, line: int) -> Block:
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise self.error(f"nesting deeper than {MAX_NESTING}")
            self.pos += 1  # the '{'
            body = self.command_list()
            self.expect("}", construct, line)
            return body
        finally:
            self.depth -= 1

    def menu(self, words: list[Word], line: int) -> MenuDef:
        kind = words[0].plain or ""
        body = self.block(kind, line)
        return MenuDef(kind, tuple(words[1:]), body, line)

    def if_(self) -> If:
        line = self.peek().line
        self.pos += 1
        branches: list[tuple[Block, Block]] = []
        while True:
            cond = self.command_list()
            self.expect("then", "if", line)
            body = self.command_list()
            branches.append((cond, body))
            kw = self.keyword()
            if kw == "elif":
                self.pos += 1
                continue
            orelse = None
            if kw == "else":
                self.pos += 1
                orelse = self.command_list()
            self.expect("fi", "if", line)
            return If(tuple(branches), orelse, line)

    def loop(self, *, until: bool) -> Loop:
        line = self.peek().line
        name = "until" if until else "while"
        self.pos += 1
        cond = self.command_list()
        self.expect("do", name, line)
        body = self.command_list()
        self.expect("done", name, line)
        return Loop(cond, body, until, line)

    def for_(self) -> For:
        line = self.peek().line
        self.pos += 1
        tok = self.peek()
        name = tok.word.plain if tok.kind is TokenKind.WORD and tok.word else None
        if not name or not (name[0].isalpha() or name[0] == "_") or not name.replace("_", "a").isalnum():
            raise self.error(f"'for' needs a variable name, found {self.describe()}")
        self.pos += 1
        items: list[Word] = []
        tok = self.peek()
        if tok.kind is TokenKind.WORD and tok.word is not None and tok.word.plain == "in":
            self.pos += 1
            while self.peek().kind is TokenKind.WORD:
                word = self.peek().word
                assert word is not None
                items.append(word)
                self.pos += 1
            if self.peek().kind is TokenKind.ERROR:
                raise self.error(self.peek().text)
        self.delimiters()
        self.expect("do", "for", line)
        body = self.command_list()
        self.expect("done", "for", line)
        return For(name, tuple(items), body, line)

    def function(self) -> FunctionDef:
        line = self.peek().line
        self.pos += 1
        tok = self.peek()
        name = tok.word.plain if tok.kind is TokenKind.WORD and tok.word else None
        if not name or name in CLOSERS or name == "{":
            raise self.error(f"'function' needs a name, found {self.describe()}")
        self.pos += 1
        self.skip_newlines()
        if self.keyword() != "{":
            raise self.error(f"expected '{{' after 'function {name}', found {self.describe()}")
        return FunctionDef(name, self.block("function", line), line)


def parse(text: str, file: str) -> Script:
    """Parse a whole script. Never raises: syntax errors become diagnostics and the rest still parses."""
    with _no_cycle_collection():
        parser = _Parser(tokenize(text), file)
        body = parser.program()
    return Script(file, body, tuple(parser.diags), len(text))


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Tokens and AST nodes are immutable and form no reference cycles, yet the cycle collector's passes over the
    growing token list made lexing a 2 MB config superlinear (measured: 2.8x the time for 2x the text; linear with
    the collector paused). Reference counting still frees everything. Another thread lexing at the same time may
    turn collection back on early; that only costs time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
