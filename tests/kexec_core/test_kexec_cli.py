"""`bootmenu kexec`: exit codes and messages a user at a console sees (in process, syscalls through the fake)."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bootmenu.cli import main
from tests.kexec_core.conftest import FakeBackend
from tests.kexec_core.kexec_craft import arm64_image, bzimage, newc, write


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["kexec", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_real_kernel_json(capsys: pytest.CaptureFixture[str], kernel_image: Path) -> None:
    code, out, _ = run(capsys, "inspect", str(kernel_image), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["kind"] == "bzImage"
    assert data["arch"] == "x86_64"
    assert data["bzimage"]["relocatable"] is True
    assert data["version"] == kernel_image.name.removeprefix("vmlinuz-")


def test_inspect_text_and_initrd(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "inspect", str(write(tmp_path / "Image", arm64_image())))
    assert code == 0
    assert "Image for aarch64" in out
    code, out, _ = run(capsys, "inspect", str(write(tmp_path / "initrd.img", newc("init", b"x"))))
    assert code == 0
    assert "cpio (newc)" in out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing", "missing: no such file"),
        (lambda d: write(d / "notes.txt", b"just text, no kernel"), "notes.txt: not a kernel image"),
        (lambda d: write(d / "short", bzimage()[:0x220]), "short: truncated bzImage"),
    ],
)
def test_inspect_errors_exit_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    path = make(tmp_path)
    code, _out, err = run(capsys, "inspect", str(path))
    assert code == 3
    assert message in err
    assert "Traceback" not in err


def test_load_dry_run_prints_plan(
    capsys: pytest.CaptureFixture[str], fake_backend: FakeBackend, tmp_path: Path
) -> None:
    kernel = write(tmp_path / "vmlinuz", bzimage())
    rd = write(tmp_path / "initrd.img", newc("init", b"x"))
    code, out, _ = run(capsys, "load", str(kernel), "--initrd", str(rd), "--append", "console=ttyS0", "--dry-run")
    assert code == 0
    assert str(kernel) in out
    assert str(rd) in out
    assert "console=ttyS0" in out
    assert "nothing loaded" in out
    assert fake_backend.calls == []


def test_load_refused_without_force(
    capsys: pytest.CaptureFixture[str], fake_backend: FakeBackend, tmp_path: Path
) -> None:
    code, _, err = run(capsys, "load", str(write(tmp_path / "vmlinuz", bzimage())), "--command-line", "quiet")
    assert code == 4
    assert "refusing to load" in err
    assert "/etc/bootmenu-payload" in err
    assert fake_backend.calls == []


def test_load_forced_passes_initrds(
    capsys: pytest.CaptureFixture[str], fake_backend: FakeBackend, tmp_path: Path
) -> None:
    kernel = write(tmp_path / "vmlinuz", bzimage())
    a = write(tmp_path / "a.img", newc("a", b"1"))
    b = write(tmp_path / "b.img", newc("b", b"2"))
    code, out, _ = run(
        capsys, "load", str(kernel), "--initrd", str(a), "--initrd", str(b), "--append", "x=1", "--force"
    )
    assert code == 0
    assert "loaded" in out
    args = fake_backend.calls[0].args
    assert args["initrd_data"].startswith(a.read_bytes() + b.read_bytes())
    assert args["cmdline"] == b"x=1\0"


def test_load_syscall_failure_exit_1(
    capsys: pytest.CaptureFixture[str], fake_backend: FakeBackend, tmp_path: Path
) -> None:
    fake_backend.fail["kexec_file_load"] = errno.ENOSYS
    fake_backend.fail["kexec_load"] = errno.ENOSYS  # the fallback fails the same way
    code, _, err = run(capsys, "load", str(write(tmp_path / "vmlinuz", bzimage())), "--force")
    assert code == 1
    assert fake_backend.names() == ["kexec_file_load", "kexec_load"]
    assert "kexec_load(" in err
    assert "ENOSYS" in err
    assert "CONFIG_KEXEC_FILE" in err


def test_load_wrong_arch_exit_3(capsys: pytest.CaptureFixture[str], fake_backend: FakeBackend, tmp_path: Path) -> None:
    code, _, err = run(capsys, "load", str(write(tmp_path / "Image", arm64_image())), "--dry-run")
    assert code == 3
    assert "a kernel for aarch64" in err
    assert fake_backend.calls == []


def test_load_append_and_reuse_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["kexec", "load", "k", "--append", "a", "--reuse-cmdline"])
    assert exc.value.code == 2


def test_exec_refused_and_dry_run(capsys: pytest.CaptureFixture[str], fake_backend: FakeBackend) -> None:
    code, _, err = run(capsys, "exec")
    assert code == 4
    assert "refusing to execute" in err
    code, out, _ = run(capsys, "exec", "--dry-run")
    assert code == 0
    assert "reboot(LINUX_REBOOT_CMD_KEXEC)" in out
    code, _, err = run(capsys, "unload")
    assert code == 4
    assert fake_backend.calls == []


def test_status_exit_code(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kexec_core import boot

    monkeypatch.setattr(boot, "KEXEC_LOADED", write(tmp_path / "kexec_loaded", b"1\n"))
    code, out, _ = run(capsys, "status")
    assert (code, out.strip()) == (0, "a kernel is loaded")
    monkeypatch.setattr(boot, "KEXEC_LOADED", write(tmp_path / "kexec_loaded", b"0\n"))
    code, out, _ = run(capsys, "status")
    assert (code, out.strip()) == (1, "no kernel is loaded")


def test_help_documents_exit_codes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bootmenu.cli", "kexec", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for line in ("0  success", "1  a syscall failed", "2  bad usage", "3  the kernel/initrd", "4  refused"):
        assert line in out


def test_reuse_cmdline(capsys: pytest.CaptureFixture[str], fake_backend: FakeBackend, tmp_path: Path) -> None:
    running = Path("/proc/cmdline").read_text().strip()
    code, out, _ = run(capsys, "load", str(write(tmp_path / "vmlinuz", bzimage())), "--reuse-cmdline", "--dry-run")
    assert code == 0
    assert f"cmdline: {running!r}" in out
