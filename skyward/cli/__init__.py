"""The ``skyward`` command line (also ``python -m skyward``): tools for operators, not for running work.

    skyward plugins                  installed plugins: name, distribution, version, hooks
    skyward aws sweep [--yes]        list (then delete) what interrupted AWS pools left
    skyward doctor HOST...           check SSH hosts: key, Python, uv, disk, what a pool would install
    skyward prewarm HOST...          build the node environment on SSH hosts ahead of a pool

Built on the standard library's argparse: one subcommand per module of this package, each with a ``register``
that adds its parser and a ``run`` that returns the exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from skyward.cli import aws_command, plugins_command, ssh_commands

COMMANDS = (plugins_command, ssh_commands, aws_command)


def parser() -> argparse.ArgumentParser:
    import skyward

    top = argparse.ArgumentParser(prog="skyward", description="Operator tools for skyward pools.")
    top.add_argument("--version", action="version", version=f"skyward {skyward.__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: the process's arguments), run the subcommand, return its exit status."""
    args = parser().parse_args(argv)
    status: int = args.run(args)
    return status


def entry() -> None:
    """The console script."""
    sys.exit(main())
