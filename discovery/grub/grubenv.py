"""The GRUB environment block (`grubenv`): a 1 KiB file of `name=value` lines padded with `#`.

Follows grub-core/lib/envblk.c: the file starts with `# GRUB Environment Block`, values escape backslash and newline
with a backslash, and the rest of the block is `#` padding. Reading is lenient (any size, stray lines ignored);
scanning never writes (a boot menu must not modify the disks it scans). `edit()` is envblk.c's set/delete on a
block of fixed size, for discovery.loaderwrites when an entry is booted: the block keeps its size, every line it
does not touch stays as it was, and a change that does not fit is refused as GRUB refuses it.
"""

from __future__ import annotations

from collections.abc import Iterable

from discovery.entry import EnvSave

SIGNATURE = "# GRUB Environment Block"
BLOCK_SIZE = 1024
_SIG = (SIGNATURE + "\n").encode()


class EnvBlockError(ValueError):
    """The block is not a valid environment block, or the change does not fit (GRUB's own error texts)."""


def _split(block: bytes) -> tuple[list[bytes], int]:
    """The logical lines (each ending in a newline) between the signature and the `#` padding, and the block size.
    Raises EnvBlockError where envblk.c finds the block invalid or broken."""
    if not block.startswith(_SIG):
        raise EnvBlockError("invalid environment block")
    end = len(block)
    while end > len(_SIG) and block[end - 1 : end] == b"#":
        end -= 1
    if block[end - 1 : end] != b"\n":
        raise EnvBlockError("environment block is broken: no newline before its padding")
    lines: list[bytes] = []
    start = i = len(_SIG)
    while i < end:
        c = block[i : i + 1]
        if c == b"\\":
            i += 2
            continue
        i += 1
        if c == b"\n":
            lines.append(block[start:i])
            start = i
    return lines, len(block)


def _escape(value: str) -> bytes:
    return value.replace("\\", "\\\\").replace("\n", "\\\n").encode("utf-8", errors="surrogateescape")


def edit(block: bytes, saves: Iterable[EnvSave]) -> bytes:
    """`block` after the saves, in order: a variable set in place (or appended before the padding), an unset one
    deleted; the result has the size of `block`. Raises EnvBlockError("environment block too small") like GRUB."""
    lines, size = _split(block)
    for save in saves:
        key = save.name.encode("utf-8", errors="surrogateescape") + b"="
        index = next((n for n, line in enumerate(lines) if line.startswith(key)), None)
        if save.value is None:
            if index is not None:
                del lines[index]
            continue
        line = key + _escape(save.value) + b"\n"
        if index is None:
            lines.append(line)
        else:
            lines[index] = line
    body = _SIG + b"".join(lines)
    if len(body) > size:
        raise EnvBlockError("environment block too small")
    return body + b"#" * (size - len(body))


def parse(data: bytes) -> dict[str, str]:
    """The variables of a grubenv block, in file order. Never raises."""
    text = data.decode("utf-8", errors="surrogateescape")
    out: dict[str, str] = {}
    lines = _logical_lines(text)
    for line in lines:
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        out[name] = value
    return out


def _logical_lines(text: str) -> list[str]:
    # A backslash escapes the next character, including a newline that belongs to the value.
    lines: list[str] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            buf.append(text[i + 1])
            i += 2
            continue
        if c == "\n":
            lines.append("".join(buf))
            buf.clear()
        else:
            buf.append(c)
        i += 1
    if buf:
        lines.append("".join(buf))
    return lines


def render(variables: dict[str, str]) -> bytes:
    """A grubenv block holding `variables` (for tests and tools; the loader never writes)."""
    body = SIGNATURE + "\n"
    for name, value in variables.items():
        body += name + "=" + value.replace("\\", "\\\\").replace("\n", "\\\n") + "\n"
    raw = body.encode()
    return raw + b"#" * max(0, BLOCK_SIZE - len(raw))
