"""`TaskFuture`: a plain `concurrent.futures.Future` with public dispatch and run times, no private internals."""

from __future__ import annotations

import ast
import inspect
import time
from concurrent.futures import Future, wait

from skyward import futures
from skyward.futures import TaskFuture


def test_it_is_a_future_that_cancels_while_pending() -> None:
    future = TaskFuture()
    assert isinstance(future, Future)
    assert future.cancel() and future.cancelled()
    other = TaskFuture()
    other.set_result(7)
    assert wait([other], timeout=1).done == {other} and other.result() == 7


def test_dispatch_and_run_times() -> None:
    future = TaskFuture()
    assert (future.dispatches, future.dispatched_at, future.run_seconds) == (0, None, None)
    assert future.seconds_since_dispatch() == 0.0  # not sent yet: its clock has not started
    sent = time.monotonic()
    future._dispatched(sent)
    future._dispatched(sent + 1.0)  # sent again (a steal, a retry): the clock restarts
    assert future.dispatches == 2 and future.dispatched_at == sent + 1.0
    future._returned(sent + 1.5)
    assert future.run_seconds == 0.5  # from its last dispatch
    late = TaskFuture()
    late._dispatched(time.monotonic() - 2.0)
    assert 2.0 <= late.seconds_since_dispatch() < 10


def test_no_private_future_internals_are_touched() -> None:
    tree = ast.parse(inspect.getsource(futures))
    touched = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not touched & {"_condition", "_state", "_waiters", "_done_callbacks", "_result", "_exception"}
