"""What a user sees: the entries, default, devices and warnings GRUB configs produce through `load()`."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery import bls
from discovery.entry import SourceFormat
from discovery.fs import Platform
from discovery.loaders import LoadContext
from tests.discovery.grub.grubtree import default_title, env_block, kernel_files, make_fs, run, titles

CFG = "/boot/grub/grub.cfg"


def test_basic_entry_fields(tmp_path: Path) -> None:
    cfg = """set timeout=7
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --id deb-simple --users alice --unrestricted {
    insmod gzio
    linux /boot/vmlinuz-6.1 root=UUID=abcd ro "quiet  splash" console=ttyS0
    initrd /boot/ucode.img /boot/initrd.img-6.1
    devicetree /boot/dtb
}
"""
    fs = make_fs(tmp_path, {CFG: cfg, **kernel_files("/boot/vmlinuz-6.1", "/boot/ucode.img", "/boot/initrd.img-6.1")})
    result = run(fs)
    [entry] = result.entries
    assert entry.title == "Debian GNU/Linux"
    assert entry.kernel == "/boot/vmlinuz-6.1"
    assert entry.initrds == ("/boot/ucode.img", "/boot/initrd.img-6.1")
    assert entry.devicetree == "/boot/dtb"
    assert entry.cmdline == 'root=UUID=abcd ro "quiet  splash" console=ttyS0'
    assert entry.id == "deb-simple"
    assert entry.default
    assert entry.format is SourceFormat.GRUB
    assert (entry.config, entry.line, entry.device, entry.config_device) == (CFG, 2, "sda1", "sda1")
    assert result.timeout == 7.0
    assert result.configs == (CFG,)


def test_initrds_of_every_initrd_command_are_kept_in_order(tmp_path: Path) -> None:
    cfg = "menuentry A {\n linux16 /k\n initrd16 /a /b\n initrdefi /c\n}\n"
    result = run(make_fs(tmp_path, {CFG: cfg, **kernel_files("/k", "/a", "/b", "/c")}))
    assert result.entries[0].initrds == ("/a", "/b", "/c")


def test_only_entries_that_boot_linux_are_listed(tmp_path: Path) -> None:
    cfg = """
menuentry 'Windows' { chainloader /EFI/Microsoft/Boot/bootmgfw.efi }
menuentry 'UEFI Firmware Settings' { fwsetup }
hiddenentry 'Hidden Linux' { linux /k }
menuentry 'Linux' { linuxefi /k }
"""
    result = run(make_fs(tmp_path, {CFG: cfg, "/k": "k"}))
    assert titles(result) == ["Linux"]
    # `default` is unset, so GRUB would boot entry 0 (Windows); we can only mark a Linux entry, and say so.
    assert default_title(result) == "Linux"
    assert any("does not boot Linux" in d.message for d in result.diagnostics)


UBUNTU = """
function gfxmode {
    set gfxpayload="${1}"
    if [ "${1}" = "keep" ]; then
        set vt_handoff=vt.handoff=7
    else
        set vt_handoff=
    fi
}
if [ "${recordfail}" != 1 ]; then
  if [ -e ${prefix}/gfxblacklist.txt ]; then
    if hwmatch ${prefix}/gfxblacklist.txt 3; then
      if [ ${match} = 0 ]; then set linux_gfx_mode=keep; else set linux_gfx_mode=text; fi
    else
      set linux_gfx_mode=text
    fi
  else
    set linux_gfx_mode=keep
  fi
else
  set linux_gfx_mode=text
fi
export linux_gfx_mode
menuentry 'Ubuntu' --class ubuntu $menuentry_id_option 'gnulinux-simple-1234' {
    recordfail
    load_video
    gfxmode $linux_gfx_mode
    insmod gzio
    if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
    linux /boot/vmlinuz root=UUID=1234 ro quiet splash $vt_handoff
    initrd /boot/initrd.img
}
function recordfail { set recordfail=1; }
"""


def test_entry_bodies_run_at_boot_time_with_functions_of_the_whole_config(tmp_path: Path) -> None:
    fs = make_fs(tmp_path, {CFG: UBUNTU, **kernel_files("/boot/vmlinuz", "/boot/initrd.img")})
    [entry] = run(fs).entries
    assert entry.cmdline == "root=UUID=1234 ro quiet splash vt.handoff=7"
    assert entry.id == "gnulinux-simple-1234"
    assert not entry.warnings


def test_entry_body_sees_the_environment_at_menu_time_not_definition_time(tmp_path: Path) -> None:
    cfg = "set opts=early\nmenuentry A { linux /k $opts }\nset opts=late\n"
    [entry] = run(make_fs(tmp_path, {CFG: cfg, "/k": "k"})).entries
    assert entry.cmdline == "late"


def test_positional_parameters_in_entry_bodies(tmp_path: Path) -> None:
    cfg = "menuentry 'T' extra1 extra2 { linux /k title=$1 second=$2 n=$# }\n"
    [entry] = run(make_fs(tmp_path, {CFG: cfg, "/k": "k"})).entries
    assert entry.cmdline == "title=T second=extra1 n=3"


SUBMENUS = """
menuentry 'Top' --id top { linux /k top }
submenu 'Advanced' --id adv {
    menuentry 'Adv one' --id adv-1 { linux /k one }
    submenu 'Deeper' {
        menuentry 'Deep' --id deep { linux /k deep }
    }
    menuentry 'Adv two' --id adv-2 { linux /k two }
}
menuentry 'Last' { linux /k last }
"""


@pytest.mark.parametrize(
    ("default", "expected"),
    [
        ("", "Top"),
        ("0", "Top"),
        ("2", "Last"),
        ("top", "Top"),
        ("Last", "Last"),
        ("adv>adv-2", "Advanced>Adv two"),
        ("Advanced>Adv two", "Advanced>Adv two"),
        ("adv>1>deep", "Advanced>Deeper>Deep"),
        ("adv>Deeper>0", "Advanced>Deeper>Deep"),
        ("adv", "Advanced>Adv one"),
        ("nonexistent", "Top"),
        ("7", "Top"),
        ("adv>nothing", "Advanced>Adv one"),
    ],
)
def test_default_by_index_id_title_and_submenu_path(tmp_path: Path, default: str, expected: str) -> None:
    cfg = f"set default='{default}'\n" + SUBMENUS
    result = run(make_fs(tmp_path, {CFG: cfg, "/k": "k"}))
    assert titles(result) == ["Top", "Advanced>Adv one", "Advanced>Deeper>Deep", "Advanced>Adv two", "Last"]
    assert default_title(result) == expected
    assert result.entries[2].submenu == ("Advanced", "Deeper")


SAVED = """
if [ -s $prefix/grubenv ]; then
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="${saved_entry}"
fi
menuentry 'A' --id a { linux /k }
menuentry 'B' --id b { linux /k }
menuentry 'C' --id c { linux /k }
"""


def test_saved_entry_from_grubenv(tmp_path: Path) -> None:
    env = env_block(saved_entry="b")
    fs = make_fs(tmp_path, {CFG: SAVED, "/k": "k", "/boot/grub/grubenv": env})
    assert default_title(run(fs)) == "B"


def test_next_entry_wins_and_grubenv_is_never_written(tmp_path: Path) -> None:
    env = env_block(saved_entry="b", next_entry="C")
    fs = make_fs(tmp_path, {CFG: SAVED, "/k": "k", "/boot/grub/grubenv": env})
    assert default_title(run(fs)) == "C"
    assert (tmp_path / "boot/grub/grubenv").read_bytes() == env


def test_load_env_with_file_and_variable_list(tmp_path: Path) -> None:
    cfg = (
        "load_env -f ${config_directory}/other.env --skip-sig wanted\nmenuentry A { linux /k w=$wanted u=$unwanted }\n"
    )
    env = env_block(wanted="yes", unwanted="no")
    [entry] = run(make_fs(tmp_path, {CFG: cfg, "/k": "k", "/boot/grub/other.env": env})).entries
    assert entry.cmdline == "w=yes u="


def test_search_finds_another_filesystem(tmp_path: Path) -> None:
    cfg = """
search --no-floppy --fs-uuid --set=root --hint-bios=hd0,gpt2 --hint-efi=hd0,gpt2 ROOT-UUID
menuentry 'Other' { linux /vmlinuz ro }
menuentry 'Prefixed' { search.fs_label BOOTLBL bootdev ; linux ($bootdev)//vmlinuz-b }
menuentry 'Explicit' { linux (hd0,gpt2)/vmlinuz-own }
"""
    boot = make_fs(tmp_path / "esp", {CFG: cfg, "/vmlinuz-own": "k"}, name="sda1", uuid="ESP-UUID")
    root = make_fs(tmp_path / "root", {"/vmlinuz": "k"}, name="sda2", uuid="root-uuid")
    labelled = make_fs(tmp_path / "b", {"/vmlinuz-b": "k"}, name="sdb1", label="BOOTLBL")
    result = run(boot, root, labelled)
    devices = {e.title: (e.device, e.kernel, e.config_device, e.unresolved) for e in result.entries}
    assert devices["Other"] == ("sda2", "/vmlinuz", "sda1", None)
    assert devices["Prefixed"] == ("sdb1", "/vmlinuz-b", "sda1", None)
    # (hd0,gpt2) cannot be identified in a directory scan: the config's own filesystem.
    assert devices["Explicit"] == ("sda1", "/vmlinuz-own", "sda1", None)
    assert result.unresolved == ()


def test_search_that_finds_nothing_marks_entries_unresolved(tmp_path: Path) -> None:
    cfg = "search --no-floppy --fs-uuid --set=root 0a97befd\nmenuentry 'D' { linux /vmlinuz }\n"
    result = run(make_fs(tmp_path, {CFG: cfg}, uuid="other"))
    [entry] = result.entries
    assert entry.unresolved == "fs-uuid=0a97befd"
    assert entry.device == "sda1"
    assert result.unresolved == ("fs-uuid=0a97befd",)
    assert any(d.line == 1 and "0a97befd" in d.message for d in result.diagnostics)


def test_set_root_clears_a_failed_search(tmp_path: Path) -> None:
    cfg = "search -u --set missing\nset root='hd0,msdos1'\nmenuentry 'D' { linux ($root)/k }\n"
    [entry] = run(make_fs(tmp_path, {CFG: cfg, "/k": "k"})).entries
    assert (entry.device, entry.unresolved, entry.kernel) == ("sda1", None, "/k")


def test_source_and_syntax_errors_keep_the_rest_of_the_file(tmp_path: Path) -> None:
    cfg = """
menuentry 'Before' { linux /k }
if [ x = x ]; then
   menuentry 'Broken' { linux /k
fi
menuentry 'Brace' { linux /k {
}
source ${prefix}/custom.cfg
menuentry 'After' { linux /k }
"""
    custom = "menuentry 'Custom' { linux /k custom }\n"
    result = run(make_fs(tmp_path, {CFG: cfg, "/k": "k", "/boot/grub/custom.cfg": custom}))
    assert titles(result)[0] == "Before"
    assert titles(result)[-2:] == ["Custom", "After"]
    assert "Broken" not in titles(result)
    assert "Brace" not in titles(result)
    lines = sorted(d.line for d in result.diagnostics if d.file == CFG)
    assert {5, 6} <= set(lines)
    custom_entry = result.entries[titles(result).index("Custom")]
    assert custom_entry.config == "/boot/grub/custom.cfg"


def test_efi_stub_configfile_to_the_real_config_lists_entries_once(tmp_path: Path) -> None:
    stub = "search --no-floppy --fs-uuid --set=dev SELF\nset prefix=($dev)/boot/grub2\nconfigfile $prefix/grub.cfg\n"
    real = "menuentry 'Fedora' { linux /boot/vmlinuz $kernelopts }\nset kernelopts=root=x\n"
    files = {"/EFI/fedora/grub.cfg": stub, "/boot/grub2/grub.cfg": real, "/boot/vmlinuz": "k"}
    result = run(make_fs(tmp_path, files, uuid="self"))
    assert titles(result) == ["Fedora"]
    assert result.entries[0].cmdline == "root=x"
    assert result.entries[0].config == "/boot/grub2/grub.cfg"
    assert result.entries[0].default


def test_normal_with_a_file_shows_that_files_menu(tmp_path: Path) -> None:
    files = {"/EFI/BOOT/grub.cfg": "normal /boot/grub/real.cfg\n", "/boot/grub/real.cfg": "menuentry R { linux /k }\n"}
    result = run(make_fs(tmp_path, {**files, "/k": "k"}))
    assert titles(result) == ["R"]
    assert result.entries[0].config == "/boot/grub/real.cfg"


def test_efi_directory_is_found_case_insensitively(tmp_path: Path) -> None:
    files = {"/efi/Debian/GRUB.CFG": "menuentry D { linux /k }\n", "/k": "k"}
    result = run(make_fs(tmp_path, files))
    assert titles(result) == ["D"]
    assert result.entries[0].config == "/efi/Debian/GRUB.CFG"


def test_configfile_recursion_is_bounded(tmp_path: Path) -> None:
    cfg = "menuentry A { linux /k }\nconfigfile $config_file\n"
    result = run(make_fs(tmp_path, {CFG: cfg, "/k": "k"}))
    assert titles(result) == ["A"]
    assert any("deeper" in d.message for d in result.diagnostics)


def test_grub_platform_comes_from_the_context(tmp_path: Path) -> None:
    cfg = 'if [ "$grub_platform" = efi ]; then menuentry E { linux /k }; else menuentry P { linux /k }; fi\n'
    fs = make_fs(tmp_path, {CFG: cfg, "/k": "k"})
    assert titles(run(fs, firmware="efi")) == ["E"]
    assert titles(run(fs, firmware="pc")) == ["P"]


def test_runaway_entry_body_is_stopped_and_reported_on_that_entry(tmp_path: Path) -> None:
    cfg = "menuentry Loop { while true; do true; done; linux /k }\nmenuentry Fine { linux /k }\n"
    result = run(make_fs(tmp_path, {CFG: cfg, "/k": "k"}))
    loop = result.entries[titles(result).index("Loop")]
    assert any("iterations" in w.message for w in loop.warnings)
    assert "Fine" in titles(result)


def test_missing_kernel_is_a_warning_on_the_entry(tmp_path: Path) -> None:
    [entry] = run(make_fs(tmp_path, {CFG: "menuentry A { linux /nope }\n"})).entries
    assert any("/nope" in w.message and w.line > 0 for w in entry.warnings)


BLS_CFG = """
if [ -f ${config_directory}/grubenv ]; then
  load_env -f ${config_directory}/grubenv
elif [ -s $prefix/grubenv ]; then
  load_env
fi
set default="${saved_entry}"
if [ -z "${kernelopts}" ]; then
  set kernelopts="root=/dev/fallback ro"
fi
set tuned_params=""
set tuned_initrd=""
insmod blscfg
blscfg
menuentry 'After BLS' { linux /vmlinuz-x }
"""


def _bls_tree(tmp_path: Path, grubenv: bytes | None) -> dict[str, str | bytes]:
    entry = (
        "title Fedora ({v})\nversion {v}\nlinux /vmlinuz-{v}\ninitrd /initramfs-{v}.img $tuned_initrd\n"
        "options $kernelopts $tuned_params\n"
    )
    files: dict[str, str | bytes] = {
        "/grub2/grub.cfg": BLS_CFG,
        "/loader/entries/abc-6.5.9-300.fc39.x86_64.conf": entry.format(v="6.5.9-300.fc39.x86_64"),
        "/loader/entries/abc-6.10.2-200.fc40.x86_64.conf": entry.format(v="6.10.2-200.fc40.x86_64"),
        "/loader/entries/abc-0-rescue.conf": "title Rescue\nlinux /vmlinuz-0-rescue\noptions $kernelopts\n",
        "/vmlinuz-x": "k",
    }
    if grubenv is not None:
        files["/grub2/grubenv"] = grubenv
    return files


def test_blscfg_expands_entries_newest_first_with_grubenv_variables(tmp_path: Path) -> None:
    env = env_block(kernelopts="root=UUID=r ro rhgb", saved_entry="abc-6.5.9-300.fc39.x86_64")
    result = run(make_fs(tmp_path, _bls_tree(tmp_path, env)))
    assert titles(result) == [
        "Fedora (6.10.2-200.fc40.x86_64)",
        "Fedora (6.5.9-300.fc39.x86_64)",
        "Rescue",
        "After BLS",
    ]
    newest = result.entries[0]
    assert newest.kernel == "/vmlinuz-6.10.2-200.fc40.x86_64"
    assert newest.initrds == ("/initramfs-6.10.2-200.fc40.x86_64.img",)
    assert newest.cmdline == "root=UUID=r ro rhgb"
    assert newest.id == "abc-6.10.2-200.fc40.x86_64"
    assert newest.config == "/loader/entries/abc-6.10.2-200.fc40.x86_64.conf"
    assert default_title(result) == "Fedora (6.5.9-300.fc39.x86_64)"
    assert sorted(result.consumed) == sorted(
        f"/loader/entries/abc-{s}.conf" for s in ("6.5.9-300.fc39.x86_64", "6.10.2-200.fc40.x86_64", "0-rescue")
    )


def test_blscfg_falls_back_to_the_configs_kernelopts(tmp_path: Path) -> None:
    result = run(make_fs(tmp_path, _bls_tree(tmp_path, None)))
    assert result.entries[0].cmdline == "root=/dev/fallback ro"
    assert default_title(result) == "Fedora (6.10.2-200.fc40.x86_64)"


def test_blscfg_entries_get_grubs_boot_image_and_systemd_boot_reading_gets_none(tmp_path: Path) -> None:
    # rhboot's blscfg.c makes each entry the script `linux ($root)LINUX OPTIONS`; GRUB's x86 linux loader (and the
    # EFI ones) then prepend BOOT_IMAGE=<that first argument>, which is what a Fedora kernel shows in /proc/cmdline.
    # systemd-boot passes `options` (after its `initrd=` words) as they are: no BOOT_IMAGE (src/boot/boot.c).
    fs = make_fs(tmp_path, _bls_tree(tmp_path, env_block(kernelopts="root=UUID=r ro")))
    newest = run(fs).entries[0]
    assert newest.loader_args == ("BOOT_IMAGE=(sda1)/vmlinuz-6.10.2-200.fc40.x86_64",)
    assert newest.kernel_cmdline() == "BOOT_IMAGE=(sda1)/vmlinuz-6.10.2-200.fc40.x86_64 root=UUID=r ro"
    sdboot = {e.id: e for e in bls.load(fs, LoadContext(platform=Platform(firmware="efi"))).entries}
    read_by_sdboot = sdboot["abc-6.10.2-200.fc40.x86_64"]
    assert read_by_sdboot.loader_args == tuple("initrd=" + i.replace("/", "\\") for i in read_by_sdboot.initrds)
    assert "BOOT_IMAGE" not in read_by_sdboot.kernel_cmdline()


def test_load_never_raises_on_garbage(tmp_path: Path) -> None:
    fs = make_fs(tmp_path, {CFG: b"\xff\xfe\x00menuentry {{{ ' \" $ ${ \\"})
    result = run(fs)
    assert result.entries == ()
    assert result.diagnostics


def test_unterminated_quote_at_the_end_keeps_earlier_entries(tmp_path: Path) -> None:
    cfg = "menuentry A { linux /k }\nmenuentry B { linux /k 'oops\n}\n"
    result = run(make_fs(tmp_path, {CFG: cfg, "/k": "k"}))
    assert titles(result) == ["A"]
    assert any(d.line == 2 and "quote" in d.message for d in result.diagnostics)


def test_braces_glued_to_words_as_grub_lexes_them(tmp_path: Path) -> None:
    cfg = 'menuentry "a" {linux /k;}\nmenuentry "b"{linux /k}\nsubmenu "s"{\nmenuentry "c" { linux /k one; }}\n'
    result = run(make_fs(tmp_path, {CFG: cfg, "/k": "k"}))
    assert titles(result) == ["a", "b", "s>c"]
    assert result.entries[2].cmdline == "one"


def test_devices_named_by_uuid(tmp_path: Path) -> None:
    cfg = (
        "menuentry own { linux (OWN-UUID)/k }\n"
        "menuentry other { linux (other-uuid)/k2 }\n"
        "menuentry bad { linux (other-uuid/k2 }\n"
        "menuentry nofile { linux (other-uuid) }\n"
    )
    own = make_fs(tmp_path / "a", {CFG: cfg, "/k": "k"}, uuid="own-uuid")
    other = make_fs(tmp_path / "b", {"/k2": "k"}, name="sdb1", uuid="OTHER-UUID")
    result = run(own, other)
    assert [(e.title, e.device, e.kernel) for e in result.entries] == [("own", "sda1", "/k"), ("other", "sdb1", "/k2")]
    messages = " ".join(d.message for d in result.diagnostics)
    assert "invalid device" in messages
    assert "no kernel file name" in messages


def test_set_uses_only_its_first_argument_as_grub_does(tmp_path: Path) -> None:
    cfg = "set opts=root=/dev/sda1 ro quiet\nset broken\nmenuentry A { linux /k $opts }\n"
    result = run(make_fs(tmp_path, {CFG: cfg, "/k": "k"}))
    assert result.entries[0].cmdline == "root=/dev/sda1"
    assert any(d.line == 2 and "not an assignment" in d.message for d in result.diagnostics)


def test_positional_parameters_of_a_function_do_not_reach_entry_bodies(tmp_path: Path) -> None:
    # GRUB runs the body at boot with the entry's own arguments: `$2` of the defining function is gone.
    cfg = 'function f { menuentry "f$1" { linux $2 } ; menuentry "g$1" "$2" { linux $2 } }\nf a /k\n'
    result = run(make_fs(tmp_path, {CFG: cfg, "/k": "k"}))
    assert [(e.title, e.kernel) for e in result.entries] == [("ga", "/k")]
    assert any("filename expected" in d.message for d in result.diagnostics)


def test_independent_configs_on_one_filesystem_are_all_listed(tmp_path: Path) -> None:
    files = {
        CFG: "menuentry Main { linux /k }\n",
        "/EFI/other/grub.cfg": "set default=1\nmenuentry X { linux /k }\nmenuentry Y { linux /k }\n",
        "/k": "k",
    }
    result = run(make_fs(tmp_path, files))
    assert titles(result) == ["Main", "X", "Y"]
    assert [e.title for e in result.entries if e.default] == ["Main", "Y"]
    assert result.configs == (CFG, "/EFI/other/grub.cfg")


def test_entry_that_opens_another_config_is_listed_as_a_submenu(tmp_path: Path) -> None:
    cfg = (
        "set default='more>Rescue'\n"
        "menuentry 'Live' { linux /k live }\n"
        "menuentry 'More options' --id more { configfile /boot/grub/more.cfg }\n"
    )
    more = "menuentry 'Install' { linux /k install }\nmenuentry 'Rescue' { linux /k rescue }\n"
    result = run(make_fs(tmp_path, {CFG: cfg, "/boot/grub/more.cfg": more, "/k": "k"}))
    assert titles(result) == ["Live", "More options>Install", "More options>Rescue"]
    assert result.entries[2].config == "/boot/grub/more.cfg"
    assert default_title(result) == "More options>Rescue"


def test_cmdline_quoting_as_grub_builds_it(tmp_path: Path) -> None:
    cfg = """menuentry A { linux /k "a b" 'x"y' q\\' 'back\\slash' $empty plain }\n"""
    [entry] = run(make_fs(tmp_path, {CFG: cfg, "/k": "k"})).entries
    assert entry.cmdline == '"a b" x\\"y q\\\' back\\\\slash plain'


def test_search_by_file_both_forms(tmp_path: Path) -> None:
    cfg = (
        "search --no-floppy --file --set=r1 /marker-b\n"
        "search.file /marker-c r2\n"
        "menuentry B { linux ($r1)/kb }\n"
        "menuentry C { set root=$r2; linux /kc }\n"
    )
    own = make_fs(tmp_path / "a", {CFG: cfg})
    b = make_fs(tmp_path / "b", {"/marker-b": "", "/kb": "k"}, name="sdb1")
    c = make_fs(tmp_path / "c", {"/marker-c": "", "/kc": "k"}, name="sdc1")
    result = run(own, b, c)
    assert [(e.title, e.device) for e in result.entries] == [("B", "sdb1"), ("C", "sdc1")]


def test_ubuntu_saved_entry_names_a_submenu_path_of_ids(tmp_path: Path) -> None:
    cfg = """
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
set default="${saved_entry}"
menuentry 'Ubuntu' $menuentry_id_option 'gnulinux-simple-u' { linux /k simple }
submenu 'Advanced options for Ubuntu' $menuentry_id_option 'gnulinux-advanced-u' {
  menuentry 'Ubuntu, with Linux 6.8' $menuentry_id_option 'gnulinux-6.8-advanced-u' { linux /k new }
  menuentry 'Ubuntu, with Linux 6.5' $menuentry_id_option 'gnulinux-6.5-advanced-u' { linux /k old }
}
"""
    env = env_block(saved_entry="gnulinux-advanced-u>gnulinux-6.5-advanced-u")
    result = run(make_fs(tmp_path, {CFG: cfg, "/k": "k", "/boot/grub/grubenv": env}))
    assert default_title(result) == "Advanced options for Ubuntu>Ubuntu, with Linux 6.5"
    assert [e.id for e in result.entries] == ["gnulinux-simple-u", "gnulinux-6.8-advanced-u", "gnulinux-6.5-advanced-u"]


def test_warnings_belong_to_the_entry_that_caused_them(tmp_path: Path) -> None:
    cfg = "menuentry Bad { frobnicate; linux /k }\nmenuentry Good { linux /k }\nmenuentry Exit { linux /k; exit; x }\n"
    result = run(make_fs(tmp_path, {CFG: cfg, "/k": "k"}))
    bad, good, exited = result.entries
    assert [w.line for w in bad.warnings] == [1]
    assert "frobnicate" in bad.warnings[0].message
    assert good.warnings == ()
    assert exited.warnings == ()


def test_failed_search_into_another_variable_marks_entries_using_it(tmp_path: Path) -> None:
    cfg = "search --set=bootpart --label boot\nmenuentry C { linux ($bootpart)/vmlinuz }\nmenuentry D { linux /k }\n"
    result = run(make_fs(tmp_path, {CFG: cfg, "/k": "k"}))
    assert [(e.title, e.unresolved) for e in result.entries] == [("C", "label=boot"), ("D", None)]


def test_search_without_a_type_fails_and_keeps_root(tmp_path: Path) -> None:
    # GRUB 2.06 (search_wrap.c, and grub-emu): "unspecified search type"; $root stays, the kernel is the config's.
    cfg = "menuentry 'L' {\n search --set=root OTHER-UUID\n linux /vmlinux\n}\n"
    own = make_fs(tmp_path / "own", {CFG: cfg, "/vmlinux": "k"}, name="sda1", uuid="own")
    other = make_fs(tmp_path / "other", {"/vmlinux": "k"}, name="sdb1", uuid="OTHER-UUID")
    result = run(own, other)
    [entry] = result.entries
    assert (entry.device, entry.unresolved) == ("sda1", None)
    assert any(d.line == 2 and "unspecified search type" in d.message for d in entry.warnings)
