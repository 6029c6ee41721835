"""Helpers for GRUB tests: build a filesystem tree from inline files and run the loader on it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from discovery.entry import LoadResult
from discovery.fs import Filesystem, Platform, StaticResolver
from discovery.grub import grubenv
from discovery.grub.loader import load
from discovery.loaders import LoadContext


def make_fs(root: Path, files: Mapping[str, str | bytes], name: str = "sda1", **ids: str) -> Filesystem:
    root.mkdir(parents=True, exist_ok=True)
    for path, content in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return Filesystem(root=root, name=name, **ids)


def kernel_files(*names: str) -> dict[str, str | bytes]:
    return dict.fromkeys(names, "x")


def env_block(**variables: str) -> bytes:
    return grubenv.render(dict(variables))


def run(fs: Filesystem, *others: Filesystem, firmware: str = "pc") -> LoadResult:
    ctx = LoadContext(resolver=StaticResolver((fs, *others)), platform=Platform(firmware=firmware, cpu="x86_64"))
    return load(fs, ctx)


def titles(result: LoadResult) -> list[str]:
    return [">".join((*e.submenu, e.title)) for e in result.entries]


def default_title(result: LoadResult) -> str | None:
    marked = [">".join((*e.submenu, e.title)) for e in result.entries if e.default]
    assert len(marked) <= 1, marked
    return marked[0] if marked else None
