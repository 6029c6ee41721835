"""The subprocess gateway: failures come back as typed errors naming the command."""

from __future__ import annotations

import logging

import pytest

from initramfs.run import CommandFailed, CommandNotFound, CommandSignaled, CommandTimedOut, run


def test_captures_output_and_passes_input_and_env() -> None:
    proc = run(["sh", "-c", 'cat; printf "%s" "$FOO"'], capture=True, input=b"in-", env={"FOO": "bar"})
    assert proc.stdout == b"in-bar"


def test_missing_program_is_not_found() -> None:
    with pytest.raises(CommandNotFound, match="no-such-program-xyz"):
        run(["no-such-program-xyz", "--help"])


def test_non_zero_exit_names_status_and_stderr() -> None:
    with pytest.raises(CommandFailed, match=r"exited with status 3: oops") as info:
        run(["sh", "-c", "echo oops >&2; exit 3"], capture=True)
    assert info.value.returncode == 3
    assert run(["sh", "-c", "exit 3"], check=False).returncode == 3


def test_signal_is_classified() -> None:
    with pytest.raises(CommandSignaled, match="SIGKILL"):
        run(["sh", "-c", "kill -9 $$"])


def test_timeout_kills_the_command() -> None:
    with pytest.raises(CommandTimedOut, match="timed out"):
        run(["sleep", "10"], timeout=0.2)


def test_command_is_logged_quoted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="initramfs.run"):
        run(["true", "a b"])
    assert "+ true 'a b'" in caplog.text
