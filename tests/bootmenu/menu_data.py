"""Protocol messages shaped like the demo's daemon sends: two disks, a GRUB submenu holding the default."""

from __future__ import annotations

from discovery import protocol as p
from discovery.entry import BootEntry, SourceFormat

ADVANCED = "Advanced options for Ubuntu"


def device(
    name: str, fstype: str = "ext4", label: str = "", state: p.DeviceState = p.DeviceState.MOUNTED
) -> p.DeviceInfo:
    return p.DeviceInfo(name=name, node=f"/dev/{name}", kind="disk", fstype=fstype, label=label, state=state)


def entry(
    eid: str, title: str, dev: str, *, submenu: tuple[str, ...] = (), default: bool = False, cmdline: str = "ro quiet"
) -> p.EntryInfo:
    return p.EntryInfo(
        eid,
        BootEntry(
            title=title,
            kernel="/boot/vmlinuz-6.8.0-31-generic",
            initrds=("/boot/initrd.img-6.8.0-31-generic",),
            cmdline=cmdline,
            default=default,
            submenu=submenu,
            format=SourceFormat.GRUB,
            config="/boot/grub/grub.cfg",
            line=109,
            device=dev,
            config_device=dev,
        ),
    )


def hello(countdown: p.Countdown | None = None) -> p.Hello:
    return p.Hello(
        devices=(device("vda2", label="root"), device("vdb1", "xfs", "boot")),
        entries=(
            entry("u1", "Ubuntu", "vda2"),
            entry("u2", "Ubuntu, with Linux 6.8.0-31-generic", "vda2", submenu=(ADVANCED,), default=True),
            entry("u3", "Ubuntu, with Linux 6.8.0-31-generic (recovery mode)", "vda2", submenu=(ADVANCED,)),
            entry("f1", "Fedora Linux (6.11.4-301.fc41.x86_64)", "vdb1", cmdline="root=UUID=5e8a ro rhgb quiet"),
            entry("f2", "Fedora Linux (0-rescue)", "vdb1"),
        ),
        status=(p.StatusLine(p.Level.INFO, "vda2: 3 boot entries", 0.0),),
        countdown=countdown or p.Countdown(),
        dry_run=True,
    )
