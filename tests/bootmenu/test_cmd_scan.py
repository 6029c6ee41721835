"""`bootmenu scan`: what a user sees on the terminal and in `--json`, and its exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bootmenu.cli import main

UBUNTU_LIKE = """\
set default="0"
set timeout=5
menuentry 'Ubuntu' --id gnulinux-simple {
	linux /boot/vmlinuz-6.8.0-31-generic root=/dev/sda2 ro quiet
	initrd /boot/initrd.img-6.8.0-31-generic
}
submenu 'Advanced options for Ubuntu' --id gnulinux-advanced {
	menuentry 'Ubuntu, with Linux 6.8.0-31-generic (recovery mode)' --id recovery {
		linux /boot/vmlinuz-6.8.0-31-generic root=/dev/sda2 ro single
		initrd /boot/initrd.img-6.8.0-31-generic
	}
}
"""


def write(root: Path, path: str, text: str = "") -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


def scan_json(capsys: pytest.CaptureFixture[str], *paths: Path) -> list[dict[str, Any]]:
    code = main(["scan", "--json", "--platform", "pc", *map(str, paths)])
    out = capsys.readouterr().out
    assert code == 0
    data: list[dict[str, Any]] = json.loads(out)
    return data


def test_json_lists_entries_depth_first_with_submenu_and_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "/boot/grub/grub.cfg", UBUNTU_LIKE)
    entries = scan_json(capsys, tmp_path)
    assert [(e["title"], e["submenu"], e["default"]) for e in entries] == [
        ("Ubuntu", [], True),
        ("Ubuntu, with Linux 6.8.0-31-generic (recovery mode)", ["Advanced options for Ubuntu"], False),
    ]
    first = entries[0]
    assert first["kernel"] == "/boot/vmlinuz-6.8.0-31-generic"
    assert first["initrd"] == ["/boot/initrd.img-6.8.0-31-generic"]
    assert first["cmdline"] == "root=/dev/sda2 ro quiet"
    assert first["id"] == "gnulinux-simple"
    assert first["format"] == "grub"
    assert first["config"] == "/boot/grub/grub.cfg"
    assert first["device"] == tmp_path.name
    for key in ("devicetree", "warnings"):
        assert key in first


def test_human_output_marks_default_and_indents_submenu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "/boot/grub/grub.cfg", UBUNTU_LIKE)
    assert main(["scan", "--platform", "pc", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(tmp_path.name)
    default = next(line for line in lines if "Ubuntu" in line and "[grub" in line and "recovery" not in line)
    assert default.lstrip().startswith("* Ubuntu")
    header = next(line for line in lines if "Advanced options for Ubuntu" in line)
    recovery = next(line for line in lines if "recovery mode" in line)
    assert lines.index(header) < lines.index(recovery)
    # The submenu's child is indented deeper than its header and is not the default.
    assert len(recovery) - len(recovery.lstrip()) > len(header) - len(header.lstrip())
    assert not recovery.lstrip().startswith("*")
    assert any("/boot/initrd.img-6.8.0-31-generic" in line for line in lines)


def test_syntax_error_is_a_warning_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(
        tmp_path,
        "/boot/grub/grub.cfg",
        "menuentry 'before' {\n linux /vmlinuz-a\n}\nif [ x = x ]; then\n  fi fi )\n"
        "menuentry 'after' {\n linux /vmlinuz-b\n}\n",
    )
    assert main(["scan", "--platform", "pc", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "before" in out
    assert "after" in out
    assert "warnings:" in out
    assert "/boot/grub/grub.cfg:" in out.split("warnings:")[1]


def test_empty_tree_runs_and_prints_no_entries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert scan_json(capsys, tmp_path) == []
    assert main(["scan", str(tmp_path)]) == 0
    assert "no boot entries" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_unreadable_path_exits_2_with_message(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    path = tmp_path / "nothere"
    if kind == "file":
        path.write_text("not a tree")
    assert main(["scan", str(tmp_path), str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert "Traceback" not in err


def test_bad_fs_file_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, ".bootmenu-fs", "uuid=1234\ncolour=blue\n")
    assert main(["scan", str(tmp_path)]) == 2
    assert ".bootmenu-fs:2:" in capsys.readouterr().err


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["scan"])
    assert exc.value.code == 2
    assert "PATH" in capsys.readouterr().err


def test_esp_stub_searches_the_other_path_by_uuid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    esp, root = tmp_path / "esp", tmp_path / "root"
    write(esp, ".bootmenu-fs", "name=sda1\nfstype=vfat\nuuid=ABCD-1234\n")
    write(
        esp,
        "/EFI/ubuntu/grub.cfg",
        "search.fs_uuid 0f6a2b1c-1111-4222-8333-944455556666 root\n"
        "set prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n",
    )
    write(root, ".bootmenu-fs", "name=sda2\nfstype=ext4\nuuid=0f6a2b1c-1111-4222-8333-944455556666\nlabel=rootfs\n")
    write(root, "/boot/grub/grub.cfg", UBUNTU_LIKE)
    write(root, "/boot/vmlinuz-6.8.0-31-generic")
    titles = ["Ubuntu", "Ubuntu, with Linux 6.8.0-31-generic (recovery mode)"]
    entries = scan_json(capsys, esp, root)
    # The ESP's menu is the root filesystem's, found by UUID: its kernels live on sda2. Then sda2's own menu.
    assert [(e["title"], e["device"]) for e in entries] == [(t, "sda2") for t in titles * 2]
    # Without the root filesystem the stub's `configfile` finds nothing: no entries, but the scan still ran.
    assert scan_json(capsys, esp) == []


def test_console_script_reports_missing_path_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bootmenu", "scan", str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "absent" in proc.stderr
    assert "Traceback" not in proc.stderr
