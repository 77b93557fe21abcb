"""Waiting for rented instances: running, with an address, and sshd answering; then the host key to pin.

Neither Verda nor VastAI shows an instance's host keys through its API (there is no console output to read, as
on EC2), so the key each instance presents once it answers is pinned for the pool: every later connection,
the bootstrap's and the workers', must present that same key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from skyward.errors import ProvisionError
from skyward.ioloop import shared_loop
from skyward.providers.aws.reach import presented_host_key, ssh_answers
from skyward.providers.rented.cloud import MachineCloud, MachineState, Say

_REPORT_EVERY = 15.0  # seconds between progress lines


@dataclass(frozen=True)
class ReadyMachine:
    """An instance whose sshd answers, with the host key pinned for it."""

    id: str
    host: str
    port: int
    key: str


def wait_for_machines(
    cloud: MachineCloud, ids: Sequence[str], timeout: float, say: Say
) -> list[ReadyMachine]:
    """Wait until every instance of `ids` runs and answers SSH, then read the host key each presents.

    Raises `ProvisionError` when one is gone, or when `timeout` seconds pass first (naming those not ready).
    """
    io = shared_loop()
    started = time.monotonic()
    deadline = started + timeout
    poll = min(2.0, max(0.1, timeout / 20))
    next_report = started + _REPORT_EVERY
    answered: dict[str, MachineState] = {}
    while True:
        states = cloud.describe(ids)
        gone = [s for s in states if s.status == "gone"]
        if gone:
            raise ProvisionError(
                "; ".join(f"{cloud.label} instance {s.id} is {s.detail or 'gone'}" for s in gone)
                + " before it could be used"
            )
        waiting = [s for s in states if s.id not in answered and s.status == "running" and s.host]
        if waiting:
            probe = max(0.2, min(3.0, deadline - time.monotonic()))
            answers = io.run(_probe_all(waiting, probe)).result(timeout=probe + 10)
            answered.update({s.id: s for s, ok in zip(waiting, answers, strict=True) if ok})
        if len(answered) == len(ids):
            return [_pin(answered[i], io, cloud.label) for i in ids]
        now = time.monotonic()
        if now >= deadline:
            late = [
                f"{s.id} ({s.detail or s.status}{f', {s.host}:{s.port} does not answer SSH' if s.host else ''})"
                for s in states
                if s.id not in answered
            ]
            raise ProvisionError(
                f"timed out: {len(late)} of {len(ids)} {cloud.label} instance(s) did not answer SSH within "
                f"{timeout:.0f}s: {'; '.join(late)}. See ssh_timeout=..."
            )
        if now >= next_report:
            next_report = now + _REPORT_EVERY
            say(
                f"waiting for SSH: {len(answered)} of {len(ids)} answer ({now - started:.0f}s of {timeout:.0f}s)"
            )
        time.sleep(poll)


async def _probe_all(states: list[MachineState], timeout: float) -> list[bool]:
    return list(await asyncio.gather(*(ssh_answers(s.host or "", s.port, timeout) for s in states)))


def _pin(state: MachineState, io: object, label: str) -> ReadyMachine:
    assert state.host is not None
    key = io.run(presented_host_key(state.host, state.port, 15.0)).result(timeout=30)  # type: ignore[attr-defined]
    if key is None:
        raise ProvisionError(f"{label} instance {state.id} ({state.host}:{state.port}) presented no host key")
    return ReadyMachine(state.id, state.host, state.port, key)
