"""The backend nested calls get inside a skyward batch, and what makes ``"skyward"`` a known name there.

joblib pickles the backend's ``get_nested_backend()`` into every batch and makes it the active backend while the
batch runs. Nodes and worker processes do not import this plugin by themselves, so ``Parallel(backend="skyward")``
inside a task would meet joblib's ``Invalid backend: skyward`` where the ``skyward_joblib_names.pth`` start-up hook
did not run. Unpickling `NestedBackend` imports this package, which registers the name
(`skyward_joblib.activation.named_backend`): outside a pool block, a nested call on it runs in place, as this
backend does.
"""

from __future__ import annotations

from joblib._parallel_backends import SequentialBackend


class NestedBackend(SequentialBackend):
    """joblib's `SequentialBackend` (a few bytes in every batch), whose unpickling registers ``"skyward"``."""

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.nesting_level,))


def _rebuild(nesting_level: int | None) -> NestedBackend:
    import skyward_joblib  # noqa: F401  (registers "skyward" in this process)

    return NestedBackend(nesting_level=nesting_level)
