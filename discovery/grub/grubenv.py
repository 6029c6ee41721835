"""The GRUB environment block (`grubenv`): a 1 KiB file of `name=value` lines padded with `#`.

Follows grub-core/lib/envblk.c: the file starts with `# GRUB Environment Block`, values escape backslash and newline
with a backslash, and the rest of the block is `#` padding. Reading is lenient (any size, stray lines ignored);
`save_env` never writes (a boot menu must not modify the disks it scans).
"""

from __future__ import annotations

SIGNATURE = "# GRUB Environment Block"
BLOCK_SIZE = 1024


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
