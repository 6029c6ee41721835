"""The shared comparison (compare.py) and how the grub-emu harness reads a run, without running any loader."""

from __future__ import annotations

from discovery.entry import BootEntry, SourceFormat
from tests.conformance import grub_emu
from tests.conformance.compare import Kind, Menu, Row, compare


def entry(title: str, *, default: bool = False, cmdline: str = "ro") -> BootEntry:
    return BootEntry(
        title=title,
        kernel="/vmlinuz",
        cmdline=cmdline,
        loader_args=("BOOT_IMAGE=/vmlinuz",),
        default=default,
        format=SourceFormat.GRUB,
        device="sda1",
    )


def row(title: str, cmdline: str = "BOOT_IMAGE=/vmlinuz ro") -> Row:
    return Row((title,), "sda1:/vmlinuz", (), cmdline)


def test_same_rows_and_default_are_identical() -> None:
    menu = Menu((row("A"), row("B")), default=("B",))
    assert compare(menu, [entry("A"), entry("B", default=True)]).kind is Kind.IDENTICAL


def test_a_different_command_line_is_shown_unless_explained() -> None:
    menu = Menu((row("A", "BOOT_IMAGE=/vmlinuz quiet"),), default=("A",))
    verdict = compare(menu, [entry("A", default=True)])
    assert verdict.kind is Kind.DIFFERENT
    assert any("quiet" in line for line in verdict.lines)
    assert compare(menu, [entry("A", default=True)], explained="why").kind is Kind.EXPLAINED


def test_a_non_linux_default_expects_the_first_linux_entry() -> None:
    # GRUB's default is a Windows chainloader entry, which bootmenu does not list: its first Linux entry is marked.
    menu = Menu((row("Kali"), row("Kali recovery")), default=("Windows",), others=frozenset({("Windows",)}))
    assert compare(menu, [entry("Kali", default=True), entry("Kali recovery")]).kind is Kind.IDENTICAL
    assert compare(menu, [entry("Kali"), entry("Kali recovery", default=True)]).kind is Kind.DIFFERENT


def test_order_alone_differs() -> None:
    menu = Menu((row("A"), row("B")), default=("A",))
    verdict = compare(menu, [entry("B"), entry("A", default=True)])
    assert verdict.kind is Kind.DIFFERENT
    assert "different order" in verdict.lines[0]


def test_a_fallback_entrys_calls_are_not_the_failed_items() -> None:
    # GRUB boots `fallback` after the item fails (normal/menu.c notify_fallback): those calls are another item's.
    run = (
        "  Booting `Start EFI Shell'\r\n\r\nBM-CHAIN root=[hd0,gpt1]\r\nBM-ARG [/EFI/shell.efi]\r\nBM-END\r\n"
        "\r\n   Falling back to `Other'\r\n\r\nBM-LINUX root=[hd0,gpt1]\r\nBM-ARG [/vmlinuz]\r\nBM-END\r\n"
    )
    item = grub_emu.parse_run(run)
    assert item.path == ("Start EFI Shell",)
    assert item.chainloader == ("/EFI/shell.efi",)
    assert item.linux is None


def test_a_menu_read_off_the_screen() -> None:
    # menu_text.c draws each entry at its row, `*` before the highlighted one; `clear` when the chosen one runs.
    screen = (
        b"\x1b[5;200H \x1b[30m\x1b[5;3H*Ubuntu        \x1b[37m\x1b[6;3H Advanced options for Ubuntu     \x1b[37m"
        b"\x1b[7;3H          \x1b[37m\x1b[5;3H Ubuntu     \x1b[6;3H*Advanced options for Ubuntu   \x1b[H\x1b[Jrest"
    )
    assert grub_emu._entries(screen, 0) == (b"Ubuntu", b"Advanced options for Ubuntu")
    assert grub_emu.HIGHLIGHTED.findall(screen, 0, grub_emu._cleared(screen, 0))[-1].rstrip() == (
        b"Advanced options for Ubuntu"
    )
    # An entry chosen by keys runs without a "Booting" line: its path is the titles picked.
    run = "BM-LINUX root=[hd1,gpt1]\nBM-ARG [/vmlinuz]\nBM-END\n"
    assert grub_emu.parse_run(run, ["Advanced options for Ubuntu", "Recovery"]).path == (
        "Advanced options for Ubuntu",
        "Recovery",
    )
