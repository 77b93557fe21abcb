"""What becomes of a task when its node answers, crashes or is lost: delivered, sent again, charged a crash,
or failed (decisions over data, no I/O).

- A task withdrawn from a node's queue before it started (work stealing) is placed again.

- A task whose node is lost (its machine or link gone) is sent again elsewhere, up to `retries` times.
- A node whose worker process crashed is down while the pool finds out why and restarts it; its tasks wait for
  it or run elsewhere. A crash is charged to the tasks in its slots (process slots: exactly the task whose
  process died; thread slots: the oldest `capacity` tasks sent to it that had not finished, as the agent runs
  them first come, first served); tasks only waiting in its queue are sent again uncharged. A task charged
  `max_task_crashes` crashes fails with `WorkerCrashed`; until then it runs alone (see `skyward.placement`).
- Pinned tasks wait for their node while it is being restarted, and fail with it when it is lost. When no node
  is left, everything waiting fails.
"""

from __future__ import annotations

from collections.abc import Sequence

from skyward import reply as replies
from skyward.errors import NodeLost, WorkerCrashed, describe_exit
from skyward.placement import NodeSlots, Placement, Task

#: A node that crashes this many times in a row with no task to charge (a broken environment, a machine that
#: kills it at once) is not restarted again. Crashes with tasks running are bounded by ``max_task_crashes``.
MAX_IDLE_CRASHES = 3

Failure = tuple[Task, BaseException]
Outcome = replies.Reply | BaseException


def settle_reply(
    placement: Placement, task: Task, node: NodeSlots, outcome: Outcome, max_task_crashes: int
) -> Outcome | None:
    """`node` answered `task` (or running it failed): take it off the node. Returns the outcome to deliver
    (``None``: it is placed again)."""
    stolen = placement.unplace(task, node)
    if stolen and isinstance(outcome, replies.Cancelled):
        if not task.future.done():  # withdrawn before it started: run it elsewhere
            placement.requeue(task)
            return None
    elif isinstance(outcome, replies.Crashed):  # its process slot died under it; the agent lives on
        error = charge_crash(task, node, outcome.exit_code, outcome.signal, outcome.output, max_task_crashes)
        if error is None:
            placement.requeue(task)
            return None
        outcome = error
    elif not isinstance(outcome, BaseException):
        node.idle_crashes = 0
    placement.release(task, failed=isinstance(outcome, BaseException | replies.Error))
    return outcome


def lose_node(placement: Placement, node: NodeSlots, reason: str, *, retries: int) -> list[Failure]:
    """`node` is gone for good: its tasks go elsewhere (`retries` losses each at most); returns the failed."""
    orphans = placement.take_down(node, recovering=False)
    for orphan in orphans:
        orphan.losses += 1
    return _settle(placement, node, orphans, (), reason, retries)


def crash_node(
    placement: Placement,
    node: NodeSlots,
    exit_code: int | None,
    signal: int | None,
    output: tuple[str, ...],
    *,
    restart: bool,
    retries: int,
    max_task_crashes: int,
) -> tuple[list[Failure], bool]:
    """`node`'s worker process died (its machine is still there): charge the crash, settle its tasks.

    Returns the failed tasks and whether the node is to be restarted (it is then `recovering`).
    """
    # The oldest tasks it was sent are those its slots ran (see the module docstring).
    charged = [task for task in list(node.running.values())[: node.capacity] if not task.future.done()]
    node.idle_crashes = 0 if charged else node.idle_crashes + 1
    again = restart and node.idle_crashes < MAX_IDLE_CRASHES
    reason = f"its worker process died ({describe_exit(exit_code, signal)})"
    if not again:
        reason += f" and is not restarted ({no_restart_reason(restart, node)})"
    orphans = placement.take_down(node, recovering=again)
    failed: list[Failure] = []
    for task in charged:
        error = charge_crash(task, node, exit_code, signal, output, max_task_crashes)
        if error is not None:
            failed.append((task, error))
            orphans.remove(task)
    failed += _settle(placement, node, orphans, charged, reason, retries)
    return failed, again


def charge_crash(
    task: Task,
    node: NodeSlots,
    exit_code: int | None,
    signal: int | None,
    output: tuple[str, ...],
    max_task_crashes: int,
) -> WorkerCrashed | None:
    """Count a crash against `task`; the error to fail it with once it is out of crashes, else None."""
    task.crashes += 1
    if task.crashes < max_task_crashes:
        return None
    return WorkerCrashed(task.function, node.name, exit_code, signal, task.crashes, output)


def _settle(
    placement: Placement,
    node: NodeSlots,
    orphans: list[Task],
    charged: Sequence[Task],
    reason: str,
    retries: int,
) -> list[Failure]:
    """Send again what the down `node` held, or fail it: a lost node's tasks after `retries` losses, its
    pinned tasks unless it comes back, and everything when no node is left."""
    failed: list[Failure] = []
    survivors = placement.index.usable > 0
    for orphan in reversed(orphans):
        if orphan.pinned_node is not None:
            if node.recovering:
                node.pinned.appendleft(orphan)
            else:
                failed.append((orphan, NodeLost(f"task {orphan.id} lost with node {node.name}: {reason}")))
        elif survivors and (orphan in charged or orphan.losses <= retries):
            placement.ready.appendleft(orphan)
        else:
            failed.append((orphan, NodeLost(f"task {orphan.id} lost with node {node.name}: {reason}")))
    if not node.recovering:
        while node.pinned:
            failed.append((node.pinned.popleft(), NodeLost(f"node {node.name} is lost: {reason}")))
    if not survivors:
        everything = f"every node of the pool is lost (last: {node.name}: {reason})"
        while placement.ready:
            failed.append((placement.ready.popleft(), NodeLost(everything)))
        for window in list(placement.windows):
            while window.waiting:
                failed.append((window.waiting.popleft(), NodeLost(everything)))
    return failed


def no_restart_reason(restart: bool, node: NodeSlots) -> str:
    if not restart:
        return "restarts are off"
    return f"it died {node.idle_crashes} times in a row running nothing"
