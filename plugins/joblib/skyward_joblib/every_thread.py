"""joblib's active backend for every thread of the process while a pool block is active.

joblib keeps the active configuration in a `threading.local` (``joblib.parallel._backend``): what
``parallel_config`` sets in one thread, no other thread sees. A pool block entered in the main thread would leave
``Parallel(n_jobs=-1)`` in a `ThreadPoolExecutor` (optuna's ``n_jobs``, a web handler, a GUI thread) on local loky
workers, silently. While at least one block is active, `ThreadConfigs` stands in for that object:

- a thread's own ``parallel_config`` is kept exactly as joblib keeps it (in joblib's own `threading.local`, which
  `ThreadConfigs` wraps), and wins, as joblib documents; a config of its own that names no backend
  (``parallel_config(n_jobs=2)``) gets the pool's backend for the block, with its other settings;
- a thread that has set none sees the innermost active block: the innermost one it entered itself, else the
  last one entered by any thread (the order `skyward.current_pool` follows). Each thread gets its own backend
  instance, as with its own ``parallel_config``: one backend object drives one ``Parallel`` call at a time.

When the last block ends, joblib's own object is put back: nothing of this module remains.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import joblib.parallel
from joblib.parallel import default_parallel_config

_UNSET_BACKEND = default_parallel_config["backend"]
NAME = "skyward"


@dataclass(eq=False)
class Activation:
    """One active pool block: the backend factory for its threads, and the thread that entered it."""

    factory: Callable[..., Any]
    thread: int = field(default_factory=threading.get_ident)
    pid: int = field(default_factory=os.getpid)  # a forked child inherits the list, not the pool
    number: int = field(default_factory=itertools.count().__next__)


class Borrowed(dict):  # type: ignore[type-arg]
    """A config a thread sees but did not set: when joblib stores it back, the thread's own value returns.

    ``parallel_config`` saves the config it finds and sets it back on exit; storing the pool's config into the
    thread would outlive the block, so `ThreadConfigs` stores `origin` instead (nothing, for a thread that had
    no config).
    """

    origin: dict[str, Any] | None

    def __init__(self, config: dict[str, Any], origin: dict[str, Any] | None) -> None:
        super().__init__(config)
        self.origin = origin


class ThreadConfigs:
    """Stands in for ``joblib.parallel._backend`` while pool blocks are active (see the module docstring)."""

    __slots__ = ("_instances", "_local", "_registry")

    def __init__(self, local: threading.local, registry: ActiveBlocks) -> None:
        object.__setattr__(self, "_local", local)
        object.__setattr__(self, "_registry", registry)
        # Per thread: the backend instance made for each activation it has used.
        object.__setattr__(self, "_instances", threading.local())

    def __getattr__(self, name: str) -> Any:
        local = object.__getattribute__(self, "_local")
        if name != "config":
            return getattr(local, name)
        own = getattr(local, "config", None)
        if own is not None and own["backend"] is not _UNSET_BACKEND:
            return own  # the thread chose a backend itself
        backend = self._backend_for_this_thread()
        if backend is None:
            if own is None:
                raise AttributeError(name)
            return own
        base = own if own is not None else default_parallel_config
        return Borrowed({**base, "backend": backend}, origin=own)

    def __setattr__(self, name: str, value: Any) -> None:
        local = object.__getattribute__(self, "_local")
        if isinstance(value, Borrowed):
            if value.origin is None:
                local.__dict__.pop(name, None)
                return
            value = value.origin
        setattr(local, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(object.__getattribute__(self, "_local"), name)

    def _backend_for_this_thread(self) -> Any:
        activation = object.__getattribute__(self, "_registry").innermost_here()
        if activation is None:
            return None
        instances = object.__getattribute__(self, "_instances").__dict__
        cached = instances.get("backend")
        if cached is not None and cached[0] is activation:
            return cached[1]
        backend = activation.factory()
        instances["backend"] = (activation, backend)
        return backend

    @property
    def wrapped(self) -> threading.local:
        return object.__getattribute__(self, "_local")


class ActiveBlocks:
    """The pool blocks active in this process, in the order they were entered; exits may come in any order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocks: list[Activation] = []
        self._installed: ThreadConfigs | None = None
        self._named_before: Callable[..., Any] | None = None
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # another thread may have held it at the fork

    def innermost_here(self) -> Activation | None:
        """The block this thread runs on: the innermost it entered itself, else the last one entered."""
        thread, pid = threading.get_ident(), os.getpid()
        with self._lock:
            blocks = [block for block in self._blocks if block.pid == pid]
        for block in reversed(blocks):
            if block.thread == thread:
                return block
        return blocks[-1] if blocks else None

    def backend_of_this_thread(self) -> Any:
        """The backend instance `joblib.parallel.get_active_backend` gives this thread now."""
        return joblib.parallel.get_active_backend()[0]

    def enter(self, factory: Callable[..., Any], named: Callable[..., Any]) -> Activation:
        """Make `factory`'s backend the one every thread without a backend of its own uses.

        `named` becomes ``BACKENDS["skyward"]`` while any block is active (it looks the block up itself).
        """
        activation = Activation(factory)
        with self._lock:
            if not self._blocks:
                configs = ThreadConfigs(joblib.parallel._backend, self)
                joblib.parallel._backend = configs
                self._installed = configs
                self._named_before = joblib.parallel.BACKENDS.get(NAME)
                joblib.parallel.BACKENDS[NAME] = named
            self._blocks.append(activation)
        return activation

    def exit(self, activation: Activation) -> None:
        """End `activation` (from any thread); after the last one joblib's own objects are back."""
        with self._lock:
            self._blocks.remove(activation)
            if self._blocks:
                return
            if self._installed is not None and joblib.parallel._backend is self._installed:
                joblib.parallel._backend = self._installed.wrapped
            self._installed = None
            if self._named_before is None:
                joblib.parallel.BACKENDS.pop(NAME, None)
            else:
                joblib.parallel.BACKENDS[NAME] = self._named_before
            self._named_before = None


#: The process's active blocks (all pools, all threads).
ACTIVE = ActiveBlocks()
