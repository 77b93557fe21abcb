"""``skyward plugins``: the installed plugins, with the distribution that provides each and the hooks it
implements (read from the plugin its factory returns with no options)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from typing import Any

NAME = "plugins"


@dataclass(frozen=True)
class PluginRow:
    name: str
    distribution: str
    version: str
    target: str  # the entry point's "module:attribute"
    hooks: tuple[str, ...]
    problem: str = ""  # why the hooks could not be read, if they could not


def register(sub: Any) -> None:
    command = sub.add_parser(NAME, help="list installed plugins, their distributions, versions and hooks")
    command.add_argument("--json", action="store_true", help="one JSON object per plugin, for scripts")
    command.set_defaults(run=run)


def rows() -> list[PluginRow]:
    import pluggy

    from skyward import hooks
    from skyward.plugins import available

    probe = pluggy.PluginManager(hooks.PROJECT)
    found = []
    for name, ep in sorted(available().items()):
        dist = ep.dist
        hooked: tuple[str, ...] = ()
        problem = ""
        try:
            plugin = ep.load()()
            hooked = tuple(n for n in dir(plugin) if probe.parse_hookimpl_opts(plugin, n) is not None)
        except Exception as exc:  # noqa: BLE001  (a broken plugin is listed with its error, never hides the others)
            problem = f"{type(exc).__name__}: {exc}"
        found.append(
            PluginRow(
                name=name,
                distribution=dist.name if dist is not None else "?",
                version=dist.version if dist is not None else "?",
                target=ep.value,
                hooks=hooked,
                problem=problem,
            )
        )
    return found


def run(args: argparse.Namespace) -> int:
    found = rows()
    if args.json:
        for row in found:
            print(json.dumps(asdict(row)))
        return 0
    if not found:
        print("no skyward plugins are installed (a plugin is a package with a 'skyward.plugins' entry point)")
        return 0
    table = [("plugin", "distribution", "version", "hooks")]
    for row in found:
        table.append(
            (row.name, row.distribution, row.version, ", ".join(row.hooks) or f"(error: {row.problem})")
        )
    widths = [max(len(line[i]) for line in table) for i in range(3)]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line[:3], widths, strict=True)), line[3])
    return 1 if any(row.problem for row in found) else 0
