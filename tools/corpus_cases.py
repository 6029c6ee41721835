"""The shared real-world corpus (../shared/corpus) as scan cases: a filesystem tree per config plus what was expected.

Used by tests/discovery/test_corpus.py and tools/bench_parse.py. The corpus is read, never copied into the project:
each case builds its trees in a temporary directory, placing the config where its source test read it from
(Petitboot's `config.read_as`, u-root's partition directories, the wild corpus' usual install paths).

Expected entries are normalised to the fields both sides talk about: title, kernel, initrd, cmdline, default. A key
missing from an expected entry was not asserted by the source and is not compared.
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from discovery.entry import BootEntry, LoadResult
from discovery.fs import Filesystem, Platform, StaticResolver
from discovery.loaders import LoadContext, load_filesystem

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
PLATFORM = Platform(firmware="pc", cpu="x86_64")

Expected = list[dict[str, Any]]


@dataclass(frozen=True)
class Device:
    name: str
    uuid: str = ""
    label: str = ""


@dataclass(frozen=True)
class Case:
    """One corpus config: `build(tmp)` lays out its trees and returns them, scanned in order."""

    key: str  # path of the config within the corpus: the key of tests/data/corpus_differences.toml
    build: Callable[[Path], list[Filesystem]]
    expected: Expected | None  # None: nothing comparable recorded (only "parses without exception")
    source: str  # petitboot, uroot, wild
    primary: str = ""  # device whose entries the expectation describes ("" = all)
    flattened: bool = False  # the expectation has no submenus (Petitboot, u-root)
    count: int | None = None  # how many entries the source asserts (None: len(expected))
    notes: tuple[str, ...] = field(default=())


def scanned(case: Case, filesystems: list[Filesystem]) -> list[Filesystem]:
    """The filesystems whose configs the case is about; the others are only there to be found by `search`."""
    return [fs for fs in filesystems if not case.primary or fs.name == case.primary]


def run_case(case: Case, tmp: Path) -> tuple[list[Filesystem], list[LoadResult]]:
    filesystems = case.build(tmp)
    ctx = LoadContext(resolver=StaticResolver(tuple(filesystems)), platform=PLATFORM)
    targets = scanned(case, filesystems)
    return targets, [load_filesystem(fs, ctx) for fs in targets]


def ours(case: Case, filesystems: list[Filesystem], results: list[LoadResult]) -> Expected:
    """Our entries in the expectation's vocabulary."""
    out: Expected = []
    for fs, result in zip(filesystems, results, strict=True):
        if case.primary and fs.name != case.primary:
            continue
        out.extend(normalise_entry(e) for e in result.entries)
    return out


def normalise_entry(entry: BootEntry) -> dict[str, Any]:
    return {
        "title": entry.title,
        "kernel": entry.kernel,
        "initrd": list(entry.initrds),
        "cmdline": " ".join(entry.cmdline.split()),
        "default": entry.default,
        "submenu": list(entry.submenu),
        "device": entry.device,
    }


def compare(
    expected: Expected, got: Expected, ignore: frozenset[str] = frozenset(), count: int | None = None
) -> list[str]:
    """Human-readable mismatches between an expectation and our entries ([] = they agree).

    An expected entry with an `index` key describes our entry at that position (Petitboot asserts only some options);
    otherwise the lists are compared position by position. `count` is the asserted number of entries.
    """
    problems: list[str] = []
    indexed = any("index" in want for want in expected)
    wanted = count if count is not None else (None if indexed else len(expected))
    if "count" not in ignore and wanted is not None and wanted != len(got):
        problems.append(
            f"{len(got)} entries, expected {wanted}: ours {[g['title'] for g in got]} "
            f"vs {[e.get('title') for e in expected]}"
        )
    for position, want in enumerate(expected):
        index = int(want.get("index", position))
        if index >= len(got):
            problems.append(f"entry {index} ({want.get('title')!r}) missing")
            continue
        have = got[index]
        for key, value in want.items():
            if key in ignore or key not in have:
                continue
            if have[key] != value:
                problems.append(f"entry {index} ({have['title']!r}) {key}: ours {have[key]!r}, expected {value!r}")
    return problems


# ---------------------------------------------------------------------------------------------------------- helpers


def _place(root: Path, path: str, source: Path) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copyfile(source, target)


def _strip_device(path: str) -> str:
    # `(hd0,gpt2)/vmlinuz`, `($root)/vmlinuz`: the path within the device is what we compare.
    return re.sub(r"^\([^)]*\)", "", path) or "/"


def _absolute(path: str, base: str) -> str:
    # `::/path` is pxelinux's "from the TFTP root"; relative paths start at the config's directory.
    path = _strip_device(path).removeprefix("::")
    return posixpath.normpath(path if path.startswith("/") else posixpath.join(base, path))


# ------------------------------------------------------------------------------------------------------- petitboot

PETITBOOT_FORMATS = ("grub2", "syslinux")


def _petitboot_case(expected_file: Path) -> Case | None:
    data = json.loads(expected_file.read_text())
    config = data.get("config")
    if not config or "read_as" not in config:
        return None
    parser_dir = expected_file.parent
    stem = expected_file.name.removesuffix(".expected.json")
    config_file = parser_dir / config["file"]
    companions = parser_dir / f"{stem}.fs"
    devices = {
        name: Device(name, str(info.get("uuid", "")), str(info.get("label", "")))
        for name, info in (data.get("devices") or {}).items()
    }
    devices.setdefault("local", Device("local"))
    extra = [d for d in devices if d != "local"]

    # Petitboot also reads a bare /grub.cfg, which GRUB itself never loads first; we place it where GRUB would.
    read_as = "/boot/grub/grub.cfg" if config["read_as"] == "/grub.cfg" else config["read_as"]
    aux_dirs = [(d.get("device", "local"), d["path"]) for d in data.get("aux_dirs") or ()]

    def build(tmp: Path) -> list[Filesystem]:
        roots = {name: tmp / name for name in devices}
        for root in roots.values():
            root.mkdir(parents=True, exist_ok=True)
        for device, path in aux_dirs:
            (roots.get(device, roots["local"]) / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
        _place(roots["local"], read_as, config_file)
        if companions.is_dir():
            for child in companions.iterdir():
                if child.name in extra and child.is_dir():
                    _place(roots[child.name], "/", child)
                else:
                    _place(roots["local"], child.name, child)
        return [Filesystem(roots[d.name], d.name, uuid=d.uuid, label=d.label) for d in devices.values()]

    options = data.get("options") or []
    count = data.get("option_count")
    # Without an asserted count, syslinux indexes can still be mapped back to file order from the highest index.
    reverse_from = count if count is not None else max((int(o["index"]) for o in options), default=-1) + 1
    expected: Expected = []
    for option in options:
        index = int(option["index"])
        if data["parser"] == "syslinux":
            # Petitboot lists syslinux labels in reverse file order (its `index`); we keep file order.
            index = reverse_from - 1 - index
        want: dict[str, Any] = {"index": index}
        if "name" in option:
            want["title"] = option["name"]
        if "kernel" in option:
            want["kernel"] = _strip_device(option["kernel"])
        if "initrd" in option:
            want["initrd"] = [_strip_device(i) for i in option["initrd"]]
        if "args" in option:
            want["cmdline"] = " ".join((option["args"] or "").split())
        if "default" in option:
            want["default"] = bool(option["default"])
        if "kernel_device" in option:
            want["device"] = option["kernel_device"]
        expected.append(want)
    return Case(
        key=str(config_file.relative_to(CORPUS)),
        build=build,
        expected=expected if (count is not None or expected) else None,
        count=count,
        source="petitboot",
        primary="local",
        flattened=True,
    )


def petitboot_cases() -> Iterator[Case]:
    for fmt in PETITBOOT_FORMATS:
        for expected_file in sorted((CORPUS / "petitboot" / fmt).glob("*.expected.json")):
            case = _petitboot_case(expected_file)
            if case is not None:
                yield case


# ----------------------------------------------------------------------------------------------------------- u-root


def _uroot_expected(golden: Path, prefixes: dict[str, str]) -> tuple[Expected, dict[str, str]]:
    """u-root's linux images (multiboot ones are not ours to boot) and the device each file path names."""
    expected: Expected = []
    for image in json.loads(golden.read_text()):
        if image.get("image_type") != "linux":
            continue
        want: dict[str, Any] = {"title": image["name"], "cmdline": " ".join(image.get("cmdline", "").split())}
        kernel, device = _uroot_file(image["kernel"], prefixes)
        want["kernel"] = kernel
        want["device"] = device
        if "initrd" in image:
            want["initrd"] = [_uroot_file(image["initrd"], prefixes)[0]]
        else:
            want["initrd"] = []
        expected.append(want)
    return expected, prefixes


def _uroot_file(ref: dict[str, str], prefixes: dict[str, str]) -> tuple[str, str]:
    raw = ref.get("url", "").removeprefix("file://").lstrip("/") or ref.get("name", "")
    for prefix, device in sorted(prefixes.items(), key=lambda p: -len(p[0])):
        if raw.startswith(prefix + "/"):
            return "/" + raw[len(prefix) + 1 :], device
    return raw, ""


def _static(*filesystems: Filesystem) -> Callable[[Path], list[Filesystem]]:
    """A build step for trees already laid out in the corpus (u-root's partition directories): read in place."""

    def build(_tmp: Path) -> list[Filesystem]:
        return list(filesystems)

    return build


def uroot_cases() -> Iterator[Case]:
    grub = CORPUS / "uroot" / "grub" / "testdata_new"
    if grub.is_dir():
        parts = sorted(p for p in grub.iterdir() if p.is_dir())

        def fs_of(p: Path) -> Filesystem:
            uuid = (p / "UUID").read_text().strip() if (p / "UUID").is_file() else ""
            label = (p / "LABEL").read_text().strip() if (p / "LABEL").is_file() else ""
            return Filesystem(p, p.name, uuid=uuid, label=label)

        for part in parts:
            golden = grub / f"{part.name}.json"
            others = [q for q in parts if q != part]
            prefixes = {f"testdata_new/{q.name}": q.name for q in parts}
            expected = _uroot_expected(golden, prefixes)[0] if golden.is_file() else None
            yield Case(
                key=str(part.relative_to(CORPUS)),
                build=_static(fs_of(part), *(fs_of(q) for q in others)),
                expected=expected,
                source="uroot",
                primary=part.name,
                flattened=True,
            )
    for kind in ("bls", "syslinux"):
        base = CORPUS / "uroot" / kind / "testdata"
        if not base.is_dir():
            continue
        for part in sorted(p for p in base.iterdir() if p.is_dir() and p.name != "fuzz"):
            golden = base / f"{part.name}.json"
            prefixes = {f"testdata/{part.name}": part.name}
            expected = _uroot_expected(golden, prefixes)[0] if golden.is_file() else None
            yield Case(
                key=str(part.relative_to(CORPUS)),
                build=_static(Filesystem(part, part.name)),
                expected=expected,
                source="uroot",
                primary=part.name,
                flattened=True,
            )


# ------------------------------------------------------------------------------------------------------------- wild


@dataclass(frozen=True)
class WildLayout:
    """Where a wild config goes in its tree, and which corpus companions (grubenv, BLS directory) go with it."""

    read_as: str
    grubenv: str = ""
    bls: str = ""
    directory: str = ""  # a multi-file menu: the corpus directory copied to dirname(read_as)


WILD_NOT_COMPARED = frozenset({"debian10.4-xfce-cd-iso-x86_64-efi.grub.cfg"})

WILD_GRUB: dict[str, WildLayout] = {
    "rhel8.3-aws-blscfg.grub.cfg": WildLayout("/boot/grub2/grub.cfg", "rhel8.3-aws.grubenv", "rhel8.3-aws"),
    "rocky8.8-issabel-blscfg.grub.cfg": WildLayout(
        "/boot/grub2/grub.cfg", "rocky8.8-issabel.grubenv", "rocky8.8-issabel"
    ),
    "fedora35-dualboot-blscfg.grub.cfg": WildLayout("/boot/grub2/grub.cfg", "fedora35-dualboot.grubenv"),
    "centos7-linux16.grub.cfg": WildLayout("/boot/grub2/grub.cfg", "centos7-title-saved-entry.grubenv"),
    "ubuntu22.04-aws-force-partuuid.grub.cfg": WildLayout("/boot/grub/grub.cfg", "ubuntu22.04-aws-empty.grubenv"),
}

# Syslinux configs: where each is installed on its medium.
WILD_SYSLINUX: dict[str, WildLayout] = {
    "alpine-update-extlinux.conf": WildLayout("/boot/extlinux.conf"),
    "archlinux-visionfive2-fdtdir-extlinux.conf": WildLayout("/boot/extlinux/extlinux.conf"),
    "deerpi-devicetreedir-extlinux.conf": WildLayout("/boot/extlinux/extlinux.conf"),
    "emuelec-r36ultra-stock-extlinux.conf": WildLayout("/extlinux/extlinux.conf"),
    "nvidia-l4t-jetson-extlinux.conf": WildLayout("/boot/extlinux/extlinux.conf"),
    "socfpga-debian-fdt-extlinux.conf": WildLayout("/extlinux/extlinux.conf"),
    "linuxmint20.1-xfce-isolinux.cfg": WildLayout("/isolinux/isolinux.cfg"),
    "lorax-fedora-install-isolinux.cfg": WildLayout("/isolinux/isolinux.cfg"),
    "debian10.4-xfce-cd-isolinux/isolinux.cfg": WildLayout("/isolinux/isolinux.cfg", directory="isolinux"),
    "archiso-releng/syslinux.cfg": WildLayout("/boot/syslinux/syslinux.cfg", directory="syslinux"),
    "archiso-releng/archiso_sys.cfg": WildLayout("/boot/syslinux/syslinux.cfg", directory="syslinux"),
    "archiso-releng/archiso_pxe.cfg": WildLayout("/boot/syslinux/syslinux.cfg", directory="syslinux"),
}


@dataclass(frozen=True)
class WildStub:
    """An EFI stub on the ESP that finds the real grub.cfg on another filesystem (by UUID or by a file on it)."""

    stub_at: str
    target: str  # corpus file of the real config, placed at /boot/grub/grub.cfg of the second filesystem
    uuid: str = ""
    marker: str = ""  # a file that `search --file` looks for
    extra: tuple[tuple[str, str], ...] = ()  # (path on the second filesystem, corpus file)


WILD_STUBS: dict[str, WildStub] = {
    "ubuntu22.04-cloudimg-efistub.grub.cfg": WildStub(
        "/EFI/ubuntu/grub.cfg", "ubuntu22.04-cloudimg.grub.cfg", uuid="e8328184-226c-4e5e-9635-8142cc114051"
    ),
    "ubuntu22.04-desktop-efistub-hint.grub.cfg": WildStub(
        "/EFI/ubuntu/grub.cfg", "ubuntu22.04-desktop-efi.grub.cfg", uuid="d5e58d4a-618d-4557-a098-819b96959bee"
    ),
    "debian10.4-xfce-cd-iso-efi-debian.grub.cfg": WildStub(
        "/EFI/debian/grub.cfg",
        "debian10.4-xfce-cd-iso.grub.cfg",
        marker="/.disk/info",
        extra=(("/boot/grub/x86_64-efi/grub.cfg", "debian10.4-xfce-cd-iso-x86_64-efi.grub.cfg"),),
    ),
}


def _stub_case(cfg: Path, stub: WildStub) -> Case:
    grub_dir = cfg.parent

    def build(tmp: Path) -> list[Filesystem]:
        esp, disk = tmp / "esp", tmp / "disk"
        _place(esp, stub.stub_at, cfg)
        _place(disk, "/boot/grub/grub.cfg", grub_dir / stub.target)
        for path, source in stub.extra:
            _place(disk, path, grub_dir / source)
        if stub.marker:
            _place(disk, stub.marker, cfg)
        return [Filesystem(esp, "esp", uuid="ABCD-0001"), Filesystem(disk, "disk", uuid=stub.uuid)]

    return Case(
        key=str(cfg.relative_to(CORPUS)),
        build=build,
        expected=_wild_expected(cfg, "/"),
        source="wild",
        primary="esp",
    )


def _wild_expected(path: Path, config_dir: str) -> Expected | None:
    golden = path.with_name(path.name + ".expected.json")
    if not golden.is_file():
        return None
    expected: Expected = []
    for item in json.loads(golden.read_text()):
        kernel = item.get("kernel")
        if kernel is None or item.get("action") or item.get("condition") or kernel.lower().endswith(".c32"):
            continue  # not a Linux entry (chainloader, fwsetup, COM32 module) or only under a runtime `if`
        want: dict[str, Any] = {
            "title": item["title"],
            "kernel": _absolute(item["kernel"], config_dir),
            "initrd": [_absolute(i, config_dir) for i in item.get("initrd") or []],
            "cmdline": " ".join((item.get("cmdline") or "").split()),
            "default": bool(item.get("default")),
        }
        if item.get("fdt"):
            want["devicetree"] = _absolute(item["fdt"], config_dir)
        if "submenu_path" in item:
            want["submenu"] = list(item["submenu_path"])
        elif item.get("submenu"):
            want["submenu"] = [item["submenu"]]
        else:
            want["submenu"] = []
        expected.append(want)
    return expected


def wild_cases() -> Iterator[Case]:
    grub_dir = CORPUS / "wild" / "grub"
    for cfg in sorted(grub_dir.glob("*.cfg")):
        if cfg.name in WILD_STUBS:
            yield _stub_case(cfg, WILD_STUBS[cfg.name])
            continue
        layout = WILD_GRUB.get(cfg.name, WildLayout("/boot/grub/grub.cfg"))

        def build(tmp: Path, cfg: Path = cfg, layout: WildLayout = layout) -> list[Filesystem]:
            root = tmp / "disk"
            _place(root, layout.read_as, cfg)
            if layout.grubenv:
                _place(
                    root,
                    str(PurePosixPath(layout.read_as).parent / "grubenv"),
                    CORPUS / "wild/grubenv" / layout.grubenv,
                )
            if layout.bls:
                for conf in (CORPUS / "wild/bls" / layout.bls).glob("*.conf"):
                    _place(root, f"/boot/loader/entries/{conf.name}", conf)
            return [Filesystem(root, "disk")]

        # GRUB has no "relative to the config" paths: a path without `/` is looked up from the device root.
        # The x86_64-efi fragment only `source`s /boot/grub/grub.cfg, itself when laid out alone: not comparable.
        comparable = cfg.name not in WILD_NOT_COMPARED
        yield Case(
            key=str(cfg.relative_to(CORPUS)),
            build=build,
            expected=_wild_expected(cfg, "/") if comparable else None,
            source="wild",
        )
    sysrescue = grub_dir / "systemrescue"
    for cfg in sorted(sysrescue.glob("*.cfg")):

        def build_sr(tmp: Path, cfg: Path = cfg) -> list[Filesystem]:
            root = tmp / "disk"
            _place(root, "/boot/grub", sysrescue)
            _place(root, "/boot/grub/grub.cfg", cfg)
            return [Filesystem(root, "disk")]

        yield Case(
            key=str(cfg.relative_to(CORPUS)),
            build=build_sr,
            expected=_wild_expected(cfg, "/"),
            source="wild",
        )
    syslinux_dir = CORPUS / "wild" / "syslinux"
    for name, layout in WILD_SYSLINUX.items():
        cfg = syslinux_dir / name
        if not cfg.is_file():
            continue

        def build_sl(tmp: Path, cfg: Path = cfg, layout: WildLayout = layout) -> list[Filesystem]:
            root = tmp / "disk"
            if layout.directory:
                _place(root, str(PurePosixPath(layout.read_as).parent), cfg.parent)
            _place(root, layout.read_as, cfg)
            return [Filesystem(root, "disk")]

        yield Case(
            key=str(cfg.relative_to(CORPUS)),
            build=build_sl,
            expected=_wild_expected(cfg, str(PurePosixPath(layout.read_as).parent)),
            source="wild",
        )
    for loader_dir in sorted((CORPUS / "wild" / "bls").glob("*/loader")):

        def build_bls(tmp: Path, loader_dir: Path = loader_dir) -> list[Filesystem]:
            root = tmp / "esp"
            _place(root, "/loader", loader_dir)
            return [Filesystem(root, "esp")]

        yield Case(
            key=str(loader_dir.relative_to(CORPUS)),
            build=build_bls,
            expected=_wild_menu_expected(loader_dir.parent / "menu.expected.json"),
            source="wild",
        )


def _wild_menu_expected(path: Path) -> Expected | None:
    """A systemd-boot menu (`menu.expected.json`): Linux entries only (an `efi` binary is not ours to kexec)."""
    if not path.is_file():
        return None
    return [
        {
            "title": item["title"],
            "kernel": item["kernel"],
            "initrd": list(item.get("initrd") or []),
            "cmdline": " ".join((item.get("cmdline") or "").split()),
            "default": bool(item.get("default")),
        }
        for item in json.loads(path.read_text())["entries"]
        if item.get("cmdline") is not None or item.get("initrd")
    ]


def all_cases() -> list[Case]:
    if not CORPUS.is_dir():
        return []
    return [*petitboot_cases(), *uroot_cases(), *wild_cases()]
