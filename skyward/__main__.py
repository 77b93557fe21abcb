"""``python -m skyward``: the same command line as the ``skyward`` console script."""

from skyward.cli import entry

entry()
