"""Run joblib's own backend-parametrized tests (``joblib.test.test_parallel``, shipped in the joblib wheel) with
the skyward backend in joblib's backend list, inside one pool for the session.

``skyward_joblib`` is imported before joblib's test module, so ``"skyward"`` is in ``joblib.parallel.BACKENDS``
when that module builds its parameter lists (``BACKENDS``, ``RETURN_GENERATOR_BACKENDS``, ``ALL_VALID_BACKENDS``).
Only the cases with the skyward backend among their parameters run here; joblib's CI covers the others.

Run alone: ``uv run pytest plugins/joblib/tests/joblib_upstream -q`` (about 70 s on 2 CPUs). The cases are marked
``slow``: ``uv run pytest -m "not slow"`` leaves them out of a quick run; CI runs them.

Cases that cannot pass, each with its reason (strict: they fail the run if they start passing), are in
`EXPECTED_TO_FAIL`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import skyward_joblib  # noqa: F401  (registers "skyward" before joblib's test module is imported)

import skyward as sky

#: joblib test ids that cannot pass with the skyward backend, and why (none today).
EXPECTED_TO_FAIL: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "thread_unsafe: joblib's marker for pytest-run-parallel")
    config.addinivalue_line("markers", "no_cover: joblib's marker for its coverage runs")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = [item for item in items if item.path.parent.name == "joblib_upstream"]
    keep, drop = [], []
    for item in here:
        (keep if _uses_skyward(item) else drop).append(item)
    for item in keep:
        item.add_marker(pytest.mark.slow)
        if item.name in EXPECTED_TO_FAIL:
            item.add_marker(pytest.mark.xfail(reason=EXPECTED_TO_FAIL[item.name], strict=True))
    if drop:
        config.hook.pytest_deselected(items=drop)
        dropped = set(map(id, drop))
        items[:] = [item for item in items if id(item) not in dropped]


def _uses_skyward(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return False
    return (
        any("skyward" in str(value).lower() for value in callspec.params.values()) or "skyward" in item.name
    )


@pytest.fixture(scope="module", autouse=True)
def skyward_pool() -> Iterator[sky.ComputePool]:
    """Two local nodes with two thread slots each, the joblib plugin active while joblib's module runs (not
    longer: the block makes the pool every thread's backend)."""
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2), plugins=[sky.plugins.joblib()]) as pool:
        yield pool
