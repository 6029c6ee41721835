"""bootmenu: the command-line entry point and the urwid boot menu client.

Top layer: it may import discovery, kexec_core and initramfs; nothing imports it.
"""
