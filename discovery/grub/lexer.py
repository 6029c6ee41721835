"""GRUB script lexer: words made of literal and variable parts, separators, comments and quoting.

Follows grub-core/script/yylex.l of GRUB 2.06: single quotes keep everything literally, double quotes expand
variables and honour backslash before `\\`, `"`, `$` and newline, an unquoted backslash quotes the next character,
backslash-newline continues the line, `#` at the start of a word starts a comment, `;` and newline separate commands.
An unquoted `{` or `}` is always a word of its own (block delimiters), as in GRUB's lexer. Lexing never raises: an
unterminated quote becomes an ERROR token and lexing resumes on the next line, so the parser skips just that command.

Lexing is linear in the text (issue 9 item 7: an unterminated `${` repeated over 1.6 MB took 18 s): searches ahead
for a closing `}`, `'` or newline are remembered (`_next`), and a double-quoted string that ran to the end of the
text marks the positions it scanned, so a later quote whose scan reaches one of them fails at once instead of
scanning to the end again (from the same position the scan is the same, so it would fail the same way). Every
character is then scanned a bounded number of times.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_SPECIAL_VARS = frozenset("?#@*")
_BLANKS = " \t\r"
_WORD_END = frozenset(" \t\r\n;")
_PLAIN = re.compile(r"[^ \t\r\n;{}\\'\"$]+")


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


_BRACE_PARTS = {c: Part(PartKind.LITERAL, c) for c in "{}"}


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
        self.found: dict[str, int] = {}  # char -> its next position at or after the last search (-1: none left)
        # Per position: 1 when a double-quoted scan going on from there reaches the end unclosed, 2 while the current
        # scan is there (it becomes 1 if that scan fails).
        self.dead = bytearray(len(text) + 1)
        self.rescanned = 0  # characters looked at again after a rewind or by a search that did not advance

    def _next(self, char: str, start: int) -> int:
        """`text.find(char, start)` in amortised constant time: searches start at increasing positions."""
        pos = self.found.get(char)
        if pos is None or (0 <= pos < start):
            pos = self.text.find(char, start)
            self.rescanned += (len(self.text) if pos < 0 else pos) - start
            self.found[char] = pos
        return pos

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
                end = self._next("\n", self.i)
                self.i = n if end < 0 else end
            elif c in "{}":
                line = self.line  # a word of its own (block delimiter); its one part is shared
                self.tokens.append(Token(TokenKind.WORD, line, Word((_BRACE_PARTS[c],), line)))
                self.i += 1
            else:
                self._word()
        self.tokens.append(Token(TokenKind.EOF, self.line))
        return self.tokens

    def _error(self, message: str, line: int) -> None:
        self.tokens.append(Token(TokenKind.ERROR, line, text=message))
        end = self._next("\n", self.i)
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
                end = self._next("'", self.i + 1)
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
                # A run of plain characters at once: most of any config is plain words.
                end = _PLAIN.match(text, self.i).end()  # type: ignore[union-attr]  # c itself is plain
                buf.append(text[self.i : end])
                self.i = end
        flush()
        self.tokens.append(Token(TokenKind.WORD, start_line, Word(tuple(parts), start_line)))

    def _double(self, parts: list[Part]) -> bool:
        text, n = self.text, len(self.text)
        open_line, open_i = self.line, self.i
        self.i += 1
        buf: list[str] = []
        start = len(parts)
        dead = self.dead
        while self.i < n:
            if dead[self.i] == 1:
                break  # an earlier unclosed scan went on from here: this one cannot close either
            dead[self.i] = 2
            c = text[self.i]
            if c == '"':
                dead[open_i + 1 : self.i + 1] = dead[open_i + 1 : self.i + 1].replace(b"\x02", b"\x00")
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
        dead[open_i + 1 : self.i + 1] = dead[open_i + 1 : self.i + 1].replace(b"\x02", b"\x01")
        self.rescanned += self.i - open_i
        self.i, self.line = open_i, open_line
        self._error("unterminated double quote", open_line)
        return False

    def _variable(self, *, quoted: bool) -> Part:
        text, n = self.text, len(self.text)
        i = self.i + 1
        if i < n and text[i] == "{":
            end = self._next("}", i + 1)
            newline = self._next("\n", i + 1)
            name = text[i + 1 : end] if end >= 0 and not (0 <= newline < end) else ""
            if not name:
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


def rescanned(text: str) -> int:
    """How many characters lexing `text` looked at more than once (tests: it stays within a constant of the size)."""
    lexer = _Lexer(text)
    lexer.run()
    return lexer.rescanned
