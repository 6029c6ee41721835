"""Boot Loader Specification Type #2 entries: unified kernel images in `/EFI/Linux/*.efi` (UAPI.1, "Type #2").

Follows systemd-boot's reading of them (src/boot/boot.c, `config_load_type2_entries` and `boot_entry_add_type2`):
- every regular `*.efi` file directly in `/EFI/Linux` (case-insensitive, as on vfat), except names starting with `.`
  or `auto-`, is a candidate; one without an `.osrel` section, or whose os-release names nothing, is not an entry;
- title, version and sort key come from the embedded os-release as `bootspec_pick_name_version_sort_key` picks them:
  title = PRETTY_NAME, else IMAGE_ID, NAME, ID; version = IMAGE_VERSION, else VERSION, VERSION_ID, BUILD_ID;
  sort key = IMAGE_ID, else ID;
- the id is the lowercased file name with the boot-counting suffix removed (`arch+3-1.efi` -> `arch.efi`), and the
  suffix counts tries as for Type #1 entries;
- the `.cmdline` section is the command line shown (and, with no other given, the one the stub would use).

The entries are `BlsEntry` values so that Type #1 and Type #2 entries are ordered together, as systemd-boot does.
Multi-profile UKIs (`.profile` sections, systemd 257) are read as their base profile only.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from discovery.bls import TYPE2_DIR, BlsEntry, efi_architecture, split_filename
from discovery.entry import Diagnostic, Severity
from discovery.fs import Filesystem
from kexec_core import pe
from kexec_core.errors import ImageError

SUFFIX = ".efi"
# The PE headers and section table of a UKI sit in its first pages; 64 KiB covers any sane section count.
HEAD_BYTES = 65536


def os_release(text: str) -> dict[str, str]:
    """os-release(5) `KEY=value` lines; values unquoted as a shell would for the simple quoting os-release allows."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def pick_name_version_sort_key(osrel: dict[str, str]) -> tuple[str | None, str | None, str | None]:
    """(title, version, sort key) from os-release fields, preferring precise over vague (see the module docstring)."""

    def first(*keys: str) -> str | None:
        return next((osrel[k] for k in keys if osrel.get(k)), None)

    return (
        first("PRETTY_NAME", "IMAGE_ID", "NAME", "ID"),
        first("IMAGE_VERSION", "VERSION", "VERSION_ID", "BUILD_ID"),
        first("IMAGE_ID", "ID"),
    )


def read_uki(fs: Filesystem, path: str) -> tuple[BlsEntry | None, list[Diagnostic]]:
    """The Type #2 entry `path` of `fs` describes, or None with the reason it is not one."""
    host = fs.host_path(path)
    if host is None or not host.is_file():
        return None, []
    try:
        with host.open("rb") as f:
            head = f.read(HEAD_BYTES)
        info = pe.parse(host, head, host.stat().st_size)
    except ImageError as exc:
        return None, [Diagnostic(path, 0, f"not a unified kernel image: {exc.problem}", Severity.WARNING)]
    except OSError as exc:
        return None, [Diagnostic(path, 0, f"cannot read: {exc.strerror or exc}", Severity.ERROR)]
    if not info.is_uki:
        return None, [Diagnostic(path, 0, "EFI binary without a .linux section; not a Linux boot entry, not listed")]
    osrel = info.text(".osrel")
    if osrel is None:
        return None, [Diagnostic(path, 0, "unified kernel image without an .osrel section; not listed")]
    title, version, sort_key = pick_name_version_sort_key(os_release(osrel))
    if title is None:
        return None, [Diagnostic(path, 0, "the .osrel section names no PRETTY_NAME, IMAGE_ID, NAME or ID; not listed")]
    name = PurePosixPath(path).name
    stem, count = split_filename(name[: -len(SUFFIX)])
    # As systemd's stub passes it (mangle_stub_cmdline): control characters and spaces at either end dropped (a
    # trailing newline), the rest kept as written; real systemd-boot 252 showed two spaces reaching the kernel.
    cmdline = (info.text(".cmdline") or "").strip("".join(map(chr, range(0x21))) + "\x7f")
    entry = BlsEntry(
        path=path,
        stem=stem,
        boot_count=count,
        title=title,
        version=version,
        sort_key=sort_key,
        linux=path,
        options=(cmdline,) if cmdline else (),
        # The image runs only on its own CPU: its PE machine, as an EFI architecture name, filters like Type #1's.
        architecture=efi_architecture(str(info.arch)),
        uki=True,
    )
    return entry, []


def read_type2(fs: Filesystem) -> tuple[list[BlsEntry], list[Diagnostic]]:
    """Every Type #2 entry in `/EFI/Linux` of `fs`, in file-name order, with the reasons others are not listed."""
    directory = fs.find_ci(TYPE2_DIR)
    if directory is None or not fs.is_dir(directory):
        return [], []
    entries: list[BlsEntry] = []
    diags: list[Diagnostic] = []
    for name in fs.listdir(directory):
        if name.startswith(".") or name.lower().startswith("auto-") or not name.lower().endswith(SUFFIX):
            continue
        path = str(PurePosixPath(directory, name))
        if not fs.is_file(path):
            continue
        entry, problems = read_uki(fs, path)
        diags.extend(problems)
        if entry is not None:
            entries.append(entry)
    return entries, diags
