"""Errors of the GRUB interpreter. They never leave `loader.load()`; they become diagnostics with file and line."""

from __future__ import annotations


class GrubError(Exception):
    """Base of every error the interpreter raises on purpose."""

    def __init__(self, message: str, file: str = "", line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file else (f"line {self.line}: " if self.line else "")
        return f"{where}{self.message}"


class GrubSyntaxError(GrubError):
    """The script cannot be parsed here; the parser skips the smallest enclosing construct."""


class GrubLimitError(GrubError):
    """An evaluation bound (steps, loop iterations, call or source depth) was hit; evaluation of the file stops."""


class GrubCommandError(GrubError):
    """A command failed (bad arguments, missing file): GRUB prints it, sets a non-zero status and goes on."""
