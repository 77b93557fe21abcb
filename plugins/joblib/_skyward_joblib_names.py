"""Makes ``"skyward"`` a joblib backend name in every interpreter of this environment, once joblib is imported.

joblib looks backend names up in a registry that imports fill, and has no plugin discovery. A process that never
imports `skyward_joblib` — a loky worker running a task that calls ``Parallel(backend="skyward")`` — would meet
``Invalid backend: skyward``. The ``skyward_joblib_names.pth`` file of the skyward-joblib distribution imports this
module at interpreter start-up. It waits on ``sys.meta_path`` for ``joblib.parallel`` to be imported, then
registers a factory that imports `skyward_joblib` on first use (`skyward_joblib.activation.named_backend`: the
active pool in the process that holds one; in place, nested, anywhere else) and removes itself.

It imports nothing else and swallows its own errors: it must never stop an interpreter from starting.
"""

import sys

_TARGET = "joblib.parallel"
_NAME = "skyward"


def _skyward_backend(*args, **kwargs):  # type: ignore[no-untyped-def]
    from skyward_joblib.activation import named_backend

    return named_backend(*args, **kwargs)


def _register(module):  # type: ignore[no-untyped-def]
    try:
        module.BACKENDS.setdefault(_NAME, _skyward_backend)
    except Exception:  # noqa: BLE001, S110  (a joblib without BACKENDS: nothing to do)
        pass


class _WhenJoblibParallelLoads:
    """A `sys.meta_path` finder that finds nothing itself: it wraps the real loader of ``joblib.parallel``."""

    def find_spec(self, name, path=None, target=None):  # type: ignore[no-untyped-def]
        if name != _TARGET:
            return None
        try:
            sys.meta_path.remove(self)
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                spec = find(name, path, target) if find is not None else None
                if spec is not None:
                    break
            else:
                return None
            loader = spec.loader
            execute = loader.exec_module

            def exec_module(module):  # type: ignore[no-untyped-def]
                execute(module)
                _register(module)

            loader.exec_module = exec_module
            return spec
        except Exception:  # noqa: BLE001  (let the normal import machinery handle it)
            return None


def install() -> None:
    try:
        joblib_parallel = sys.modules.get(_TARGET)
        if joblib_parallel is not None:
            _register(joblib_parallel)
        elif not any(isinstance(finder, _WhenJoblibParallelLoads) for finder in sys.meta_path):
            sys.meta_path.insert(0, _WhenJoblibParallelLoads())
    except Exception:  # noqa: BLE001, S110
        pass


install()
