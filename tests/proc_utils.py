"""Helpers for tests that check which processes run and which are gone."""

from __future__ import annotations

import os
import time


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids: set[int], timeout: float = 15.0) -> set[int]:
    """Wait for `pids` to exit; return those still alive after `timeout`."""
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if process_exists(pid)}
        if alive:
            time.sleep(0.05)
    return alive


def ancestry() -> list[str]:
    """Command names of this process and its ancestors (e.g. to show that a task ran under sshd)."""
    names = []
    pid = os.getpid()
    while pid > 1:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        names.append(stat[stat.index("(") + 1 : stat.rindex(")")])
        pid = int(stat[stat.rindex(")") + 2 :].split()[1])
    return names


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most of the (start, end) intervals that were open at one time (tasks running at once)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best
