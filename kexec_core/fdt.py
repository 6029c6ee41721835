"""Flattened devicetree (DTB) reader and writer: enough to read a tree, change /chosen and write it back.

Spec: Devicetree Specification v0.4, chapter 5 "Flattened Devicetree (DTB) Format": a 40-byte big-endian header
(magic 0xd00dfeed, totalsize, off_dt_struct, off_dt_strings, off_mem_rsvmap, version, last_comp_version,
boot_cpuid_phys, size_dt_strings, size_dt_struct), the memory reservation block (pairs of be64 address and size,
ended by 0/0, 8-byte aligned), the structure block (FDT_BEGIN_NODE name, FDT_PROP len nameoff value, FDT_END_NODE,
FDT_NOP, FDT_END; every token 4-byte aligned) and the strings block. Written trees are version 17, last compatible 16,
blocks in the order dtc writes them (reservations, structure, strings).

Why not a PyPI library: `fdt` 0.3.3 (molejar/pyFDT, last release 2022) shares one memory-reservation list between
all its FDT objects (a mutable default argument), so the second tree parsed in a process is written back with the
first tree's /memreserve/ entries added: 460 of the 577 Debian arm64 dtbs came back different from dtc's reading in a
loop. `pylibfdt` is a C extension (built with swig), which the payload would need compiled for each architecture.
This module is small and typed; all 577 dtbs of the Debian arm64 kernel package come back from it as dtc reads them
(tests/kexec_core/test_kexec_arm64.py checks every fourth on each run).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from kexec_core.errors import ImageError

MAGIC = 0xD00DFEED
HEADER = struct.Struct(">10I")
BEGIN_NODE, END_NODE, PROP, NOP, END = 1, 2, 3, 4, 9
VERSION, LAST_COMP_VERSION = 17, 16
MAX_SIZE = 64 << 20  # larger than any real tree (booting.rst caps an arm64 dtb at 2 MiB)
MAX_DEPTH = 64  # dtc's and libfdt's trees are far shallower; bounds the recursion in `to_bytes`
MAX_RESERVATIONS = 1024


@dataclass(frozen=True)
class Node:
    """A node: its name (unit address included), properties in file order, children in file order."""

    name: str
    props: tuple[tuple[str, bytes], ...] = ()
    children: tuple[Node, ...] = ()

    def prop(self, name: str) -> bytes | None:
        for key, value in self.props:
            if key == name:
                return value
        return None

    def child(self, name: str) -> Node | None:
        """The child called `name`, or `name@...` when `name` has no unit address."""
        for c in self.children:
            if c.name == name or ("@" not in name and c.name.split("@", 1)[0] == name):
                return c
        return None

    def with_props(self, changes: Mapping[str, bytes | None]) -> Node:
        """This node with properties set (appended when new, kept in place when present) or removed (None)."""
        props = [(k, changes.get(k, v)) for k, v in self.props]
        have = {k for k, _ in self.props}
        props += [(k, v) for k, v in changes.items() if k not in have]
        return replace(self, props=tuple((k, v) for k, v in props if v is not None))


@dataclass(frozen=True)
class Fdt:
    root: Node
    reservations: tuple[tuple[int, int], ...] = ()  # /memreserve/ (address, size)
    boot_cpuid_phys: int = 0
    source: Path = field(default=Path("<dtb>"), compare=False)

    def node(self, path: str) -> Node | None:
        node: Node | None = self.root
        for part in [p for p in path.split("/") if p]:
            node = node.child(part) if node else None
        return node

    def prop(self, path: str, name: str) -> bytes | None:
        node = self.node(path)
        return node.prop(name) if node else None

    def with_props(self, path: str, changes: Mapping[str, bytes | None]) -> Fdt:
        """The tree with `changes` made to the node at `path` (created, with its parents, if missing)."""
        return replace(self, root=_edit(self.root, [p for p in path.split("/") if p], changes))

    def cells(self, path: str) -> tuple[int, int]:
        """#address-cells and #size-cells that children of `path` use (spec 2.3.5: defaults 2 and 1)."""
        node = self.node(path)
        a = node.prop("#address-cells") if node else None
        s = node.prop("#size-cells") if node else None
        return (be_int(a) if a else 2, be_int(s) if s else 1)

    def regs(self, path: str, node: Node) -> list[tuple[int, int]]:
        """`reg` of `node` (a child of `path`) as (address, size) pairs, in the parent's cell sizes."""
        value = node.prop("reg")
        if not value:
            return []
        ac, sc = self.cells(path)
        step = 4 * (ac + sc)
        if not step or len(value) % step:
            raise ImageError(self.source, f"{path.rstrip('/')}/{node.name}: reg is {len(value)} bytes, not n*{step}")
        out = []
        for i in range(0, len(value), step):
            out.append((be_int(value[i : i + 4 * ac]), be_int(value[i + 4 * ac : i + step])))
        return out

    def memory(self) -> list[tuple[int, int]]:
        """[start, end) of RAM from the /memory nodes (device_type "memory", spec 3.4)."""
        out = []
        for node in self.root.children:
            if node.prop("device_type") == b"memory\0" or node.name.split("@")[0] == "memory":
                out += [(a, a + s) for a, s in self.regs("/", node) if s]
        return sorted(out)

    def reserved(self) -> list[tuple[int, int]]:
        """[start, end) the new kernel keeps for firmware: /memreserve/ entries and /reserved-memory children."""
        out = [(a, a + s) for a, s in self.reservations if s]
        rm = self.node("/reserved-memory")
        for node in rm.children if rm else ():
            out += [(a, a + s) for a, s in self.regs("/reserved-memory", node) if s]
        return sorted(out)

    def to_bytes(self) -> bytes:
        strings = bytearray()
        offsets: dict[str, int] = {}
        struct_block = bytearray()
        for token in _tokens(self.root, 0, self.source):
            kind, name, value = token
            if kind == BEGIN_NODE:
                struct_block += struct.pack(">I", BEGIN_NODE) + _padded(name.encode() + b"\0")
            elif kind == PROP:
                if name not in offsets:
                    offsets[name] = len(strings)
                    strings += name.encode() + b"\0"
                struct_block += struct.pack(">III", PROP, len(value), offsets[name]) + _padded(value)
            else:
                struct_block += struct.pack(">I", END_NODE)
        struct_block += struct.pack(">I", END)
        rsv = b"".join(struct.pack(">QQ", a, s) for a, s in self.reservations) + bytes(16)
        off_rsv = 40  # the header is 40 bytes: the reservation block is 8-aligned right after it
        off_struct = off_rsv + len(rsv)
        off_strings = off_struct + len(struct_block)
        total = off_strings + len(strings)
        header = HEADER.pack(
            MAGIC,
            total,
            off_struct,
            off_strings,
            off_rsv,
            VERSION,
            LAST_COMP_VERSION,
            self.boot_cpuid_phys,
            len(strings),
            len(struct_block),
        )
        return header + rsv + bytes(struct_block) + bytes(strings)


def be_int(value: bytes) -> int:
    return int.from_bytes(value, "big")


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def u64(value: int) -> bytes:
    return struct.pack(">Q", value)


def string(value: str) -> bytes:
    return value.encode() + b"\0"


def is_fdt(head: bytes) -> bool:
    return len(head) >= 4 and be_int(head[:4]) == MAGIC


def _padded(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def _edit(node: Node, parts: list[str], changes: Mapping[str, bytes | None]) -> Node:
    if not parts:
        return node.with_props(changes)
    target = node.child(parts[0])
    if target is None:
        new = _edit(Node(parts[0]), parts[1:], changes)
        return replace(node, children=(*node.children, new))
    children = tuple(_edit(c, parts[1:], changes) if c is target else c for c in node.children)
    return replace(node, children=children)


def _tokens(node: Node, depth: int, source: Path) -> Iterator[tuple[int, str, bytes]]:
    if depth > MAX_DEPTH:
        raise ImageError(source, f"devicetree nested deeper than {MAX_DEPTH} nodes")
    yield BEGIN_NODE, node.name, b""
    for name, value in node.props:
        yield PROP, name, value
    for child in node.children:
        yield from _tokens(child, depth + 1, source)
    yield END_NODE, node.name, b""


def parse(path: Path, data: bytes) -> Fdt:
    """Read a DTB. ImageError names the file and the offset of what is wrong."""

    def bad(problem: str) -> ImageError:
        return ImageError(path, f"not a valid devicetree blob: {problem}")

    if len(data) < HEADER.size:
        raise bad(f"{len(data)} bytes, shorter than the 40-byte header")
    (magic, total, off_struct, off_strings, off_rsv, version, last_comp, cpuid, size_strings, size_struct) = (
        HEADER.unpack_from(data)
    )
    if magic != MAGIC:
        raise bad(f"magic {magic:#010x}, expected {MAGIC:#010x}")
    if last_comp > VERSION or version < LAST_COMP_VERSION:
        raise bad(f"version {version} (last compatible {last_comp}); this reader takes 16 and 17")
    if total > len(data) or total > MAX_SIZE:
        raise bad(f"totalsize {total} but the file has {len(data)} bytes (at most {MAX_SIZE} accepted)")
    if off_struct + size_struct > total or off_strings + size_strings > total or off_rsv > total:
        raise bad("a block lies past totalsize")
    if off_struct % 4 or off_rsv % 8:
        raise bad("misaligned structure or reservation block")
    reservations: list[tuple[int, int]] = []
    pos = off_rsv
    while True:
        if pos + 16 > total or len(reservations) > MAX_RESERVATIONS:
            raise bad(f"memory reservation block not terminated (offset {pos:#x})")
        addr, size = struct.unpack_from(">QQ", data, pos)
        pos += 16
        if addr == 0 and size == 0:
            break
        reservations.append((addr, size))
    strings = data[off_strings : off_strings + size_strings]
    end = off_struct + size_struct

    def word(at: int) -> int:
        if at + 4 > end:
            raise bad(f"structure block ends inside a token at offset {at:#x}")
        value: int = struct.unpack_from(">I", data, at)[0]
        return value

    def name_at(at: int) -> tuple[str, int]:
        stop = data.find(b"\0", at, end)
        if stop < 0:
            raise bad(f"unterminated node name at offset {at:#x}")
        return data[at:stop].decode("utf-8", "replace"), stop + 1

    # Iterative, with an explicit stack of (name, props, children) so depth is bounded without recursion.
    stack: list[tuple[str, list[tuple[str, bytes]], list[Node]]] = []
    root: Node | None = None
    pos = off_struct
    while root is None:
        token = word(pos)
        pos += 4
        if token == BEGIN_NODE:
            name, pos = name_at(pos)
            pos += -pos % 4
            if len(stack) >= MAX_DEPTH:
                raise bad(f"nodes nested deeper than {MAX_DEPTH} at offset {pos:#x}")
            stack.append((name, [], []))
        elif token == PROP:
            if not stack:
                raise bad(f"property outside any node at offset {pos - 4:#x}")
            length, nameoff = word(pos), word(pos + 4)
            pos += 8
            if pos + length > end or nameoff >= len(strings):
                raise bad(f"property at offset {pos - 12:#x} runs past its block")
            stop = strings.find(b"\0", nameoff)
            if stop < 0:
                raise bad(f"unterminated property name at strings offset {nameoff}")
            stack[-1][1].append((strings[nameoff:stop].decode("utf-8", "replace"), bytes(data[pos : pos + length])))
            pos += length + (-length % 4)
        elif token == END_NODE:
            if not stack:
                raise bad(f"FDT_END_NODE without a node at offset {pos - 4:#x}")
            name, props, children = stack.pop()
            node = Node(name, tuple(props), tuple(children))
            if stack:
                stack[-1][2].append(node)
            else:
                root = node
        elif token == NOP:
            continue
        elif token == END:
            raise bad(f"FDT_END at offset {pos - 4:#x} inside an open node")
        else:
            raise bad(f"unknown token {token:#x} at offset {pos - 4:#x}")
    return Fdt(root=root, reservations=tuple(reservations), boot_cpuid_phys=cpuid, source=path)


def read(path: Path) -> Fdt:
    """Parse the DTB file at `path` (a regular file; FIFOs and devices refused like kernels are)."""
    from kexec_core.fileio import open_regular

    with open_regular(path, "a devicetree blob") as f:
        try:
            data = f.read(MAX_SIZE + 1)
        except OSError as err:
            raise ImageError(path, f"cannot read: {err.strerror}") from None
    return parse(path, data)
