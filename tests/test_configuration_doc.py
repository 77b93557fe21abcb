"""docs/configuration.md against the code: parameter defaults, environment variables and limits.

The page states every default, environment variable and limit in tables; these tests read the tables and compare
them with the code, so a default changed in one place and not the other fails here (the point of the page is
that a reader can trust it). They also keep the benchmark table that docs/comparison.md includes from
docs/benchmarks.md by line numbers cut where it should be.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import skyward as sky
from skyward.worker.native_threads import THREAD_VARIABLES

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "configuration.md"
REQUIRED = object()  # a parameter without a default ("required" on the page)


# --- reading the page ------------------------------------------------------------------------------------------


def table_after(text: str, heading: str) -> list[list[str]]:
    """The rows (cells stripped, header and rule dropped) of the first table after the line `heading`."""
    lines = text.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        raise AssertionError(f"docs/configuration.md has no heading line {heading!r}") from None
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break  # the next section: no table in this one
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    assert len(rows) > 2, f"no table under {heading!r}"
    return rows[2:]


def code_span(cell: str) -> str:
    match = re.fullmatch(r"`([^`]*)`", cell)
    assert match, f"expected one `code` span, got {cell!r}"
    return match.group(1)


def page_default(cell: str) -> object:
    """A default as the page writes it: a Python literal in backticks, or ``required``."""
    if cell == "required":
        return REQUIRED
    text = code_span(cell)
    # SSH's python is the client's minor version: the page writes it as 3.X.
    text = text.replace("3.X", f"{sys.version_info.major}.{sys.version_info.minor}")
    return ast.literal_eval(text)


def page_parameters(heading: str) -> dict[str, object]:
    rows = table_after(PAGE.read_text(), heading)
    return {code_span(row[0]): page_default(row[1]) for row in rows}


# --- reading the code ------------------------------------------------------------------------------------------


def code_defaults(obj: Callable[..., Any]) -> dict[str, object]:
    """Each parameter a user passes to `obj` (a dataclass, a class, a function or method) and its default."""
    if dataclasses.is_dataclass(obj):
        found: dict[str, object] = {}
        for field in dataclasses.fields(obj):
            if not field.init:
                continue
            if field.default is not dataclasses.MISSING:
                found[field.name] = field.default
            elif field.default_factory is not dataclasses.MISSING:
                found[field.name] = field.default_factory()
            else:
                found[field.name] = REQUIRED
        return found
    parameters = inspect.signature(obj).parameters.values()
    return {
        p.name: REQUIRED if p.default is p.empty else p.default
        for p in parameters
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


SECTIONS: dict[str, Callable[[], Callable[..., Any]]] = {
    "## `sky.ComputePool` (and `sky.Compute`)": lambda: sky.ComputePool,
    "## `sky.Worker`": lambda: sky.Worker,
    "## `sky.Image`": lambda: sky.Image,
    "## `sky.S3Volume`": lambda: sky.S3Volume,
    "### `sky.Local`": lambda: sky.Local,
    "### `sky.SSH`": lambda: sky.SSH,
    "### `sky.AWS`": lambda: sky.AWS,
    "### `sky.Slurm`": lambda: sky.Slurm,
    "### `sky.Verda`": lambda: sky.Verda,
    "### `sky.VastAI`": lambda: sky.VastAI,
    "### `sky.plugins.joblib(...)`": lambda: sky.plugins.load("joblib"),
    "### `sky.plugins.sklearn(...)`": lambda: sky.plugins.load("sklearn"),
    "## `pool.window(...)`": lambda: sky.ComputePool.window,
}


@pytest.mark.parametrize("heading", SECTIONS)
def test_parameter_table_matches_the_signature(heading: str) -> None:
    on_page = page_parameters(heading)
    in_code = code_defaults(SECTIONS[heading]())
    assert set(on_page) == set(in_code), (
        f"{heading}: parameters missing from the page {sorted(set(in_code) - set(on_page))}, "
        f"on the page but not in the code {sorted(set(on_page) - set(in_code))}"
    )
    drifted = {
        name: (on_page[name], in_code[name])
        for name in in_code
        if on_page[name] != in_code[name]
        or isinstance(on_page[name], bool) != isinstance(in_code[name], bool)
    }
    assert not drifted, f"{heading}: defaults differ, (page, code): {drifted}"


def test_compute_is_the_same_class() -> None:
    assert sky.Compute is sky.ComputePool
    assert "`sky.Compute`" in PAGE.read_text()


# --- environment variables -------------------------------------------------------------------------------------

_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def _is_environ(node: ast.expr) -> bool:
    """``os.environ``, ``environ``, or a local ``env`` built from it (the bootstrap's child environments)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ"
    return isinstance(node, ast.Name) and node.id in ("environ", "env")


def _constant(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and _ENV_NAME.fullmatch(node.value):
        return node.value
    return None


def environment_names(source: str) -> set[str]:
    """Variables a module reads or sets: ``environ[...]``, ``environ.get/pop/setdefault(...)``, ``getenv``,
    and the keywords of ``dict(os.environ, NAME=...)``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and _is_environ(node.value):
            name = _constant(node.slice)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            reads = func.attr == "getenv" or (
                func.attr in ("get", "pop", "setdefault") and _is_environ(func.value)
            )
            name = _constant(node.args[0]) if reads and node.args else None
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "dict"
            and node.args
            and _is_environ(node.args[0])
        ):
            names.update(k.arg for k in node.keywords if k.arg and _ENV_NAME.fullmatch(k.arg))
            continue
        else:
            continue
        if name is not None:
            names.add(name)
    return names


def shipped_sources() -> list[Path]:
    """skyward's and the plugins' modules (not their tests)."""
    files = list((ROOT / "skyward").rglob("*.py"))
    for plugin in (ROOT / "plugins").iterdir():
        files += [p for p in plugin.rglob("*.py") if "tests" not in p.relative_to(plugin).parts]
    return files


def test_the_scanner_finds_what_it_should() -> None:
    source = (
        "import os\n"
        "a = os.environ.get('SKYWARD_A')\nb = os.environ['SKYWARD_B']\nos.environ['SKYWARD_C'] = '1'\n"
        "d = os.getenv('SKYWARD_D')\ne = dict(os.environ, SKYWARD_E='1')\nenv['SKYWARD_F'] = 'x'\n"
        "g = os.environ.pop('SKYWARD_G', None)\nh = other.get('NOT_ENV')\n"
    )
    assert environment_names(source) == {f"SKYWARD_{c}" for c in "ABCDEFG"}


def test_every_environment_variable_in_the_code_is_on_the_page() -> None:
    found: dict[str, list[str]] = {}
    for path in shipped_sources():
        for name in environment_names(path.read_text()):
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    for name in THREAD_VARIABLES:  # set by the agent from a tuple, not by name
        found.setdefault(name, []).append("skyward/worker/native_threads.py")
    assert {"SKYWARD_CACHE_DIR", "SKYWARD_NODE", "OMP_NUM_THREADS"} <= set(found)  # the scan sees them
    table = table_after(PAGE.read_text(), "## Environment variables")
    on_page = {name for row in table for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row[0])}
    missing = {name: where for name, where in found.items() if name not in on_page}
    assert not missing, f"environment variables the code uses but docs/configuration.md omits: {missing}"


# --- limits ----------------------------------------------------------------------------------------------------

_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "s": 1, "lines": 1, "": 1}
#: Limits that must be on the page and compared (a row that stopped parsing must not pass silently).
KEY_LIMITS = {
    "skyward.transport.MAX_MESSAGE_BYTES",
    "skyward.transport.BLOB_CHUNK_BYTES",
    "skyward.blobs.BLOB_THRESHOLD",
    "skyward.wire.COMPRESS_THRESHOLD",
    "skyward.wire.MAX_DECOMPRESSED_BYTES",
    "skyward.worker.agent.REPLY_CACHE_BYTES",
    "skyward.worker.__main__.BLOB_CACHE_BYTES",
    "skyward.settling.MAX_IDLE_CRASHES",
}


def page_value(cell: str) -> float | None:
    """``128 MiB`` -> 134217728, ``65,536`` -> 65536, ``60 s`` -> 60; None for a formula."""
    match = re.fullmatch(r"([0-9][0-9,]*(?:\.[0-9]+)?) ?(B|KiB|MiB|GiB|s|lines|)", cell)
    if match is None:
        return None
    return float(match.group(1).replace(",", "")) * _UNITS[match.group(2)]


def code_value(path: str) -> object:
    """The value named by ``module.NAME``, ``module.Class.attr`` or ``module.callable(param)`` (its default)."""
    call = re.fullmatch(r"(.+)\((\w+)\)", path)
    dotted = call.group(1) if call else path
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            value = getattr(value, attr)
        break
    else:
        raise AssertionError(f"cannot import any part of {path!r}")
    if call:
        return code_defaults(value)[call.group(2)]
    return value


def test_limits_match_the_code() -> None:
    rows = table_after(PAGE.read_text(), "## Limits")
    compared: set[str] = set()
    for row in rows:
        value, source = row[1], row[2]
        number = page_value(value)
        paths = re.findall(r"`([a-z_][\w.]*(?:\(\w+\))?)`", source)
        if number is None or len(paths) != 1:
            continue  # a formula, or a row citing code without one value: read by eye
        assert code_value(paths[0]) == number, (
            f"{row[0]}: the page says {value}, {paths[0]} is {code_value(paths[0])}"
        )
        compared.add(paths[0])
    assert KEY_LIMITS <= compared, (
        f"limits not compared (missing or unparsable rows): {KEY_LIMITS - compared}"
    )


# --- the benchmark table docs/comparison.md includes -----------------------------------------------------------


def test_comparison_includes_the_whole_benchmark_table() -> None:
    comparison = (ROOT / "docs" / "comparison.md").read_text()
    assert '--8<-- "docs/benchmarks.md:suite-table"' in comparison, (
        "the comparison no longer includes the table"
    )
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    start, end = "<!-- --8<-- [start:suite-table] -->", "<!-- --8<-- [end:suite-table] -->"
    assert start in text and end in text, "docs/benchmarks.md lost the suite table's section markers"
    included = text.split(start, 1)[1].split(end, 1)[0].strip().splitlines()
    assert included[0].startswith("| runner | efficiency"), f"the section starts at {included[0]!r}"
    assert all(line.startswith("|") for line in included), "the section holds lines outside the table"
    runners = {line.split("|")[1].strip() for line in included[2:]}
    assert {"skyward", "loky", "dask", "ray"} <= runners
