"""GRUB 2 configuration interpreter: lexer, parser, evaluator and the commands that matter for finding boot entries.

Follows the GRUB 2.06 manual ("Shell-like scripting", "The list of command-line and menu entry commands") and the
behaviour of grub-core/script and grub-core/normal. `loader.load()` is the public entry point.

Deliberate choices, where GRUB leaves room or a scan cannot do what a booting GRUB does:
- Every distinct grub.cfg found on a filesystem is evaluated; one that another evaluation read through
  `configfile`/`source` (the EFI stub chaining to /boot/grub2/grub.cfg) is not listed twice.
- Devices: `search` sets its variable to the found `Filesystem.name`; `$root` starts as the config's own filesystem
  and `$prefix`/`$config_directory` are `(NAME)/dir/of/grub.cfg`. A device GRUB names by BIOS/EFI position
  (`hd0,gpt2`) cannot be identified from a directory: it is the config's own filesystem. `(UUID)/path` is looked up
  by filesystem UUID (Petitboot's convention). A failed `search` leaves the variable unchanged, as GRUB does, and
  entries whose kernel lives on `$root` after it carry the spec (`fs-uuid=...`) in `unresolved`.
- An entry is a boot entry only when its body runs `linux`/`linux16`/`linuxefi`; a later `chainloader` etc. wins.
  Every file of every `initrd` command after the `linux` command is kept, in order.
- An entry whose body runs `configfile` is listed as a submenu holding that file's menu.
- When `default` names a non-Linux item (Windows, firmware setup), the first Linux entry is marked, with a warning.
- `set` uses only its first argument (`set x=a b` sets "a"), as GRUB's corecmd does.
- `search` without a type option searches by UUID (GRUB 2.06 refuses; Petitboot does the same).
- blscfg titles are not variable-expanded (GRUB adds them as given); `options` are, at boot time.
- `save_env` never writes; `$RANDOM` is a constant so scans are reproducible.
"""
