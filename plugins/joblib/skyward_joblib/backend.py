"""`SkywardBackend`: joblib's ``Parallel`` on the worker slots of a skyward pool (joblib >= 1.5 protocol).

joblib drives it like this for each ``Parallel(...)(tasks)`` call: ``configure`` -> ``start_call`` ->
``submit(batch, callback)`` for up to ``pre_dispatch`` batches -> each completion calls ``callback``, which reads
the outcome through ``retrieve_result_callback`` and dispatches the next batch -> ``stop_call`` -> ``terminate``.
The first task error (or a ``timeout``) makes joblib call ``abort_everything``. `SkywardBackend` is one class
over the usual ~150 lines for that reason: its methods are that protocol, called by joblib on one object, and they
share one call's state (its window, pool and blob policy).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from joblib._parallel_backends import AutoBatchingMixin, ParallelBackendBase

from skyward import current_pool
from skyward.blobs import SHARED, BlobPolicy
from skyward.errors import NoActivePool, SkywardError
from skyward.payload import WithBlobPolicy
from skyward.progress_display import CallProgress, call_progress
from skyward_joblib.nested import NestedBackend

if TYPE_CHECKING:
    from joblib import Parallel

    from skyward import ComputePool
    from skyward.futures import TaskFuture
    from skyward.window import Window

NOT_CONFIGURED = "skyward backend not configured: use it inside a ComputePool block"


class SkywardBackend(AutoBatchingMixin, ParallelBackendBase):
    """Runs joblib batches on the slots of a skyward `ComputePool`.

    About 200 lines, past the ~150 rule on purpose: it is joblib's `ParallelBackendBase` protocol (about a dozen
    methods joblib calls by name), each a short adapter over one pool window per ``Parallel`` call.

    Args:
        pool: the pool to run on. ``None`` means the innermost active pool, looked up at each ``Parallel`` call.
        task_timeout: a default ``timeout`` (seconds) for ``Parallel`` calls that set none; joblib applies it to
            each batch and raises ``TimeoutError`` when one takes longer.
        progress: show how many tasks of a call are done: ``True`` (a bar in a terminal, a line per tenth
            elsewhere, on stderr), ``False`` (never), ``None`` (a bar in a terminal once a call has run a second;
            nothing elsewhere, nor when the pool's provider is ``quiet``). E.g.
            ``joblib.parallel_config(backend="skyward", progress=True)``.
        nesting_level: as joblib passes it to every backend.
        inner_max_num_threads: as joblib passes it to every backend.
        **backend_kwargs: as joblib passes them to every backend.

    ``n_jobs``: ``-1`` is every live slot of the pool (``pool.total_slots``), ``-2`` all but one, and so on; a
    positive value is honoured as given (more than the pool's slots just queues on the pool), and at most that
    many batches run at once. ``n_jobs=1`` runs in this process, as with every joblib backend. ``None`` (unset)
    means 1, as joblib documents. A negative value that leaves one slot still runs on the pool, one batch at a
    time.

    Example::

        with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=4)) as pool:
            with joblib.parallel_config(backend=SkywardBackend(pool)):
                Parallel(n_jobs=-1)(delayed(f)(x) for x in range(100))
    """

    supports_retrieve_callback = True  # enables return_as="generator"/"generator_unordered" and timeout=
    uses_threads = False
    supports_sharedmem = False  # joblib falls back to local threads for require="sharedmem"
    supports_inner_max_num_threads = False

    def __init__(
        self,
        pool: ComputePool | None = None,
        *,
        task_timeout: float | None = None,
        progress: bool | None = None,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        **backend_kwargs: Any,
    ) -> None:
        super().__init__(
            nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads, **backend_kwargs
        )
        if task_timeout is not None and task_timeout <= 0:
            raise ValueError(f"task_timeout must be positive, got {task_timeout}")
        self.pool = pool
        self.task_timeout = task_timeout
        self.progress = progress
        self._shown: CallProgress | None = None  # this call's progress display
        self.parallel: Parallel | None = None
        self._window: Window | None = None  # this call's lane into the pool
        self._call_pool: ComputePool | None = None  # the pool of this call
        self._blob_policy = SHARED
        # How long the batch whose outcome this thread is delivering ran on the pool; see `batch_completed`.
        self._completing = threading.local()

    # --- the pool ------------------------------------------------------------------------------------------

    def _live_pool(self) -> ComputePool:
        """The pool to run on; raises `NoActivePool` outside every pool block or once the pool has ended."""
        pool = self.pool
        if pool is None:
            try:
                pool = current_pool()
            except NoActivePool:
                raise NoActivePool(NOT_CONFIGURED) from None
        if pool.total_slots < 1:  # the block has ended (or every node is lost)
            raise NoActivePool(f"{NOT_CONFIGURED} ({pool!r} has no live slots)")
        return pool

    def _concurrency(self, pool: ComputePool, n_jobs: int | None) -> int:
        """How many batches may run at once for `n_jobs` (joblib's convention: -1 is every live slot)."""
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            n_jobs = self.default_n_jobs
        if n_jobs < 0:
            return max(pool.total_slots + 1 + n_jobs, 1)
        return n_jobs

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """The worker count joblib plans with: -1 is every live slot of the pool.

        joblib runs a call it believes has one worker in this process. Only an explicit ``n_jobs=1`` (or unset)
        means that here; a negative ``n_jobs`` that leaves one slot (``-1`` on a one-slot pool) is reported as 2
        so the work still goes to the pool, where the window keeps it to one batch at a time.
        """
        return _planned(self._concurrency(self._live_pool(), n_jobs), n_jobs)

    # --- joblib's lifecycle --------------------------------------------------------------------------------

    def configure(
        self,
        n_jobs: int | None = 1,
        parallel: Parallel | None = None,
        prefer: str | None = None,
        require: str | None = None,
        **backend_kwargs: Any,
    ) -> int:
        pool = self._live_pool()
        concurrency = self._concurrency(pool, n_jobs)
        self.parallel = parallel
        # loky's max_nbytes and mmap_mode (joblib passes them to every backend): see `blob_policy`.
        self._blob_policy = blob_policy(
            backend_kwargs.get("max_nbytes", 0), backend_kwargs.get("mmap_mode", "r")
        )
        if self.task_timeout is not None and parallel is not None and parallel.timeout is None:
            parallel.timeout = self.task_timeout
        # A fresh window per call: late completions of an aborted call cannot touch the next one. It stops at the
        # first error (starts nothing more), and joblib then aborts the whole call, cancelling the window. Below the pool's slots it runs exactly `concurrency`
        # batches (n_jobs=3 runs 3); from all of its slots up, the nodes' slots already bound what runs, and the
        # nodes' queues (the pool's ``prefetch``) fill too, so a slot that finishes starts its next batch without
        # waiting for this client. With a timeout, nothing waits in the nodes' queues: a batch that reaches a node
        # starts there, and its clock with it.
        timed = parallel is not None and parallel.timeout is not None
        limit = concurrency if timed or concurrency < pool.total_slots else None
        self._window = pool.window(limit, prefetch=not timed, stop_on_error=True)
        self._window.label = f"joblib Parallel(n_jobs={n_jobs}): batches"  # its progress on the dashboard
        self._call_pool = pool
        if timed and parallel is not None and str(parallel.pre_dispatch).replace(" ", "") == "2*n_jobs":
            # joblib may time a batch that waits behind others on this client (in generator_unordered mode it
            # watches an arbitrary handed-over batch). Hand over no more batches than run at once: every batch
            # joblib times is on a slot. (joblib reads pre_dispatch after configure; an explicit value is kept.)
            parallel.pre_dispatch = concurrency
        return _planned(concurrency, n_jobs)

    def start_call(self) -> None:
        parallel, pool = self.parallel, self._call_pool
        if parallel is not None and pool is not None:
            self._shown = call_progress(parallel.n_tasks, "joblib Parallel", self.progress, quiet=pool.quiet)

    def stop_call(self) -> None:
        shown, self._shown = self._shown, None
        if shown is not None:
            shown.close()

    def submit(self, func: Callable[[], Any], callback: Callable[[Any], None] | None = None) -> Future[Any]:
        """Send one batch to the pool; `callback` runs with its future when it ends (success or not)."""
        window = self._window
        if window is None:
            raise RuntimeError("SkywardBackend.submit called before configure()")
        try:
            future: Future[Any] = window.submit(WithBlobPolicy(func, self._blob_policy))
        except Exception as exc:  # noqa: BLE001 - e.g. unpicklable arguments: the batch fails, not its sender
            future = Future()
            future.set_exception(exc)
            if callback is not None:
                future.add_done_callback(callback)  # joblib registers the error (and aborts) first
            window.cancel()  # as the window does at a batch's error: nothing more of this call starts
            return future
        if callback is not None:
            if not window.prefetch:  # timed (joblib's timeout=): count from when the batch reaches a node
                _time_from_dispatch(callback, future)  # type: ignore[arg-type]
            future.add_done_callback(callback)
        return future

    def retrieve_result_callback(self, out: Future[Any]) -> Any:
        """The batch's results, or its exception (with the remote traceback) raised."""
        self._completing.run_seconds = getattr(out, "run_seconds", None)
        return out.result()

    def batch_completed(self, batch_size: int, duration: float) -> None:
        # joblib measures from `submit`, which counts the time a batch waited in the window behind n_jobs others
        # (about one batch duration with the default pre_dispatch): that would halve the batch sizes it picks.
        # joblib calls this right after `retrieve_result_callback`, on the same thread: use the time the batch
        # really spent on a node (`TaskFuture.run_seconds`, from its dispatch until its outcome came back).
        run_seconds = getattr(self._completing, "run_seconds", None)
        self._completing.run_seconds = None
        shown, parallel = self._shown, self.parallel
        if shown is not None and parallel is not None:  # joblib counts this batch's tasks done right after
            still_dispatching = getattr(parallel, "_iterating", True)
            total = parallel.n_tasks or (None if still_dispatching else parallel.n_dispatched_tasks)
            shown.advance(batch_size, total=total)
        super().batch_completed(batch_size, run_seconds if run_seconds is not None else duration)

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """Drop the waiting batches and cancel the running ones (on their nodes, where not started yet)."""
        window = self._window
        if window is None:
            return
        # The cancelled window admits nothing more: a batch a racing callback still submits is cancelled at once.
        window.cancel()
        if ensure_ready and self._call_pool is not None:
            try:
                self._window = self._call_pool.window(
                    window.limit, prefetch=window.prefetch, stop_on_error=window.stop_on_error
                )
            except SkywardError:  # the pool has ended: the next call's configure says so
                self._window = None

    def terminate(self) -> None:
        # Nothing is left in flight after a finished call; after an abandoned one, whatever is left goes.
        if self._window is not None:
            self._window.cancel()
            self._window = None
        self.reset_batch_stats()

    def get_nested_backend(self) -> tuple[ParallelBackendBase, int | None]:
        """``Parallel`` inside a task runs sequentially on its node, ``backend="skyward"`` included.

        This object is pickled into every batch: `NestedBackend`, joblib's `SequentialBackend` (a few bytes) that
        registers the name ``"skyward"`` where it is unpickled.
        """
        return NestedBackend(nesting_level=(self.nesting_level or 0) + 1), None

    def __repr__(self) -> str:
        return f"SkywardBackend(pool={self.pool!r})"


def blob_policy(max_nbytes: int | None, mmap_mode: str | None) -> BlobPolicy:
    """What tasks get of large arguments, as loky gives them for ``Parallel(max_nbytes=, mmap_mode=)``.

    loky memory-maps arrays larger than ``max_nbytes`` with ``mmap_mode`` and pickles the others (so tasks get
    writable copies). Here, large arguments travel to each node once whatever the settings; tasks get:

    - ``mmap_mode="r"`` (joblib's default): objects larger than ``max_nbytes`` as the node's shared read-only
      copy, smaller ones as private writable copies;
    - ``max_nbytes=None``, ``mmap_mode=None`` or ``"c"``: private writable copies of all;
    - ``"r+"`` or ``"w+"``: private writable copies too. Unlike loky's, writes are seen neither by other tasks
      nor by the client.
    """
    if max_nbytes is None or mmap_mode != "r":
        return BlobPolicy(share_above=None)
    return BlobPolicy(share_above=int(max_nbytes))


class _SecondsSinceDispatch:
    """Stands in for the start of joblib's ``timeout`` clock of one batch, so that it counts from when the
    batch reaches a node, not while it waits on this client.

    joblib starts a batch's clock the first time its retrieval loop looks at the batch (which, in
    ``generator_unordered`` mode, may be while it still waits behind others) and compares ``now - start`` with the
    timeout. This object answers ``now - self`` with the seconds since the batch was last sent to a node (0 while
    it waits; a batch sent again after its node was lost gets a fresh clock), read from the task's public
    `TaskFuture.dispatched_at`. `BatchCompletionCallBack` keeps the start in ``_completion_timeout_counter``
    (joblib 1.5 and 1.6; tests/test_joblib_timeout_clock.py fails if that moves). When joblib itself resets it
    (``generator_unordered``, after another batch completed), its own clock takes over from its next look.
    """

    __slots__ = ("_future",)

    def __init__(self, future: TaskFuture) -> None:
        self._future = future

    def __rsub__(self, now: float) -> float:
        return self._future.seconds_since_dispatch()


def _time_from_dispatch(batch_callback: object, future: TaskFuture) -> None:
    if hasattr(batch_callback, "_completion_timeout_counter"):
        batch_callback._completion_timeout_counter = _SecondsSinceDispatch(future)  # type: ignore[attr-defined]


def _planned(concurrency: int, n_jobs: int | None) -> int:
    """The worker count to report to joblib for `concurrency` batches at once (see `effective_n_jobs`)."""
    if concurrency == 1 and n_jobs not in (1, None):
        return 2
    return concurrency
