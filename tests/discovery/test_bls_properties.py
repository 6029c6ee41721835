"""Version comparisons and the entry parser on arbitrary input: total, antisymmetric, never raising."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.bls import BlsEntry, parse_entry, rpmvercmp, systemd_boot_order, uapi_vercmp

# Version-like text: the characters the comparisons give meaning to, plus some they skip.
versions = st.text(alphabet="0123456789abcXYZ.-_~^+ é", max_size=24)


@settings(max_examples=400)
@given(versions, versions)
def test_rpmvercmp_is_antisymmetric(a: str, b: str) -> None:
    r = rpmvercmp(a, b)
    assert r in (-1, 0, 1)
    assert rpmvercmp(b, a) == -r
    assert rpmvercmp(a, a) == 0


@settings(max_examples=400)
@given(versions, versions)
def test_uapi_vercmp_is_antisymmetric(a: str, b: str) -> None:
    r = uapi_vercmp(a, b)
    assert r in (-1, 0, 1)
    assert uapi_vercmp(b, a) == -r
    assert uapi_vercmp(a, a) == 0


@settings(max_examples=200)
@given(st.text(max_size=400), st.sampled_from(["/l/a.conf", "/l/b+1-2.conf", "/l/+.conf", "/l/x"]))
def test_parse_entry_never_raises_and_keeps_every_initrd(text: str, path: str) -> None:
    entry, diags = parse_entry(text, path)
    assert all(d.file == path for d in diags)
    initrd_lines = [ln for ln in entry.lines if ln.key == "initrd" and ln.value]
    assert entry.initrds == tuple(ln.value for ln in initrd_lines)


@settings(max_examples=100)
@given(st.lists(st.tuples(versions, st.none() | versions, st.none() | st.integers(0, 3)), max_size=8))
def test_systemd_order_is_a_permutation(specs: list[tuple[str, str | None, int | None]]) -> None:
    from discovery.entry import BootCount

    entries = [
        BlsEntry(
            path=f"/e/{n}.conf", stem=f"{stem}{n}", sort_key=key, boot_count=None if left is None else BootCount(left)
        )
        for n, (stem, key, left) in enumerate(specs)
    ]
    ordered = systemd_boot_order(entries)
    assert sorted(e.path for e in ordered) == sorted(e.path for e in entries)
    bad = [e.bad for e in ordered]
    assert bad == sorted(bad)  # entries with no tries left come last
