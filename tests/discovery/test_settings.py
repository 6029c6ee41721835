"""Settings from a TOML file and `bootmenu.*` kernel parameters, the latter winning."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.settings import DEFAULT_TIMEOUT, OrderKind, OrderRule, Settings, SettingsError


def test_file_then_kernel_command_line_wins(tmp_path: Path) -> None:
    conf = tmp_path / "bootmenu.toml"
    conf.write_text('timeout = 5\nboot_order = ["label:root", "type:usb"]\nconsole = "100x30"\n')
    settings = Settings.load(conf, "quiet bootmenu.timeout=2 bootmenu.console=80x24 root=/dev/vda2")
    assert settings.timeout == 2
    assert settings.console == (80, 24)
    assert settings.boot_order == (OrderRule(OrderKind.LABEL, "root"), OrderRule(OrderKind.TYPE, "usb"))


def test_timeout_off_and_zero() -> None:
    off = Settings().with_cmdline("bootmenu.timeout=off")
    assert off.effective_timeout(5) is None
    zero = Settings().with_cmdline("bootmenu.timeout=0")
    assert zero.effective_timeout(5) == 0


def test_config_timeout_is_used_when_settings_have_none() -> None:
    assert Settings().effective_timeout(3) == 3
    assert Settings().effective_timeout(-1) is None, "GRUB timeout=-1 waits for the user"
    assert Settings().effective_timeout(None) == DEFAULT_TIMEOUT


def test_debug_flag_and_order_from_cmdline() -> None:
    s = Settings().with_cmdline("bootmenu.debug bootmenu.order=uuid:ABCD-1234,type:nvme")
    assert s.debug
    assert s.rank(uuid="abcd-1234", label="", kind="disk") == 0
    assert s.rank(uuid="", label="", kind="nvme") == 1
    assert s.rank(uuid="", label="", kind="usb") == 2


def test_hello_form_shows_off_and_console() -> None:
    s = Settings().with_cmdline("bootmenu.timeout=off bootmenu.console=132x43")
    assert s.to_json() == {
        "timeout": "off",
        "boot_order": [],
        "console": "132x43",
        "debug": False,
        "quiesce": "unbind",
        "watchdog": "off",
        "state": None,
    }


@pytest.mark.parametrize(
    ("cmdline", "message"),
    [
        ("bootmenu.timeout=soon", "timeout 'soon'"),
        ("bootmenu.console=wide", "COLSxROWS"),
        ("bootmenu.order=disk", "uuid:X"),
        ("bootmenu.colour=red", "unknown setting 'colour'"),
    ],
)
def test_bad_kernel_parameters_name_the_word(cmdline: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as info:
        Settings().with_cmdline(cmdline)
    assert cmdline in str(info.value)


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text("timeout = = 3\n")
    with pytest.raises(SettingsError, match=r"bad\.toml"):
        Settings.load(conf, "")


def test_recovery_settings_from_file_and_kernel_parameters(tmp_path: Path) -> None:
    from discovery.quiesce import Quiesce

    path = tmp_path / "settings.toml"
    path.write_text('quiesce = "off"\nwatchdog = 45\nstate = "LABEL=BMSTATE"\n')
    s = Settings.load(path, cmdline="")
    assert (s.quiesce, s.watchdog, str(s.state)) == (Quiesce.OFF, 45, "LABEL=BMSTATE")
    assert Settings().quiesce is Quiesce.UNBIND
    assert Settings().watchdog is None
    assert Settings().state is None
    s = Settings().with_cmdline("bootmenu.watchdog=30 bootmenu.state=UUID=ABCD-1234 bootmenu.quiesce=unbind")
    assert (s.watchdog, str(s.state)) == (30, "UUID=ABCD-1234")
    assert Settings(watchdog=30).with_cmdline("bootmenu.watchdog=off").watchdog is None
    for bad in ("bootmenu.watchdog=0.5", "bootmenu.watchdog=99999", "bootmenu.quiesce=maybe", "bootmenu.state=sda1"):
        with pytest.raises(SettingsError, match="kernel command line"):
            Settings().with_cmdline(bad)
