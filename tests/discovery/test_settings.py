"""Settings from a TOML file and `bootmenu.*` kernel parameters, the latter winning."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.settings import (
    DEFAULT_TIMEOUT,
    MAX_WARNING_LEN,
    MAX_WARNINGS,
    PARAMS,
    PAYLOAD_SETTINGS,
    Consumer,
    OrderKind,
    OrderRule,
    Settings,
    cmdline_flag,
)


def test_file_then_kernel_command_line_wins(tmp_path: Path) -> None:
    conf = tmp_path / "bootmenu.toml"
    conf.write_text('timeout = 5\nboot_order = ["label:root", "type:usb"]\nconsole = "100x30"\n')
    settings = Settings.load(conf, "quiet bootmenu.timeout=2 bootmenu.console=80x24 root=/dev/vda2")
    assert settings.timeout == 2
    assert settings.console == (80, 24)
    assert settings.boot_order == (OrderRule(OrderKind.LABEL, "root"), OrderRule(OrderKind.TYPE, "usb"))


def test_timeout_off_zero_and_config() -> None:
    off = Settings().with_cmdline("bootmenu.timeout=off")
    assert off.effective_timeout(5) is None
    zero = Settings().with_cmdline("bootmenu.timeout=0")
    assert zero.effective_timeout(5) == 0
    config = Settings().with_cmdline("bootmenu.timeout=config")
    assert config.effective_timeout(3) == 3
    assert config.effective_timeout(-1) is None, "GRUB timeout=-1 waits for the user"
    assert config.effective_timeout(None) == DEFAULT_TIMEOUT


def test_the_firmware_timeout_governs_whatever_the_config_says() -> None:
    assert Settings().effective_timeout(0) == DEFAULT_TIMEOUT, "a hidden Ubuntu menu (timeout=0) does not cut it"
    assert Settings().effective_timeout(-1) == DEFAULT_TIMEOUT
    assert Settings().with_cmdline("bootmenu.timeout=3").effective_timeout(30) == 3


def test_debug_flag_and_order_from_cmdline() -> None:
    s = Settings().with_cmdline("bootmenu.debug bootmenu.order=uuid:ABCD-1234,type:nvme")
    assert s.debug
    assert s.rank(uuid="abcd-1234", label="", kind="disk") == 0
    assert s.rank(uuid="", label="", kind="nvme") == 1
    assert s.rank(uuid="", label="", kind="usb") == 2


def test_hello_form_shows_off_and_console() -> None:
    s = Settings().with_cmdline("bootmenu.timeout=off bootmenu.console=132x43")
    data = s.to_json()
    assert (data["timeout"], data["console"], data["warnings"]) == ("off", "132x43", [])


def test_every_documented_parameter_is_known_and_sets_no_warning() -> None:
    words = {
        "bootmenu.shell=1", "bootmenu.shell", "bootmenu.ascii", "bootmenu.mono=1", "bootmenu.debug",
        "bootmenu.debug=0", "bootmenu.timeout=5", "bootmenu.timeout=off", "bootmenu.timeout=config",
        "bootmenu.order=label:root,type:usb", "bootmenu.console=80x24", "bootmenu.console_handoff=0",
        "bootmenu.autoboot_console=ttyS0", "bootmenu.autoboot_console=ttyS1,9600n8", "bootmenu.autoboot_console=none",
        "bootmenu.network=0", "bootmenu.network=yes", "bootmenu.network_interfaces=eth0,enp1s0",
        "bootmenu.ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:none", "bootmenu.ip=192.0.2.9:192.0.2.1:192.0.2.1:24",
        "bootmenu.quiesce=unbind", "bootmenu.quiesce=off", "bootmenu.watchdog=30", "bootmenu.watchdog=off",
        "bootmenu.state=LABEL=BMSTATE", "bootmenu.state=UUID=ABCD-1234",
        "bootmenu.timeline",
    }  # fmt: skip
    for param in (p for p in PARAMS if p.cmdline):
        assert any(w.partition("=")[0] == param.parameter for w in words), f"{param.parameter} is not tried here"
    for word in sorted(words):
        assert Settings().with_cmdline(f"quiet {word} root=/dev/vda2").warnings == (), word


@pytest.mark.parametrize(
    ("cmdline", "message"),
    [
        ("bootmenu.timeout=soon", "timeout 'soon'"),
        ("bootmenu.timeout=1e400", "not a number"),
        ("bootmenu.console=wide", "COLSxROWS"),
        ("bootmenu.order=disk", "uuid:X"),
        ("bootmenu.colour=red", "unknown parameter"),
        ("bootmenu.shell=maybe", "not a yes/no value"),
        ("bootmenu.timeout", "needs a value"),
    ],
)
def test_bad_kernel_parameters_are_warnings_naming_the_word(cmdline: str, message: str) -> None:
    settings = Settings().with_cmdline(f"bootmenu.debug {cmdline} bootmenu.console=100x30")
    (warning,) = settings.warnings
    assert message in warning
    assert cmdline in warning
    # The bad word is ignored; the good ones around it still count.
    assert settings.debug
    assert settings.console == (100, 30)
    assert settings.timeout == DEFAULT_TIMEOUT
    assert settings.autoboot


def test_bad_file_keys_are_warnings_and_good_ones_still_count(tmp_path: Path) -> None:
    conf = tmp_path / "settings.toml"
    conf.write_text('colour = "red"\ntimeout = "soon"\nconsole = "100x30"\n[boot]\norder = 1\n')
    settings = Settings.load(conf, "")
    assert settings.console == (100, 30)
    assert len(settings.warnings) == 3
    assert all(str(conf) in w for w in settings.warnings)
    assert "unknown setting 'colour'" in settings.warnings[0]
    assert "timeout 'soon'" in settings.warnings[1]
    assert "unknown setting 'boot'" in settings.warnings[2]


def test_kernel_parameters_for_init_and_menus_are_not_file_keys(tmp_path: Path) -> None:
    conf = tmp_path / "settings.toml"
    conf.write_text("shell = true\n")
    assert "unknown setting 'shell'" in Settings.load(conf, "").warnings[0]


def test_bad_toml_is_a_warning_naming_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text("timeout = = 3\n")
    settings = Settings.load(conf, "bootmenu.timeout=4")
    assert settings.timeout == 4
    (warning,) = settings.warnings
    assert "bad.toml" in warning
    assert "ignored" in warning


def test_unreadable_or_huge_file_is_a_warning(tmp_path: Path) -> None:
    assert "Is a directory" in Settings.load(tmp_path, "").warnings[0]
    huge = tmp_path / "huge.toml"
    huge.write_text("# " + "x" * 100_000 + "\n")
    assert "larger than" in Settings.load(huge, "").warnings[0]
    assert Settings.load(tmp_path / "absent.toml", "").warnings == ()


def test_warnings_are_bounded_in_number_and_length() -> None:
    cmdline = " ".join(f"bootmenu.x{i}={'y' * 5000}" for i in range(1000))
    warnings = Settings().with_cmdline(cmdline).warnings
    assert len(warnings) == MAX_WARNINGS
    assert all(len(w) <= MAX_WARNING_LEN for w in warnings)
    assert "left out" in warnings[-1]


def test_cmdline_flag_reads_yes_no_parameters_like_the_daemon() -> None:
    assert cmdline_flag("quiet bootmenu.ascii", "ascii") is True
    assert cmdline_flag("bootmenu.ascii=1 bootmenu.ascii=off", "ascii") is False, "the last one wins"
    assert cmdline_flag("bootmenu.ascii=maybe", "ascii") is None
    assert cmdline_flag("bootmenu.asciix", "ascii") is None


def test_readme_settings_table_is_generated_from_the_table() -> None:
    from tools import settings_table

    text = settings_table.README.read_text()
    assert settings_table.rendered(text) == text, "run: .venv/bin/python -m tools.settings_table"
    for param in PARAMS:
        assert (f"| `{param.parameter}` |" if param.cmdline else f"| - | `{param.key}` |") in text


def test_the_daemon_reads_the_payload_settings_file_by_default() -> None:
    from bootmenu import cmd_daemon

    assert cmd_daemon.PAYLOAD_SETTINGS == PAYLOAD_SETTINGS


def test_init_knows_the_parameters_for_init() -> None:
    init = (Path(__file__).resolve().parents[2] / "initramfs" / "data" / "init").read_text()
    for param in PARAMS:
        if Consumer.INIT in param.consumers:
            assert f"{param.parameter}=1" in init, param.parameter


def test_recovery_settings_from_file_and_kernel_parameters(tmp_path: Path) -> None:
    from discovery.quiesce import Quiesce

    path = tmp_path / "settings.toml"
    path.write_text('quiesce = "off"\nwatchdog = 45\nstate = "LABEL=BMSTATE"\n')
    s = Settings.load(path, cmdline="")
    assert (s.quiesce, s.watchdog, str(s.state)) == (Quiesce.OFF, 45, "LABEL=BMSTATE")
    assert (Settings().quiesce, Settings().watchdog, Settings().state) == (Quiesce.UNBIND, None, None)
    s = Settings().with_cmdline("bootmenu.watchdog=30 bootmenu.state=UUID=ABCD-1234 bootmenu.quiesce=unbind")
    assert (s.watchdog, str(s.state)) == (30, "UUID=ABCD-1234")
    assert Settings(watchdog=30).with_cmdline("bootmenu.watchdog=off").watchdog is None
    for bad in ("bootmenu.watchdog=0.5", "bootmenu.watchdog=99999", "bootmenu.quiesce=maybe", "bootmenu.state=sda1"):
        (warning,) = Settings(watchdog=30).with_cmdline(bad).warnings
        assert bad in warning
        assert Settings(watchdog=30).with_cmdline(bad).watchdog == 30  # the value keeps what it had


def test_static_ip_follows_the_kernel_ip_syntax() -> None:
    s = Settings().with_cmdline("bootmenu.ip=10.0.2.15:10.0.2.2:10.0.2.1:255.255.255.0:box:eth1:off:10.0.2.3")
    assert s.warnings == ()
    assert s.ip is not None
    assert (s.ip.client, s.ip.server, s.ip.gateway, s.ip.prefix_length, s.ip.device) == (
        "10.0.2.15", "10.0.2.2", "10.0.2.1", 24, "eth1",
    )  # fmt: skip
    assert (s.ip.dns, s.ip.dhcp_first) == (("10.0.2.3",), False)
    assert Settings().with_cmdline("bootmenu.ip=10.0.2.15::10.0.2.2:16").ip.dhcp_first  # type: ignore[union-attr]
    for bad, why in (
        ("10.0.2", "not client:server"),
        ("10.0.2.300::10.0.2.2:24", "client address '10.0.2.300'"),
        ("10.0.2.15::gw:24", "gateway address 'gw'"),
        ("10.0.2.15::10.0.2.2:255.0.255.0", "netmask '255.0.255.0'"),
        ("10.0.2.15::10.0.2.2:24::eth/0", "device 'eth/0'"),
        ("10.0.2.15::10.0.2.2:24::eth0:bootp6", "autoconf 'bootp6'"),
    ):
        [warning] = Settings().with_cmdline(f"bootmenu.ip={bad}").warnings
        assert why in warning, (bad, warning)
        assert "bootmenu.ip=" in warning, warning


def test_network_interfaces_from_the_file_and_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('network_interfaces = ["eth1", "enp2s0"]\nip = "10.0.2.15::10.0.2.2:24"\n')
    s = Settings().with_file(path)
    assert (s.network_interfaces, str(s.ip), s.warnings) == (("eth1", "enp2s0"), "10.0.2.15::10.0.2.2:24", ())
    assert Settings().with_cmdline("bootmenu.network_interfaces=eth0").network_interfaces == ("eth0",)
    [warning] = Settings().with_cmdline("bootmenu.network_interfaces=eth0,a:b").warnings
    assert "'a:b' is not an interface name" in warning
