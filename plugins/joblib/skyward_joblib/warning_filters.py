"""Keep ``warnings.filters`` loadable on the nodes while tasks are sent to them.

scikit-learn's ``Parallel`` pickles the current ``warnings.filters`` into every task. Unpickling a filter imports
its warning category on the node, so a category from a package the node lacks (pytest, a cloud SDK, a monitoring
library) makes every task fail before it starts. While a pool block is active, only the filters whose category
the nodes cannot import are set aside; the user's others (``ignore`` for scikit-learn's ``ConvergenceWarning``,
say) stay in force here and travel with the tasks. The exact previous list comes back on exit.

A category is loadable on the nodes when its module is

- from the standard library (or builtin);
- from a distribution the node image installs: the pool's ``Image.pip`` after the plugins' ``image_transform``
  (joblib; scikit-learn with the sklearn plugin; the user's entries), their dependencies, skyward's own runtime
  dependencies, skyward and its plugins;
- from the user's own source tree, which skyward ships to the nodes by value (`skyward.code_shipping`).
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from importlib.metadata import distributions
from types import ModuleType
from typing import Any, cast

from packaging.markers import default_environment
from packaging.utils import canonicalize_name

from skyward import Image
from skyward.bootstrap.requirements import pin_to_client, project_names, runtime_requirements
from skyward.code_shipping import is_local_source


def is_stdlib_category(category: object) -> bool:
    """True for builtin warning classes and those defined in standard-library modules."""
    module = getattr(category, "__module__", None)
    if not isinstance(module, str):
        return False
    top = module.partition(".")[0]
    return module == "builtins" or top in sys.stdlib_module_names


@functools.cache
def _distributions_of_top_modules() -> dict[str, frozenset[str]]:
    """Top-level module name -> canonical names of the installed distributions that provide it.

    Read from each distribution's ``top_level.txt``, else from the first path part of its ``RECORD`` entries: what
    `importlib.metadata.packages_distributions` reads too, without its ``stat()`` of every listed file (22,000 of
    them took about a second at pool entry on a 2-CPU machine; this reads about 60 small files).
    """
    found: dict[str, set[str]] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        listed = dist.read_text("top_level.txt")
        if listed:
            tops = set(listed.split())
        else:
            record = dist.read_text("RECORD") or ""
            tops = {_top_of(line.partition(",")[0]) for line in record.splitlines()} - {""}
        for top in tops:
            found.setdefault(top, set()).add(canonicalize_name(name))
    return {top: frozenset(names) for top, names in found.items()}


def _top_of(path: str) -> str:
    """The importable top-level name of one RECORD path (``numpy/core/x.py`` -> ``numpy``, ``six.py`` ->
    ``six``, ``_cffi.cpython-312-x86_64-linux-gnu.so`` -> ``_cffi``); "" for metadata, scripts and data."""
    first = path.split("/", 1)[0]
    if (
        not first
        or first == ".."
        or first.endswith((".dist-info", ".data", ".egg-info"))
        or first == "__pycache__"
    ):
        return ""
    return first.split(".", 1)[0] if "/" not in path else first


def node_distributions(image: Image) -> frozenset[str]:
    """Canonical names of the distributions a node built from `image` has installed."""
    markers = cast("dict[str, str]", dict(default_environment()))  # PEP 508 environment values are strings
    resolution = pin_to_client([*image.pip, *runtime_requirements()], markers, skip=project_names())
    return frozenset(resolution.pins) | project_names()


class NodeImports:
    """Answers "can a node built from this image import this category?" (see the module docstring)."""

    def __init__(self, image: Image | None) -> None:
        self._image = image

    @functools.cached_property
    def _installed(self) -> frozenset[str]:
        return node_distributions(self._image) if self._image is not None else frozenset()

    def can_load(self, category: object) -> bool:
        if is_stdlib_category(category):
            return True
        module = getattr(category, "__module__", None)
        if not isinstance(module, str):
            return False
        top = module.partition(".")[0]
        loaded = sys.modules.get(top)
        if isinstance(loaded, ModuleType) and is_local_source(top, loaded):
            return True  # the user's own code: it travels with the tasks
        return bool(_distributions_of_top_modules().get(top, frozenset()) & self._installed)

    def unloadable(self, filters: Iterable[tuple[object, ...]]) -> list[tuple[object, ...]]:
        return [entry for entry in filters if not self.can_load(entry[2])]


def _filters_mutated() -> None:
    # The C accelerator caches the filters; `warnings.filterwarnings` tells it about changes this way.
    notify = getattr(warnings, "_filters_mutated", None) or getattr(
        warnings, "_filters_mutated_lock_held", None
    )
    if notify is not None:
        notify()


@contextmanager
def portable_warning_filters(image: Image | None) -> Iterator[list[tuple[object, ...]]]:
    """Set aside, for the block, the filters whose category a node built from `image` cannot import.

    ``None`` keeps only standard-library categories. The list object ``warnings.filters`` is edited in place
    (scikit-learn holds a reference to it, not a copy), and on exit it holds exactly the entries it held before,
    the same objects in the same order: filters added inside the block are dropped with the rest. Yields the
    filters that were set aside.

    Filters added inside the block (an SDK imported there) are not screened: add them before the block, or
    keep their categories importable on the nodes.
    """
    filters = cast(
        "list[Any]", warnings.filters
    )  # a list at runtime (typeshed says Sequence); edited in place
    saved = list(filters)
    foreign = any(not is_stdlib_category(entry[2]) for entry in saved)
    removed = NodeImports(image).unloadable(saved) if foreign else []
    if removed:
        gone = {id(entry) for entry in removed}
        filters[:] = [entry for entry in saved if id(entry) not in gone]
        _filters_mutated()
    try:
        yield removed
    finally:
        filters[:] = saved
        _filters_mutated()


def stdlib_warning_filters() -> AbstractContextManager[list[tuple[object, ...]]]:
    """Keep only the filters whose category is from the standard library (`portable_warning_filters(None)`)."""
    return portable_warning_filters(None)
