"""GRUB 2 configuration interpreter: lexer, parser, evaluator and the commands that matter for finding boot entries.

Follows the GRUB 2.06 manual ("Shell-like scripting", "The list of command-line and menu entry commands") and the
behaviour of grub-core/script and grub-core/normal. `loader.load()` is the public entry point.
"""
