"""`ComputePool`: the lifecycle of a set of nodes, from plugins to teardown.

One entry path, whichever name the user writes (`sky.ComputePool` or `sky.Compute`):
plugins -> image -> provision -> connect -> `around_client` -> the user's block -> teardown.

Over ~300 lines (`ComputePool` ~360) on purpose: it is the public API, its constructor's docstring (rendered on the
API page) is a fifth of it, and each method is a short delegation to the scheduler, the deployment or the plugin
host; splitting it would scatter one page of API across modules.
"""

from __future__ import annotations

import contextvars
import secrets
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import ExitStack
from typing import Any, Self, TypeVar

from skyward import plugin_host
from skyward.blobs import BlobIndex
from skyward.dashboard import Dashboard, check_dashboard
from skyward.errors import NoActivePool, ProvisionError, SkywardError
from skyward.image import Image
from skyward.ioloop import shared_loop
from skyward.link import Link
from skyward.payload import EncodedTask, encode_task
from skyward.pool_conventions import PoolConventions
from skyward.pool_handle import PoolHandle
from skyward.pool_stats import PoolStats
from skyward.preload import ImportedOnLoad, loaded
from skyward.providers.base import Deployment, NodeInfo, Provider
from skyward.providers.local import Local
from skyward.recovery import NodeRecovery
from skyward.scheduler import NodeSlots, Scheduler, TaskFuture
from skyward.spec import ClusterSpec, Resources, Worker, check_honoured, resource_spellings
from skyward.volumes import S3Volume, check_volumes
from skyward.window import Window

R = TypeVar("R")

_current: contextvars.ContextVar[ComputePool | None] = contextvars.ContextVar("skyward_pool", default=None)
# Threads do not inherit context variables: threads started inside a block fall back to the innermost pool.
_active: list[ComputePool] = []
_active_lock = threading.Lock()


def current_pool() -> ComputePool:
    """The pool of the innermost active ``with`` block. Raises `NoActivePool` outside every block."""
    pool = _current.get()
    if pool is None:
        with _active_lock:
            pool = _active[-1] if _active else None
    if pool is None:
        raise NoActivePool("no active ComputePool: run this inside `with sky.ComputePool(...):`")
    return pool


class ComputePool(PoolConventions):
    """A set of nodes that run your functions, for the duration of a ``with`` block.

    Also a `concurrent.futures.Executor` (``submit``, ``map``, ``shutdown``), startable outside a block
    (``pool = sky.ComputePool(...).start()`` ... ``pool.close()``), and usable from asyncio
    (``async with``, ``await pool.submit_async(fn, x)``): see `skyward.pool_conventions`.

    Args:
        provider: where nodes run; ``None`` is `sky.Local()` (worker processes on this machine).
        nodes: how many nodes.
        worker: slots per node and how they run (`sky.Worker`).
        image: what each node has installed (`sky.Image`); plugins may extend it.
        plugins: plugin objects (e.g. ``sky.plugins.joblib()``), applied in this order.
        retries: how many times a task is sent again when its node is lost (its machine or link gone).
        max_task_crashes: how many times a task may crash the worker process that runs it (``os._exit``, a
            segfault, the OOM killer) before its future fails with `sky.WorkerCrashed`; until then it is sent
            again, alone on a node. Other tasks are not affected.
        restart_nodes: start a node's worker process again, on the same machine, when it dies while the
            machine is still there (``False``: such a node is lost, as one whose machine is gone).
        prefetch: tasks each node keeps queued beyond its slots, so a slot that frees up starts its next task
            without a round trip to the client; ``None`` is one per slot. Tasks queued on a busy node move to
            an idle one when nothing else is waiting (work stealing), so this costs no balance at the tail.
        lease: seconds a node keeps running without word from this client before it stops itself.
        dashboard: ``True`` (a free port) or a port number: serve a live dashboard on 127.0.0.1 for the life
            of the block, at `dashboard_url` (which carries its access token). Needs ``skyward[dashboard]``.
        cpu: at least this many vCPUs per node, e.g. ``8``.
        memory: at least this much memory per node, e.g. ``"32GB"``.
        accelerator: an accelerator and optional count per node, e.g. ``"T4"``, ``"A100:8"``.
        machine: a machine type by name, e.g. ``"m5.xlarge"``, instead of one chosen from the above.
        allocation: ``"spot-if-available"`` (the default), ``"always-spot"`` or ``"on-demand"``.
        vcpus: another name for ``cpu`` (the older docs' spelling); give one of the two.
        memory_gb: ``memory`` as a number of GB: ``memory_gb=16`` is ``memory="16GB"``; give one of the two.
        volume: `sky.S3Volume` entries, each an S3 prefix every node mounts before its first task.

    The resource parameters describe each node's machine (`sky.Resources`) for providers that choose machines
    (`sky.AWS`); the others refuse them with a ``ValueError``, never ignore them.

    Example::

        with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=4)) as pool:
            print(square(7) >> pool)
    """

    def __init__(
        self,
        provider: Provider | None = None,
        nodes: int = 1,
        worker: Worker | None = None,
        image: Image | None = None,
        plugins: Sequence[object] = (),
        *,
        retries: int = 3,
        max_task_crashes: int = 3,
        restart_nodes: bool = True,
        prefetch: int | None = None,
        lease: float = 60.0,
        dashboard: bool | int = False,
        cpu: int | None = None,
        memory: str | None = None,
        accelerator: str | None = None,
        machine: str | None = None,
        allocation: str | None = None,
        vcpus: int | None = None,
        memory_gb: float | None = None,
        volume: Sequence[S3Volume] | None = None,
    ) -> None:
        cpu, memory = resource_spellings(type(self).__name__, cpu, memory, vcpus, memory_gb)
        if not isinstance(nodes, int) or isinstance(nodes, bool) or nodes < 1:
            raise ValueError(f"nodes must be a positive int, got {nodes!r}")
        if worker is not None and not isinstance(worker, Worker):
            raise TypeError(f"worker must be a sky.Worker, got {type(worker).__name__}")
        if image is not None and not isinstance(image, Image):
            raise TypeError(f"image must be a sky.Image, got {type(image).__name__}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if type(max_task_crashes) is not int or max_task_crashes < 1:
            raise ValueError(f"max_task_crashes must be an int >= 1, got {max_task_crashes!r}")
        if lease <= 0:
            raise ValueError(f"lease must be positive, got {lease}")
        if prefetch is not None and (not isinstance(prefetch, int) or prefetch < 0):
            raise ValueError(f"prefetch must be an int >= 0 or None, got {prefetch!r}")
        self.provider: Provider = provider if provider is not None else Local()
        self.worker = worker or Worker()
        self.image = image or Image()
        self.plugins = tuple(plugins)
        plugin_host.manager(self.plugins)  # refuses a malformed plugin now, naming it and the hook
        self.retries = retries
        self.max_task_crashes = max_task_crashes
        self.restart_nodes = bool(restart_nodes)
        self.prefetch = self.worker.concurrency if prefetch is None else prefetch
        self.lease = lease
        self.dashboard = check_dashboard(dashboard)
        self._dashboard: Dashboard | None = None
        resources = Resources(cpu, memory, accelerator, machine, allocation)
        # "cannot be honoured here" says more than "not a valid value" on a provider that takes no such setting
        check_honoured(type(self).__name__, self.provider, resources)
        resources.validate()
        self.cluster = ClusterSpec(
            pool_id=f"sky-{uuid.uuid4().hex[:8]}",
            nodes=nodes,
            worker=self.worker,
            provider=self.provider.name,
            resources=resources,
            volumes=check_volumes(volume, type(self).__name__),
        )
        self._secret = secrets.token_bytes(32)
        self._deployment: Deployment | None = None
        self._scheduler: Scheduler | None = None
        self._links: list[Link] = []
        self._exit_stack: ExitStack | None = None
        self._context_token: contextvars.Token[ComputePool | None] | None = None
        self._heartbeat: Future[None] | None = None
        self._recovery: NodeRecovery | None = None
        self._blob_index = BlobIndex()
        self._task_preparers: list[Callable[[], None]] = []
        self._async_token: contextvars.Token[ComputePool | None] | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        if self._exit_stack is not None:
            raise SkywardError(
                f"pool {self.cluster.pool_id} is already started: close() it (or leave its `with` block) before "
                "starting it again"
            )
        stack = ExitStack()
        self._exit_stack = stack
        try:
            stack.callback(self._teardown)
            if self.dashboard is not None:  # from the start: it shows provisioning
                self._dashboard = Dashboard(self, self.dashboard)
                stack.callback(self._dashboard.close)
                self._dashboard.start()
            pm = plugin_host.manager(self.plugins)
            self.image = plugin_host.fold_image(pm, self.image, self.cluster)
            self._task_preparers = plugin_host.task_preparers(
                pm, provider=self.provider, cluster=self.cluster
            )
            self._deployment = self.provider.launch(self.cluster, self.image, self._secret, self.lease)
            self._connect()
            self._activate()
            stack.callback(self._deactivate)
            for manager in plugin_host.around_client(pm, pool=PoolHandle(self), cluster=self.cluster):
                stack.enter_context(manager)
        except BaseException:
            self._exit_stack = None
            stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        stack, self._exit_stack = self._exit_stack, None
        if stack is not None:
            stack.__exit__(*exc_info)  # type: ignore[arg-type]

    def _connect(self) -> None:
        assert self._deployment is not None
        io = shared_loop()
        self._links = [self._make_link(n.info.index) for n in self._deployment.nodes]
        connecting = [io.run(link.connect()) for link in self._links]
        for started, attempt in zip(self._deployment.nodes, connecting, strict=True):
            try:
                attempt.result()
            except SkywardError as exc:
                raise ProvisionError(
                    f"node {started.info.name} started but cannot be reached: {exc}"
                ) from exc
        slots = [
            NodeSlots(n.info.index, n.info.name, n.info.concurrency, link, prefetch=self.prefetch)
            for n, link in zip(self._deployment.nodes, self._links, strict=True)
        ]
        recovery = NodeRecovery(
            self._deployment, self._links, self._make_link, lease=self.lease, restart=self.restart_nodes
        )
        self._scheduler = Scheduler(
            slots,
            io,
            retries=self.retries,
            max_task_crashes=self.max_task_crashes,
            id_prefix=self.cluster.pool_id,
            on_node_down=recovery.on_node_down,
        )
        recovery.scheduler = self._scheduler
        for started in self._deployment.nodes:
            self._scheduler.stats.nodes[started.info.index].host = started.info.host
        self._recovery = recovery
        self._heartbeat = io.run(recovery.watch())

    def _unfinished(self) -> list[TaskFuture]:
        return self._scheduler.unfinished_futures() if self._scheduler is not None else []

    def _enter_context(self) -> None:
        self._async_token = _current.set(self)

    def _leave_context(self) -> None:
        token, self._async_token = self._async_token, None
        if token is not None:
            try:
                _current.reset(token)
            except ValueError:  # left from another context than the one it entered in
                _current.set(None)

    def _make_link(self, index: int) -> Link:
        """The client's link to node `index` as it runs now (at pool entry, and after a restart): the
        deployment's to make (casty for agents the provider started, in-process for `skyward.inprocess`)."""
        assert self._deployment is not None
        return self._deployment.link(index, self._secret)

    def _activate(self) -> None:
        self._context_token = _current.set(self)
        with _active_lock:
            _active.append(self)

    def _deactivate(self) -> None:
        if self._context_token is not None:
            try:
                _current.reset(self._context_token)
            except ValueError:  # exited from another context (e.g. another thread); nothing to restore there
                _current.set(None)
            self._context_token = None
        with _active_lock:
            if self in _active:
                _active.remove(self)

    def _teardown(self) -> None:
        io = shared_loop()
        if self._heartbeat is not None:
            io.loop.call_soon_threadsafe(self._heartbeat.cancel)
            self._heartbeat = None
        recovery, self._recovery = self._recovery, None
        if recovery is not None:
            io.loop.call_soon_threadsafe(recovery.stop)
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.close()
        links, self._links = self._links, []
        for link in links:
            try:
                io.run(link.close()).result(timeout=10)
            except Exception:  # noqa: BLE001, S110  (closing a dead link is best effort; the pool is ending)
                pass
        deployment, self._deployment = self._deployment, None
        if deployment is not None:
            deployment.close()

    # --- running work --------------------------------------------------------------------------------------

    def _require_scheduler(self) -> Scheduler:
        if self._scheduler is None:
            raise SkywardError("the pool is not active: use it inside `with sky.ComputePool(...) as pool:`")
        return self._scheduler

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> TaskFuture:
        """Run ``fn(*args, **kwargs)`` on a free slot; returns a `concurrent.futures.Future` (a `TaskFuture`).

        Raises `TypeError` at once when the call cannot be serialized. ``future.cancel()`` keeps the task from
        running while it waits (on the client or in its node's queue) and stops a running one in a process slot;
        it answers False for a task running in a thread slot, which runs on (see `TaskFuture`).
        """
        scheduler = self._require_scheduler()
        return scheduler.submit(self._encode(fn, args, kwargs))

    def window(self, limit: int | None, *, prefetch: bool = True, stop_on_error: bool = False) -> Window:
        """A lane into this pool with at most `limit` tasks in flight at once; the others wait, FIFO.

        Args:
            limit: tasks in flight (queued for a node or running) at once; ``None``: no bound of its own.
            prefetch: ``False`` sends its tasks only to idle slots, so each starts when it is sent
                (``future.dispatched_at``).
            stop_on_error: after its first failed task it admits nothing more (until you cancel it).

        Its ``submit`` returns each task's future at once. See `skyward.window.Window`.
        """
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise ValueError(f"limit must be an int >= 1 or None, got {limit!r}")
        scheduler = self._require_scheduler()
        state = scheduler.open_window(limit, prefetch=prefetch, stop_on_error=stop_on_error)
        return Window(self, scheduler, state)

    def submit_to(self, node: int, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> TaskFuture:
        """Run ``fn(*args, **kwargs)`` on the node of index `node` (see `nodes`); returns its future."""
        scheduler = self._require_scheduler()
        if not 0 <= node < len(scheduler.nodes):
            raise ValueError(f"no node {node}: this pool has nodes 0..{len(scheduler.nodes) - 1}")
        return scheduler.submit(self._encode(fn, args, kwargs), pinned_node=node)

    def broadcast(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> list[R]:
        """Run ``fn(*args, **kwargs)`` once on every live node; results in node order."""
        return [future.result() for future in self._submit_to_every_node(fn, args, kwargs)]

    def preload(self, *modules: str) -> list[TaskFuture]:
        """Start importing `modules` on every live node, without waiting; returns one future per node.

        Imports of big libraries take seconds on a node (scikit-learn: 5 s on a busy 2-CPU machine): started at
        pool entry, they overlap with the client's own work instead of delaying the first tasks. The modules
        are imported while the task is unpickled, as a task referring to them would import them, so they never
        race another slot's import of the same package. This client need not have imported them.
        """
        references = tuple(ImportedOnLoad(name) for name in modules)
        return self._submit_to_every_node(loaded, references, {})

    def _submit_to_every_node(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[TaskFuture]:
        """One call, encoded once, pinned to each live node in turn; futures in node order."""
        scheduler = self._require_scheduler()
        encoded = self._encode(fn, args, kwargs)
        return [scheduler.submit(encoded, pinned_node=node.index) for node in scheduler.nodes if node.alive]

    def _encode(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> EncodedTask:
        for prepare in self._task_preparers:  # skyward's code shipping (a default plugin) among them
            prepare()
        return encode_task(fn, args, kwargs, self._blob_index)

    def cancel_all(self) -> int:
        """Cancel every task of this pool that has not finished; returns how many were cancelled. Every future is
        cancelled at once, no node asked: a task running in a thread slot runs on to its end, its result
        dropped (`TaskFuture.cancel` asks, and answers False for it)."""
        return self._scheduler.cancel_all() if self._scheduler is not None else 0

    # --- introspection -------------------------------------------------------------------------------------

    @property
    def total_slots(self) -> int:
        """Slots of the live nodes: nodes x concurrency while none is lost."""
        return self._scheduler.total_slots if self._scheduler is not None else 0

    @property
    def concurrency(self) -> int:
        """Slots per node."""
        return self.worker.concurrency

    @property
    def nodes(self) -> list[NodeInfo]:
        """The live nodes, in order."""
        if self._deployment is None or self._scheduler is None:
            return []
        alive = {node.index for node in self._scheduler.nodes if node.alive}
        return [n.info for n in self._deployment.nodes if n.info.index in alive]

    @property
    def stats(self) -> PoolStats:
        """What the pool did, per node and in total (`skyward.pool_stats.PoolStats`; ``print`` shows a table)."""
        return self._scheduler.stats if self._scheduler is not None else PoolStats()

    @property
    def dashboard_url(self) -> str | None:
        """The live dashboard's URL, its access token included (``None`` without ``dashboard=``)."""
        return self._dashboard.url if self._dashboard is not None and self._dashboard.url else None

    @property
    def pool_id(self) -> str:
        return self.cluster.pool_id

    def __repr__(self) -> str:
        state = "active" if self._scheduler is not None else "inactive"
        return (
            f"ComputePool({self.cluster.pool_id}, provider={self.provider.name}, nodes={self.cluster.nodes}, "
            f"concurrency={self.worker.concurrency}, {state})"
        )


#: The same class under the name of the older docs: one entry path, whichever name is written.
Compute = ComputePool
