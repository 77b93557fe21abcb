"""One Slurm job holding a pool's nodes: asked for with ``salloc``, watched, and cancelled.

``salloc ... cat``: the allocation has no batch script, so nothing runs in it but the agents that ``srun``
starts, and no node plays a "batch host" whose loss would end the job (``--no-kill`` keeps the job, and the
other nodes, when one fails). The command salloc runs here (on the submitting host) is ``cat`` reading a pipe
from the client: a dead man's switch. When the client process dies, however abruptly, or its SSH connection to
the login node drops, the pipe closes, ``cat`` ends, and salloc gives the allocation back. The client's own
teardown ``scancel``s first; the job's time limit bounds everything else.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from skyward.errors import ProvisionError
from skyward.providers.slurm.shell import Process, Shell

logger = logging.getLogger("skyward.slurm")

# salloc's first word on stderr: "salloc: Pending job allocation 123" or "salloc: Granted job allocation 123".
_JOB_ID = re.compile(r"job allocation (\d+)")
_FIELD = re.compile(r"(\w+)=(\S*)")
#: Node states in which a node is lost to the pool (``scontrol show node``'s State, before any ``+FLAG``).
LOST_NODE_STATES = frozenset(
    {"DOWN", "DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "FUTURE", "POWERED_DOWN"}
)
_ENDED = frozenset(
    {"CANCELLED", "COMPLETED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}
)


def fields(line: str) -> dict[str, str]:
    """``Key=Value`` pairs of one line of ``scontrol -o show ...``."""
    return dict(_FIELD.findall(line))


@dataclass(frozen=True, slots=True)
class JobState:
    state: str
    reason: str
    nodes: str  # Slurm's compressed list, e.g. "node[1-2]"


class Allocation:
    """The job of one pool: submit, wait until it runs, tell its nodes and their addresses, cancel."""

    def __init__(self, shell: Shell, salloc_args: Sequence[str], progress: Callable[[str], None]) -> None:
        self._shell = shell
        self._salloc_args = list(salloc_args)
        self._progress = progress
        self._salloc: Process | None = None
        self._stderr: list[str] = []
        self._id_known = threading.Event()
        self.job_id: str | None = None

    def submit(self, timeout: float = 60.0) -> str:
        """Ask for the allocation; returns the job id as soon as Slurm has queued it."""
        argv = ["salloc", *self._salloc_args, "cat"]
        self._salloc = self._shell.spawn(argv, stdin=True)  # stdin stays open for as long as the client lives
        threading.Thread(target=self._read_salloc, daemon=True, name="salloc-output").start()
        queued = self._id_known.wait(timeout)
        if self.job_id is None:
            self._kill_salloc()
            said = "\n".join(self._stderr) or "(nothing)"
            what = "refused the job" if queued else f"did not queue a job within {timeout:.0f}s"
            raise ProvisionError(f"salloc {what} ({' '.join(argv)}). It said:\n{said}")
        return self.job_id

    def _read_salloc(self) -> None:
        assert self._salloc is not None and self._salloc.stdout is not None
        for line in self._salloc.stdout:  # salloc writes its messages on stderr, merged into stdout here
            line = line.rstrip("\n")
            self._stderr.append(line)
            found = _JOB_ID.search(line)
            if found and self.job_id is None:
                self.job_id = found.group(1)
                self._id_known.set()
        self._id_known.set()  # salloc ended: with a job id or without one

    def wait_running(self, timeout: float) -> list[str]:
        """Wait until the job runs; returns its nodes' names. Reports PENDING and its reason as progress."""
        assert self.job_id is not None
        deadline = time.monotonic() + timeout
        last: JobState | None = None
        delay = 0.2
        while True:
            state = self.state()
            if state != last:
                where = f" on {state.nodes}" if state.state == "RUNNING" else ""
                reason = f" ({state.reason})" if state.reason not in ("", "None") else ""
                self._progress(f"slurm job {self.job_id}: {state.state}{reason}{where}")
                last = state
            if state.state == "RUNNING":
                return self.hostnames(state.nodes)
            if state.state in _ENDED or state.state == "GONE":
                raise ProvisionError(
                    f"slurm job {self.job_id} ended before it ran: {state.state} ({state.reason})"
                )
            if time.monotonic() >= deadline:
                raise ProvisionError(
                    f"slurm job {self.job_id} did not start within {timeout:.0f}s: it is {state.state} "
                    f"({state.reason or 'no reason given'}). It was cancelled. "
                    "Slurm(start_timeout=...) waits longer; "
                    "`sinfo` and `squeue` show what the cluster has."
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)

    def state(self) -> JobState:
        assert self.job_id is not None
        result = self._shell.run(["scontrol", "-o", "show", "job", self.job_id])
        if result.returncode != 0:  # purged after MinJobAge: long finished
            return JobState("GONE", result.stderr.strip(), "")
        job = fields(result.stdout.splitlines()[0] if result.stdout else "")
        nodes = job.get("NodeList", "")
        return JobState(
            job.get("JobState", "UNKNOWN"), job.get("Reason", ""), "" if nodes == "(null)" else nodes
        )

    def hostnames(self, nodelist: str) -> list[str]:
        result = self._shell.run(["scontrol", "show", "hostnames", nodelist])
        if result.returncode != 0:
            raise ProvisionError(f"scontrol show hostnames {nodelist} failed: {result.stderr.strip()}")
        return result.stdout.split()

    def node_addresses(self, names: Sequence[str]) -> dict[str, str]:
        """Each node's ``NodeAddr``: the address Slurm itself reaches it at."""
        return {name: info.get("NodeAddr", name) for name, info in self.node_info(names).items()}

    def node_info(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        result = self._shell.run(["scontrol", "-o", "show", "node", ",".join(names)])
        if result.returncode != 0:
            raise ProvisionError(f"scontrol show node {','.join(names)} failed: {result.stderr.strip()}")
        found = {}
        for line in result.stdout.splitlines():
            info = fields(line)
            if "NodeName" in info:
                found[info["NodeName"]] = info
        return found

    def node_lost(self, name: str) -> bool:
        """Whether node `name` is gone from the pool: DOWN, drained, failed, or the job no longer runs."""
        if self.job_id is None or self.state().state != "RUNNING":
            return True
        try:
            info = self.node_info([name]).get(name, {})
        except ProvisionError:
            return True
        states = set(info.get("State", "DOWN").split("+"))
        return bool(states & LOST_NODE_STATES) or "NOT_RESPONDING" in states

    def cancel(self) -> None:
        """``scancel`` the job, then let salloc end (safe to call more than once, and before it has an id)."""
        lost = self._shell.lost()
        if self.job_id is not None and lost is not None:
            logger.warning(
                "cannot scancel slurm job %s: %s. Its salloc ended with that connection, which gives the job "
                "back; at the latest its time limit ends it (`squeue -j %s` shows whether it is gone)",
                self.job_id, lost, self.job_id,
            )  # fmt: skip
        elif self.job_id is not None:
            result = self._shell.run(["scancel", self.job_id])
            if result.returncode != 0 and "already completing or completed" not in result.stderr:
                logger.warning("scancel %s failed: %s", self.job_id, result.stderr.strip())
        self._kill_salloc()

    def _kill_salloc(self) -> None:
        salloc = self._salloc
        if salloc is None:
            return
        try:
            salloc.stdin.close()  # cat ends, and salloc gives back what it holds
        except OSError:
            pass
        for ending in (None, salloc.terminate, salloc.kill):
            if salloc.poll() is not None:
                return
            if ending is not None:
                ending()
            try:
                salloc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                continue
