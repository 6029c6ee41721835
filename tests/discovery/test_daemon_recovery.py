"""The daemon's boot path with the machine steps pointed at a fake sysfs/dev/kmsg tree (issue 11 sections 2-4):
the order of the steps, what reaches the kernel log, undoing after a failed jump, and what a start after a watchdog
reset does (hold, or fall back to the next entry when the attempt record names the failed one)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from discovery.attempts import Attempt, FileStore
from discovery.daemon import Machine
from discovery.protocol import Boot, CountdownUpdate, EntryAdded, Level, Message
from discovery.settings import Settings
from discovery.watchdog import WDIOF_CARDRESET
from tests.discovery.fake_sysfs import FakeSysfs
from tests.discovery.test_daemon import (
    Client,
    DirMounts,
    FakeUdev,
    RecordingKexec,
    bls_tree,
    fs_event,
    is_entry,
    is_status,
    run,
    serving,
)


class JumpFails(RecordingKexec):
    """Everything works up to reboot(LINUX_REBOOT_CMD_KEXEC), which fails; the kmsg file is read at each step."""

    def __init__(self, kmsg: Path) -> None:
        super().__init__()
        self.kmsg = kmsg
        self.kmsg_at_jump = ""

    def load(self, plan: Any, *, dry_run: bool = False) -> None:
        self.calls.append("load")

    def release(self, *, mounts: Sequence[str] = ()) -> None:
        self.calls.append(f"release {len(mounts)}")

    def jump(self) -> None:
        from kexec_core.errors import KexecError

        self.calls.append("jump")
        self.kmsg_at_jump = self.kmsg.read_text()
        raise KexecError("reboot(LINUX_REBOOT_CMD_KEXEC)", 22, "")


def fake_machine(tmp_path: Path) -> tuple[Machine, FakeSysfs]:
    fake = FakeSysfs(tmp_path / "sys")
    fake.pci("0000:00:02.0", 0x010000, "virtio-pci")  # a virtio-blk disk
    fake.pci("0000:00:1f.2", 0x010601, "ahci")
    fake.pci("0000:00:01.0", 0x030000, "bochs-drm")
    (tmp_path / "kmsg").write_text("")
    (tmp_path / "printk").write_text("4\t4\t1\t7\n")  # `quiet`
    (tmp_path / "printk_devkmsg").write_text("ratelimit\n")
    dev = tmp_path / "dev"
    dev.mkdir()
    machine = Machine(
        fake.root,
        dev=dev,
        kmsg=tmp_path / "kmsg",
        printk=tmp_path / "printk",
        devkmsg=tmp_path / "printk_devkmsg",
        remount=False,
    )
    return machine, fake


def test_jump_steps_in_order_evidence_in_kmsg_and_undone_after_a_failed_jump(tmp_path: Path) -> None:
    machine, fake = fake_machine(tmp_path)
    fake.watchdog("watchdog0", "i6300ESB timer", 0)
    (machine.dev / "watchdog0").write_bytes(b"")  # not a watchdog: the ioctl fails, which is logged, not fatal
    state = tmp_path / "state"
    state.mkdir()
    (state / ".bootmenu-fs").write_text("label=BMSTATE\n")
    mounts = DirMounts({"/dev/vda2": bls_tree(tmp_path / "vda2", "Fedora")})
    udev = FakeUdev([fs_event("add", "/dev/vda2", label="root", uuid="1111")])
    kexec = JumpFails(tmp_path / "kmsg")
    settings = Settings(autoboot=False).with_cmdline("bootmenu.watchdog=30 bootmenu.state=LABEL=BMSTATE")

    async def scenario() -> None:
        from discovery.scan import filesystem_for

        async with serving(
            tmp_path,
            source=udev,
            mounts=mounts,
            roots=[filesystem_for(state)],
            dry_run=False,
            boot_api=kexec,
            machine=machine,
            settings=settings,
        ) as (_d, sock):
            client = await Client.connect(sock)
            await client.hello()
            added = await client.until(is_entry("Fedora"))
            assert isinstance(added, EntryAdded)
            await asyncio.sleep(0.3)  # the state directory's (empty) load settles too
            client.send(Boot(added.entry.id))
            for step in (
                "checking Fedora",
                "cmdline: 'initrd=\\\\initrd.img root=LABEL=Fedora ro'",
                "loading Fedora",
                "recording the boot",
            ):
                await client.until(is_status(step))
            await client.until(is_status("quiesce: unmounting"))
            await client.until(is_status("cannot boot Fedora", Level.ERROR))
            await client.until(is_status("asked for drivers again for 0000:00:02.0, 0000:00:1f.2"))
            client.close()

    run(scenario())
    assert kexec.calls[:4] == ["prepare", "load", "release 1", "jump"]
    kmsg = kexec.kmsg_at_jump
    # Quiesce lines, then one line per fact, then the watchdog: in this order, all before the jump.
    facts = [
        "entry 'Fedora'",
        "device vda2",
        "kernel vda2:/vmlinuz",
        "initrds vda2:/initrd.img",
        "cmdline initrd=\\initrd.img root=LABEL",
    ]
    facts += ["load method kexec_file_load", "quiesced 0000:00:02.0, 0000:00:1f.2", "watchdog arming /dev/watchdog0"]
    positions = [kmsg.index("quiesce: unbound 0000:00:02.0 from virtio-pci")]
    positions += [kmsg.index(f"bootmenu: jump: {fact}") for fact in facts]
    positions.append(kmsg.index("watchdog: not armed"))
    assert positions == sorted(positions), kmsg
    assert "bochs-drm" not in kmsg
    # The console prints notices from before the first quiesce line on, whatever `quiet` set.
    assert (tmp_path / "printk").read_text() == "6\n"
    assert (tmp_path / "printk_devkmsg").read_text() == "on\n"  # no record lost to the rate limit
    # The attempt record was written before the jump, into the state filesystem.
    record = FileStore(state, remount=False).read()
    assert record is not None
    assert record.title == "Fedora"
    assert record.device == "vda2"
    # After the failure the bus was asked to find drivers again.
    assert (fake.root / "bus" / "pci" / "drivers_probe").read_text() == "0000:00:1f.2"


def test_quiesce_off_leaves_the_drivers(tmp_path: Path) -> None:
    machine, _fake = fake_machine(tmp_path)
    mounts = DirMounts({"/dev/vda2": bls_tree(tmp_path / "vda2", "Fedora")})
    udev = FakeUdev([fs_event("add", "/dev/vda2", label="root", uuid="1111")])
    kexec = JumpFails(tmp_path / "kmsg")
    settings = Settings(autoboot=False).with_cmdline("bootmenu.quiesce=off")

    async def scenario() -> None:
        async with serving(
            tmp_path, source=udev, mounts=mounts, dry_run=False, boot_api=kexec, machine=machine, settings=settings
        ) as (_d, sock):
            client = await Client.connect(sock)
            await client.hello()
            added = await client.until(is_entry("Fedora"))
            assert isinstance(added, EntryAdded)
            client.send(Boot(added.entry.id))
            await client.until(is_status("cannot boot Fedora", Level.ERROR))
            client.close()

    run(scenario())
    assert "quiesce: off" in kexec.kmsg_at_jump
    assert "unbinding" not in kexec.kmsg_at_jump
    assert "jump: watchdog off" in kexec.kmsg_at_jump


def is_countdown(match: str, running: bool) -> Any:
    def check(m: Message) -> bool:
        if not isinstance(m, CountdownUpdate):
            return False
        c = m.countdown
        return match in c.reason and (c.remaining is not None) == running

    return check


def test_after_a_watchdog_reset_without_a_record_autoboot_is_held_and_says_why(tmp_path: Path) -> None:
    machine, fake = fake_machine(tmp_path)
    fake.watchdog("watchdog0", "i6300ESB timer", WDIOF_CARDRESET)
    root = bls_tree(tmp_path / "vda2", "Fedora", timeout=1)

    async def scenario() -> None:
        from discovery.scan import filesystem_for

        async with serving(tmp_path, roots=[filesystem_for(root)], machine=machine, settings=Settings()) as (d, sock):
            client = await Client.connect(sock)
            hello = await client.hello()
            assert any("did not come up" in s.message for s in hello.status)
            assert "held" in hello.countdown.reason
            await client.has_seen(is_entry("Fedora"))
            await asyncio.sleep(1.5)  # longer than the timeout: nothing boots
            assert not d.autoboot.active
            assert not any(isinstance(m, CountdownUpdate) and m.countdown.remaining for m in client.seen)
            client.close()

    run(scenario())


def test_after_a_watchdog_reset_the_record_names_the_failed_entry_and_the_next_one_autoboots(tmp_path: Path) -> None:
    machine, fake = fake_machine(tmp_path)
    fake.watchdog("watchdog0", "i6300ESB timer", WDIOF_CARDRESET)
    root = bls_tree(tmp_path / "vda2", "Hangs", "Works", timeout=1)
    state = tmp_path / "state"
    state.mkdir()
    (state / ".bootmenu-fs").write_text("label=BMSTATE\n")
    settings = Settings().with_cmdline("bootmenu.state=LABEL=BMSTATE")

    async def scenario() -> None:
        from discovery.scan import filesystem_for

        # The first start: learn the entry ids and write the record the jump to "Hangs" would have written.
        async with serving(tmp_path, roots=[filesystem_for(root)], settings=Settings(autoboot=False)) as (_d, sock):
            client = await Client.connect(sock)
            await client.hello()
            hangs = await client.until(is_entry("Hangs"))
            assert isinstance(hangs, EntryAdded)
            client.close()
        FileStore(state, remount=False).write(Attempt(hangs.entry.id, "Hangs", "vda2", 1700000000.0))

        roots = [filesystem_for(root), filesystem_for(state)]
        async with serving(tmp_path, roots=roots, machine=machine, settings=settings) as (d, sock):
            client = await Client.connect(sock)
            await client.hello()
            marked = await client.has_seen(lambda m: isinstance(m, EntryAdded) and m.entry.note != "")
            assert isinstance(marked, EntryAdded)
            assert marked.entry.entry.title == "Hangs"
            assert marked.entry.note == "did not come up last time"
            countdown = await client.has_seen(is_countdown("'Hangs' did not come up", running=True))
            assert isinstance(countdown, CountdownUpdate)
            works = d.find_entry(countdown.countdown.entry_id or "")
            assert works is not None
            assert works[1].entry.title == "Works"
            # The normal countdown runs out and the fallback boots (a dry run here).
            await client.until(is_status("dry run: Works would be loaded"))
            client.close()

    run(scenario())


def test_pstore_records_are_moved_to_run_and_announced_with_their_last_lines(tmp_path: Path) -> None:
    from discovery.log import RingHandler

    machine, fake = fake_machine(tmp_path)
    store = fake.root / "fs" / "pstore"
    store.mkdir(parents=True)
    panic = (
        "".join(f"<6>[ {n}.0] line {n}\n" for n in range(100)) + "Kernel panic - not syncing: VFS: Unable to mount\n"
    )
    (store / "dmesg-ramoops-0").write_text(panic)
    (store / "console-ramoops-0").write_text("console\n")
    run_dir = tmp_path / "run"
    machine = Machine(fake.root, kmsg=None, printk=None, devkmsg=None, run=run_dir)
    ring = RingHandler()
    logging.getLogger().addHandler(ring)
    logging.getLogger().setLevel(logging.INFO)

    async def scenario() -> None:
        async with serving(tmp_path, machine=machine, log_lines=ring.lines) as (_d, sock):
            client = await Client.connect(sock)
            hello = await client.hello()
            notices = [s.message for s in hello.status if "crash log" in s.message]
            assert notices, hello.status
            assert "dmesg-ramoops-0" in notices[0]
            assert "Kernel panic - not syncing: VFS: Unable to mount" in notices[0]
            assert (
                hello.countdown.reason
                == "The previous kernel crashed: Kernel panic - not syncing: VFS: Unable to mount"
            )
            client.close()

    try:
        run(scenario())
    finally:
        logging.getLogger().removeHandler(ring)
    assert (run_dir / "pstore" / "dmesg-ramoops-0").read_text() == panic
    assert (run_dir / "pstore" / "console-ramoops-0").exists()
    assert not list(store.iterdir()), "moved out of pstore, as systemd-pstore does"
    lines = ring.lines()
    assert any("dmesg-ramoops-0: Kernel panic - not syncing" in line for line in lines)
    assert not any("line 10\n" in line or line.endswith("line 10") for line in lines)  # only the tail


def test_with_efivarfs_the_record_is_an_efi_variable_and_needs_no_state_filesystem(tmp_path: Path) -> None:
    from dataclasses import replace

    from discovery.attempts import EfiStore

    machine, fake = fake_machine(tmp_path)
    fake.watchdog("watchdog0", "iTCO_wdt", WDIOF_CARDRESET)
    efivars = tmp_path / "efivars"
    efivars.mkdir()
    machine = replace(machine, efivars=efivars)
    root = bls_tree(tmp_path / "vda2", "Hangs", "Works", timeout=1)

    async def scenario() -> None:
        from discovery.scan import filesystem_for

        async with serving(tmp_path, roots=[filesystem_for(root)], settings=Settings(autoboot=False)) as (_d, sock):
            client = await Client.connect(sock)
            await client.hello()
            hangs = await client.until(is_entry("Hangs"))
            assert isinstance(hangs, EntryAdded)
            client.close()
        EfiStore(efivars).write(Attempt(hangs.entry.id, "Hangs", "vda2", 1700000000.0))
        async with serving(tmp_path, roots=[filesystem_for(root)], machine=machine, settings=Settings()) as (_d, sock):
            client = await Client.connect(sock)
            await client.hello()
            await client.until(is_status("dry run: Works would be loaded"))
            client.close()

    run(scenario())
