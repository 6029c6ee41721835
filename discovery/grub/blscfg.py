"""GRUB's `blscfg` command as Fedora's patched GRUB implements it (RHEL, CentOS Stream, Fedora).

The Boot Loader Spec entries in `$blsdir` (default `/loader/entries`, else `/boot/loader/entries`) on the device
`$boot` (else `$root`) become menu entries at the point where `blscfg` runs, newest first by rpm version comparison.
Like the patch, each entry becomes GRUB script (`linux PATH OPTIONS`, `initrd FILES...`) evaluated when the entry is
booted, so `$kernelopts`, `$tuned_params` and any other variable in `options` take their values from the GRUB
environment at that moment (grubenv loaded by the config, else the config's fallback `set`). The entry id is the
file stem, which is what `saved_entry` names. Entry files are parsed by `discovery.bls`.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from discovery.bls import BlsEntry, blscfg_order, read_entries
from discovery.fs import Filesystem
from discovery.grub.evaluator import MenuItem
from discovery.grub.parser import parse

if TYPE_CHECKING:
    from discovery.grub.evaluator import Interpreter

DEFAULT_DIRS = ("/loader/entries", "/boot/loader/entries")


def _path(fs: Filesystem, directory: str, path: str) -> str:
    # Entries under /boot/loader/entries of a root filesystem name kernels relative to /boot when /boot was a
    # separate partition at install time; use the form under which the file exists (as written first).
    path = "/" + path.lstrip("/")
    try:
        if directory.startswith("/boot/") and not fs.exists(path) and fs.exists("/boot" + path):
            return "/boot" + path
    except OSError:
        pass  # the path as written: `linux` reports the error on this entry
    return path


def body_text(fs: Filesystem, directory: str, entry: BlsEntry) -> str:
    """The GRUB script Fedora's blscfg generates for an entry (options inserted verbatim, expanded at boot)."""
    assert entry.linux is not None
    device = f"({fs.name})"
    commands = [(entry.line_of("linux"), f"linux {device}{_path(fs, directory, entry.linux)} {entry.cmdline}".rstrip())]
    if entry.initrds:
        # `initrd /initramfs.img $tuned_initrd`: a variable is left for boot time (it may expand to nothing).
        files = [
            i if i.startswith("$") else f"{device}{_path(fs, directory, i)}"
            for initrd in entry.initrds
            for i in initrd.split()
        ]
        commands.append((entry.line_of("initrd"), "initrd " + " ".join(files)))
    if entry.devicetree:
        commands.append((entry.line_of("devicetree"), f"devicetree {device}{_path(fs, directory, entry.devicetree)}"))
    # Each command on the line of the key it comes from (when the keys are in this order), so a diagnostic of the
    # body names the entry file's own line.
    lines: list[str] = []
    for line, command in commands:
        lines.extend([""] * (line - 1 - len(lines)))
        lines.append(command)
    return "\n".join(lines) + "\n"


def expand(it: Interpreter, args: list[str]) -> int:
    env = it.scope.env
    device = env.get("boot") or env.get("root")
    fs = it.devices.get(device.strip("()"), it.scope.fs)
    explicit = env.get("blsdir")
    candidates = (explicit,) if explicit else DEFAULT_DIRS
    directory = next((d for d in candidates if fs.is_dir(d)), None)
    if directory is None:
        it.warn(f"blscfg: no BLS entries directory ({', '.join(candidates)}) on {fs.name}")
        return 1
    entries, diags = read_entries(fs, directory, it.budget)  # the config's one budget
    it.sink.extend(diags)
    for entry in blscfg_order(entries):
        if entry.linux is None:
            it.warn(f"blscfg: {entry.path} has no 'linux' line; skipped")
            continue
        script = parse(body_text(fs, directory, entry), entry.path)
        it.sink.extend(script.diagnostics)
        title = entry.title or entry.stem
        it.scope.menu.append(
            MenuItem(
                title=title,
                args=(title,),
                body=script.body,
                file=entry.path,
                fs=fs,
                line=entry.line_of("linux"),
                id=entry.stem,
            )
        )
        it.consumed.append(str(PurePosixPath(entry.path)))
    return 0
