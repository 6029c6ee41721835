"""kexec_core: image inspection, preflight and the kexec syscalls.

Lowest layer: knows files, file descriptors and command lines; nothing of configs or UIs.
"""
