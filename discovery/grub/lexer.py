"""GRUB script lexer: words made of literal and variable parts, separators, comments and quoting.

Follows grub-core/script/yylex.l of GRUB 2.06: single quotes keep everything literally, double quotes expand
variables and honour backslash before `\\`, `"`, `$` and newline, an unquoted backslash quotes the next character,
backslash-newline continues the line, `#` at the start of a word starts a comment, `;` and newline separate commands.
An unquoted `{` or `}` is always a word of its own (block delimiters), as in GRUB's lexer. Lexing never raises: an
unterminated quote becomes an ERROR token and lexing resumes on the next line, so the parser skips just that command.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_SPECIAL_VARS = frozenset("?#@*")
_BLANKS = " \t\r"
_WORD_END = frozenset(" \t\r\n;")


class PartKind(enum.StrEnum):
    LITERAL = "literal"
    VARIABLE = "variable"


@dataclass(frozen=True)
class Part:
    """A piece of a word: literal text or a variable reference. `quoted` parts are never split or keywords."""

    kind: PartKind
    text: str
    quoted: bool = False


@dataclass(frozen=True)
class Word:
    parts: tuple[Part, ...]
    line: int

    @property
    def plain(self) -> str | None:
        """The text when the word is entirely unquoted literal (keywords, braces, assignments), else None."""
        if all(p.kind is PartKind.LITERAL and not p.quoted for p in self.parts):
            return "".join(p.text for p in self.parts)
        return None

    def source(self) -> str:
        """A readable rendering for diagnostics."""
        out = []
        for p in self.parts:
            out.append("${" + p.text + "}" if p.kind is PartKind.VARIABLE else p.text)
        return "".join(out)


class TokenKind(enum.StrEnum):
    WORD = "word"
    SEPARATOR = "separator"
    ERROR = "error"
    EOF = "eof"


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    line: int
    word: Word | None = None
    text: str = ""


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line = 1
        self.tokens: list[Token] = []

    def run(self) -> list[Token]:
        text, n = self.text, len(self.text)
        while self.i < n:
            c = text[self.i]
            if c in _BLANKS:
                self.i += 1
            elif c == "\\" and text.startswith("\n", self.i + 1):
                self.i += 2
                self.line += 1
            elif c in "\n;":
                self.tokens.append(Token(TokenKind.SEPARATOR, self.line, text=c))
                self.line += c == "\n"
                self.i += 1
            elif c == "#":
                end = text.find("\n", self.i)
                self.i = n if end < 0 else end
            else:
                self._word()
        self.tokens.append(Token(TokenKind.EOF, self.line))
        return self.tokens

    def _error(self, message: str, line: int) -> None:
        self.tokens.append(Token(TokenKind.ERROR, line, text=message))
        end = self.text.find("\n", self.i)
        if end < 0:
            self.i = len(self.text)
        else:
            self.line += self.text.count("\n", self.i, end)
            self.i = end

    def _word(self) -> None:
        text, n = self.text, len(self.text)
        start_line = self.line
        parts: list[Part] = []
        buf: list[str] = []

        def flush() -> None:
            if buf:
                parts.append(Part(PartKind.LITERAL, "".join(buf)))
                buf.clear()

        c = text[self.i]
        if c in "{}":
            self.i += 1
            self.tokens.append(Token(TokenKind.WORD, start_line, Word((Part(PartKind.LITERAL, c),), start_line)))
            return
        while self.i < n:
            c = text[self.i]
            if c in _WORD_END:
                break
            if c in "{}":
                break  # unquoted braces are always tokens of their own: `submenu "x"{`, `{linux /k}`
            if c == "\\":
                if self.i + 1 >= n:
                    buf.append(c)
                    self.i += 1
                elif text[self.i + 1] == "\n":
                    self.i += 2
                    self.line += 1
                else:
                    flush()
                    parts.append(Part(PartKind.LITERAL, text[self.i + 1], quoted=True))
                    self.i += 2
            elif c == "'":
                end = text.find("'", self.i + 1)
                if end < 0:
                    self._error("unterminated single quote", self.line)
                    return
                flush()
                body = text[self.i + 1 : end]
                parts.append(Part(PartKind.LITERAL, body, quoted=True))
                self.line += body.count("\n")
                self.i = end + 1
            elif c == '"':
                flush()
                if not self._double(parts):
                    return
            elif c == "$":
                flush()
                parts.append(self._variable(quoted=False))
            else:
                buf.append(c)
                self.i += 1
        flush()
        self.tokens.append(Token(TokenKind.WORD, start_line, Word(tuple(parts), start_line)))

    def _double(self, parts: list[Part]) -> bool:
        text, n = self.text, len(self.text)
        open_line, open_i = self.line, self.i
        self.i += 1
        buf: list[str] = []
        start = len(parts)
        while self.i < n:
            c = text[self.i]
            if c == '"':
                self.i += 1
                if buf or len(parts) == start:
                    parts.append(Part(PartKind.LITERAL, "".join(buf), quoted=True))
                return True
            if c == "\\" and self.i + 1 < n and text[self.i + 1] in '\\"$\n':
                nxt = text[self.i + 1]
                if nxt == "\n":
                    self.line += 1
                else:
                    buf.append(nxt)
                self.i += 2
            elif c == "$":
                if buf:
                    parts.append(Part(PartKind.LITERAL, "".join(buf), quoted=True))
                    buf.clear()
                parts.append(self._variable(quoted=True))
            else:
                if c == "\n":
                    self.line += 1
                buf.append(c)
                self.i += 1
        # GRUB would swallow the rest of the file; resuming on the next line keeps the later entries.
        self.i, self.line = open_i, open_line
        self._error("unterminated double quote", open_line)
        return False

    def _variable(self, *, quoted: bool) -> Part:
        text, n = self.text, len(self.text)
        i = self.i + 1
        if i < n and text[i] == "{":
            end = text.find("}", i + 1)
            name = text[i + 1 : end] if end >= 0 else ""
            if end < 0 or not name or "\n" in name:
                self.i = i
                return Part(PartKind.LITERAL, "$", quoted=True)
            self.i = end + 1
            return Part(PartKind.VARIABLE, name, quoted)
        if i < n and text[i] in _SPECIAL_VARS:
            self.i = i + 1
            return Part(PartKind.VARIABLE, text[i], quoted)
        j = i
        if j < n and text[j].isdigit():
            while j < n and text[j].isdigit():
                j += 1
        else:
            while j < n and text[j] in _NAME_CHARS:
                j += 1
        if j == i:
            self.i = i
            return Part(PartKind.LITERAL, "$", quoted=True)
        self.i = j
        return Part(PartKind.VARIABLE, text[i:j], quoted)


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, always ending with EOF. Never raises."""
    return _Lexer(text).run()
