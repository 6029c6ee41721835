"""`bootmenu passwd`: reads a password twice and prints its salted scrypt hash for the `password` setting."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "passwd",
        help="print a password hash for the `password` setting",
        description='Reads a password twice (not echoed) and prints `password = "$scrypt$..."`, a line for the '
        "daemon's settings file. With it set, the menu asks for the password before editing an entry, opening "
        "a shell, booting anything but the default, rebooting or powering off; autoboot needs none.",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import getpass

    from discovery.password import PasswordError, make

    try:
        first = getpass.getpass("Password: ")
        second = getpass.getpass("Again: ")
    except EOFError:
        print("bootmenu passwd: no password given", file=sys.stderr)
        return 1
    if first != second:
        print("bootmenu passwd: the two passwords differ; nothing printed", file=sys.stderr)
        return 1
    try:
        hashed = make(first)
    except PasswordError as exc:
        print(f"bootmenu passwd: {exc}", file=sys.stderr)
        return 1
    print(f'password = "{hashed}"')
    return 0
