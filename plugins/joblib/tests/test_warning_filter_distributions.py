"""Which distribution provides a warning category's module: the same answer as the standard library's
`importlib.metadata.packages_distributions`, read without stat()-ing every installed file (that took about a
second at every pool entry with a third-party warning filter)."""

from __future__ import annotations

from importlib.metadata import packages_distributions

from packaging.utils import canonicalize_name
from skyward_joblib.warning_filters import _distributions_of_top_modules, _top_of


def test_every_module_the_standard_library_maps_is_mapped_to_the_same_distributions() -> None:
    reference = {
        top: frozenset(canonicalize_name(name) for name in names)
        for top, names in packages_distributions().items()
    }
    ours = _distributions_of_top_modules()
    assert {top: ours.get(top) for top in reference} == reference
    assert {"numpy", "sklearn", "joblib", "pluggy"} <= set(ours)


def test_record_paths_to_top_level_names() -> None:
    assert _top_of("numpy/core/multiarray.py") == "numpy"
    assert _top_of("six.py") == "six"
    assert _top_of("_cffi_backend.cpython-312-x86_64-linux-gnu.so") == "_cffi_backend"
    assert _top_of("numpy-2.3.0.dist-info/RECORD") == ""
    assert _top_of("../../bin/tool") == ""
