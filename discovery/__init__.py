"""discovery: boot entries, the per-format config loaders, device probing and the daemon.

Layer 2: imports kexec_core, never bootmenu. The model of everything a UI shows lives here.
"""
