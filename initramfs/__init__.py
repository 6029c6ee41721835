"""initramfs: builds the LinuxBoot payload (cpio writer, ELF dependency walker, modules, /init) and runs it in QEMU.

Imports nothing of the other packages at import time; it packages them.
"""
