"""System information read from a fake sysfs/procfs tree, and served by a real daemon with what it found per disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery import protocol, sysinfo
from discovery.protocol import GetSysinfo, ProtocolError, Sysinfo
from discovery.sysinfo import Disk, Nic, Partition, SystemInfo, Watchdog
from tests.discovery.test_daemon import Client, DirMounts, FakeUdev, bls_tree, fs_event, is_status, run, serving


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def fake_tree(base: Path) -> tuple[Path, Path]:
    sys, proc = base / "sys", base / "proc"
    dmi = "class/dmi/id/"
    write(
        sys,
        {
            dmi + "sys_vendor": "Supermicro\n",
            dmi + "product_name": "SYS-1029P-WTR\n",
            dmi + "product_version": "0123456789\n",
            dmi + "product_serial": "S123456X\n",
            dmi + "board_vendor": "Supermicro\n",
            dmi + "board_name": "X11DDW-L\n",
            dmi + "bios_vendor": "American Megatrends Inc.\n",
            dmi + "bios_version": "3.4\n",
            dmi + "bios_date": "11/25/2020\n",
            "firmware/efi/fw_platform_size": "64\n",
            "devices/system/cpu/online": "0-3,6\n",
            "block/vda/size": "2097152\n",
            "block/vda/removable": "0\n",
            "block/vda/ro": "0\n",
            "block/vda/vda1/partition": "1\n",
            "block/vda/vda1/size": "1048576\n",
            "block/vda/vda2/partition": "2\n",
            "block/vda/vda2/size": "1046528\n",
            "block/sr0/size": "0\n",
            "block/sr0/removable": "1\n",
            "block/sr0/device/vendor": "QEMU\n",
            "block/sr0/device/model": "QEMU DVD-ROM\n",
            "block/loop0/size": "0\n",
            "block/ram0/size": "8192\n",
            "class/net/lo/address": "00:00:00:00:00:00\n",
            "class/net/eth0/address": "52:54:00:12:34:56\n",
            "class/net/eth0/operstate": "up\n",
            "class/net/eth0/carrier": "1\n",
            "class/net/eth0/speed": "1000\n",
            "class/net/eth1/address": "52:54:00:ab:cd:ef\n",
            "class/net/eth1/operstate": "down\n",  # carrier and speed unreadable (EINVAL) while down
            "class/watchdog/watchdog0/identity": "i6300ESB timer\n",
            "class/watchdog/watchdog0/timeout": "30\n",
            "class/watchdog/watchdog0/state": "inactive\n",
        },
    )
    write(
        proc,
        {
            "cpuinfo": "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6230\n",
            "meminfo": "MemTotal:        4028440 kB\nMemFree:  1000 kB\n",
            "sys/kernel/osrelease": "6.1.0-57-amd64\n",
            "sys/kernel/version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1\n",
            "sys/kernel/arch": "x86_64\n",
        },
    )
    return sys, proc


def test_gather_reads_every_section_from_the_tree(tmp_path: Path) -> None:
    sys, proc = fake_tree(tmp_path)
    found = {"vda1": ("ext4", "1 boot entry"), "sr0": ("", "ignored: no medium")}
    info = sysinfo.gather(sys, proc, lambda name: found.get(name, ("", "")))
    assert info.machine == sysinfo.Machine(
        "Supermicro", "SYS-1029P-WTR", "0123456789", "S123456X", "Supermicro X11DDW-L"
    )
    assert info.firmware == sysinfo.Firmware("UEFI", "American Megatrends Inc.", "3.4", "11/25/2020")
    assert (info.cpus, info.cpu_model) == (5, "Intel(R) Xeon(R) Gold 6230")
    assert info.memory == 4028440 * 1024
    assert (info.kernel, info.architecture) == ("6.1.0-57-amd64", "x86_64")
    assert [d.name for d in info.disks] == ["sr0", "vda"], "ram and unused loop devices are not disks"
    vda = info.disks[1]
    assert vda.size == 1 << 30
    assert vda.partitions == (
        Partition("vda1", 512 << 20, "ext4", "1 boot entry"),
        Partition("vda2", 1046528 * 512, "", ""),
    )
    assert info.disks[0] == Disk("sr0", "QEMU QEMU DVD-ROM", 0, removable=True, found="ignored: no medium")
    assert info.nics == (
        Nic("eth0", "52:54:00:12:34:56", "up", True, 1000),
        Nic("eth1", "52:54:00:ab:cd:ef", "down", None, None),
    )
    assert info.watchdogs == (Watchdog("watchdog0", "i6300ESB timer", 30, "inactive"),)


def test_an_empty_tree_is_an_empty_screen_not_an_error(tmp_path: Path) -> None:
    info = sysinfo.gather(tmp_path / "sys", tmp_path / "proc")
    assert info == SystemInfo(), "missing files are empty values"


def test_bios_machine_and_devicetree_board(tmp_path: Path) -> None:
    write(tmp_path / "pc", {"class/dmi/id/bios_version": "1.16.2-debian-1.16.2-1\n"})
    assert sysinfo.firmware(tmp_path / "pc").kind == "BIOS"
    write(tmp_path / "arm", {"firmware/devicetree/base/model": "Raspberry Pi 4 Model B Rev 1.4\0"})
    assert sysinfo.firmware(tmp_path / "arm").kind == "devicetree"
    assert sysinfo.machine(tmp_path / "arm").product == "Raspberry Pi 4 Model B Rev 1.4"


def test_the_message_round_trips_and_wrong_field_types_are_refused(tmp_path: Path) -> None:
    info = sysinfo.gather(*fake_tree(tmp_path))
    assert protocol.decode(protocol.encode(Sysinfo(info))) == Sysinfo(info)
    for bad in (
        b'{"v":1,"type":"sysinfo","info":{"cpus":"4"}}',
        b'{"v":1,"type":"sysinfo","info":{"disks":[{"name":"vda","size":1.5}]}}',
        b'{"v":1,"type":"sysinfo","info":{"nics":[{"name":"eth0","carrier":"yes"}]}}',
        b'{"v":1,"type":"sysinfo","info":[]}',
    ):
        with pytest.raises(ProtocolError):
            protocol.decode(bad)


def test_the_daemon_answers_with_what_it_found_on_each_partition(tmp_path: Path) -> None:
    sys, proc = fake_tree(tmp_path)
    mounts = DirMounts({"/dev/vda1": bls_tree(tmp_path / "vda1", "Fedora")})
    udev = FakeUdev(
        [
            fs_event("add", "/dev/vda1", uuid="1111", label="boot"),
            fs_event("add", "/dev/vda2", fstype="swap", ID_FS_USAGE="other"),
        ]
    )

    async def scenario() -> None:
        async with serving(tmp_path, mounts=mounts, source=udev, sys_root=sys, proc_root=proc) as (_d, sock):
            client = await Client.connect(sock)
            await client.hello()
            await client.until(is_status("vda1: 1 boot entry"))
            client.send(GetSysinfo())
            reply = await client.until(lambda m: isinstance(m, Sysinfo))
            assert isinstance(reply, Sysinfo)
            (vda,) = [d for d in reply.info.disks if d.name == "vda"]
            assert vda.partitions[0].fstype == "ext4"
            assert vda.partitions[0].found == "1 boot entry"
            assert vda.partitions[1].fstype == "swap"
            assert vda.partitions[1].found.startswith("ignored")
            assert reply.info.machine.serial == "S123456X"
            client.close()

    run(scenario())
