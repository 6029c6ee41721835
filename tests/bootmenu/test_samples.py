"""The bundled sample filesystems of `bootmenu demo`: generated files up to date, kernels that pass preflight,
valid initrds, and configs that read as the distributions they imitate."""

from __future__ import annotations

import gzip

import pytest

from bootmenu.cmd_demo import sample_roots
from discovery.fs import StaticResolver
from discovery.loaders import LoadContext, load_filesystem
from discovery.scan import filesystem_for
from kexec_core import bzimage
from tools import make_samples


def test_committed_samples_are_what_make_samples_generates() -> None:
    assert make_samples.main(["--check"]) == 0


@pytest.mark.parametrize("kernel", make_samples.KERNELS, ids=lambda k: k.kernel)
def test_sample_kernels_pass_kexec_file_header_checks(kernel: make_samples.Kernel) -> None:
    path = make_samples.SAMPLES / kernel.sample / kernel.kernel
    header = bzimage.parse(path, path.read_bytes())
    assert header.is_bzimage
    assert header.protocol_str == "2.15"
    assert header.kexec_file_problems() == []
    assert header.init_size is not None
    assert header.init_size >= path.stat().st_size
    assert header.version_string == kernel.version


@pytest.mark.parametrize("kernel", make_samples.KERNELS, ids=lambda k: k.initrd)
def test_sample_initrds_are_gzip_newc_with_init(kernel: make_samples.Kernel) -> None:
    data = gzip.decompress((make_samples.SAMPLES / kernel.sample / kernel.initrd).read_bytes())
    assert data.startswith(b"070701")
    assert b"init\0" in data
    assert b"TRAILER!!!\0" in data


def _entries() -> dict[str, list[tuple[tuple[str, ...], str, bool, str]]]:
    filesystems = [filesystem_for(root) for root in sample_roots()]
    ctx = LoadContext(resolver=StaticResolver(filesystems))
    out = {}
    for fs in filesystems:
        result = load_filesystem(fs, ctx)
        assert result.diagnostics == (), [str(d) for d in result.diagnostics]
        assert [str(w) for e in result.entries for w in e.warnings] == []
        out[fs.name] = [(e.submenu, e.title, e.default, e.cmdline) for e in result.entries]
    return out


def test_samples_read_as_ubuntu_fedora_and_alpine() -> None:
    entries = _entries()
    assert list(entries) == ["ubuntu", "fedora", "alpine"]
    ubuntu = entries["ubuntu"]
    assert ubuntu[0][:2] == ((), "Ubuntu")
    # gfxmode $linux_gfx_mode (keep) sets vt_handoff, which the linux line expands.
    assert ubuntu[0][3].endswith("quiet splash vt.handoff=7")
    advanced = [e for e in ubuntu if e[0] == ("Advanced options for Ubuntu",)]
    assert len(advanced) == 4
    # grubenv's saved_entry names an entry inside the submenu by its id path.
    assert [e[1] for e in ubuntu if e[2]] == ["Ubuntu, with Linux 6.8.0-31-generic"]
    fedora = entries["fedora"]
    assert [e[1].split(" (")[0] for e in fedora] == ["Fedora Linux", "Fedora Linux"]
    assert all("rootflags=subvol=root" in e[3] for e in fedora)  # $kernelopts from grubenv
    assert fedora[0][2]
    alpine = entries["alpine"]
    assert [(e[1], e[2]) for e in alpine] == [("Linux lts", True), ("Linux lts (single user)", False)]


def test_every_sample_has_a_device_description() -> None:
    for root in sample_roots():
        fields = dict(line.split("=", 1) for line in (root / ".bootmenu-fs").read_text().splitlines())
        assert set(fields) == {"uuid", "label", "fstype"}
