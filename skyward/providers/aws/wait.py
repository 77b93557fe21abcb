"""Waiting for a pool's instances: ``running``, then sshd answering, then host keys to trust.

One loop polls every instance until all of them are ready or ``ssh_timeout`` has passed, printing progress as
it goes. Nothing here creates anything: on any failure the caller tears the pool down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from skyward.errors import ProvisionError
from skyward.ioloop import shared_loop
from skyward.providers.aws.api import aws_call, error_code
from skyward.providers.aws.reach import host_keys_from_console, presented_host_key, ssh_answers

HostKeyPolicy = Literal["console", "console-or-first-use"]
Endpoint = Callable[[Mapping[str, Any]], tuple[str, int]]

_GONE = ("shutting-down", "terminated", "stopping", "stopped")
_REPORT_EVERY = 15.0  # seconds between progress lines
_CONSOLE_EVERY = 3.0  # seconds between two reads of one instance's console output


@dataclass
class _Node:
    instance_id: str
    state: str = "pending"
    host: str | None = None
    port: int = 22
    answered_at: float | None = None
    keys: list[str] = field(default_factory=list)
    console_read_at: float = float("-inf")
    latest_unsupported: bool = False

    def where(self) -> str:
        return f"{self.instance_id} ({self.host}:{self.port})" if self.host else self.instance_id


@dataclass(frozen=True)
class ReadyNode:
    """An instance whose sshd answers, with the host keys to trust for it and where they came from."""

    instance_id: str
    host: str
    port: int
    keys: tuple[str, ...]
    keys_from: Literal["console", "first-use"]


def wait_for_nodes(
    ec2: Any,
    instance_ids: list[str],
    *,
    endpoint: Endpoint,
    timeout: float,
    host_keys: HostKeyPolicy,
    host_key_wait: float,
    say: Callable[[str], None],
    unreachable_hint: str = "",
) -> list[ReadyNode]:
    """Wait until every instance runs, answers SSH at ``endpoint(instance)`` and has host keys to trust.

    `timeout` bounds the wait for SSH to answer, from now. Host keys are read from each instance's console
    output for up to `host_key_wait` seconds after it answers; then ``"console-or-first-use"`` pins the key the
    instance presents, and ``"console"`` gives up. Raises `ProvisionError` saying which instances were not
    ready, and why, when they do not make it in time.
    """
    nodes = [_Node(instance_id) for instance_id in instance_ids]
    io = shared_loop()
    started = time.monotonic()
    deadline = started + timeout
    poll = min(2.0, max(0.1, timeout / 20))
    next_report = started + _REPORT_EVERY
    while True:
        _refresh_states(ec2, nodes, endpoint)
        now = time.monotonic()
        waiting = [n for n in nodes if n.state == "running" and n.host is not None and n.answered_at is None]
        if waiting:
            probe_timeout = max(0.2, min(3.0, deadline - now))
            answers = io.run(_probe_all(waiting, probe_timeout)).result(timeout=probe_timeout + 10)
            now = time.monotonic()
            for node, answered in zip(waiting, answers, strict=True):
                if answered:
                    node.answered_at = now
        for node in nodes:
            if (
                node.answered_at is not None
                and not node.keys
                and now - node.console_read_at >= _CONSOLE_EVERY
            ):
                node.console_read_at = now
                node.keys = _console_keys(ec2, node)
        if all(n.answered_at is not None for n in nodes):
            pending_keys = [n for n in nodes if not n.keys and now - n.answered_at < host_key_wait]  # type: ignore[operator]
            if not pending_keys:
                return _finish(nodes, host_keys, host_key_wait, say, io)
        elif now >= deadline:
            raise ProvisionError(_timeout_message(nodes, timeout, unreachable_hint))
        if now >= next_report:
            next_report = now + _REPORT_EVERY
            answering = sum(n.answered_at is not None for n in nodes)
            say(
                f"waiting for SSH: {answering} of {len(nodes)} instance(s) answer "
                f"({now - started:.0f}s of {timeout:.0f}s)"
            )
        time.sleep(poll)


def _refresh_states(ec2: Any, nodes: list[_Node], endpoint: Endpoint) -> None:
    from botocore.exceptions import ClientError

    try:
        with aws_call("describing the pool's instances", passthrough=("InvalidInstanceID.NotFound",)):
            reservations = ec2.describe_instances(InstanceIds=[n.instance_id for n in nodes])["Reservations"]
    except ClientError as exc:
        if error_code(exc) == "InvalidInstanceID.NotFound":
            return  # just launched: EC2's reads catch up with its writes within seconds
        raise
    found = {item["InstanceId"]: item for reservation in reservations for item in reservation["Instances"]}
    for node in nodes:
        item = found.get(node.instance_id)
        if item is None:
            continue
        node.state = item["State"]["Name"]
        if node.state in _GONE:
            reason = item.get("StateReason", {}).get("Message") or item.get("StateTransitionReason") or ""
            raise ProvisionError(
                f"instance {node.instance_id} is {node.state} before it could be used"
                + (f": {reason}" if reason else "")
                + " (a spot instance may have been reclaimed, or the instance failed to boot)"
            )
        if node.state == "running" and node.host is None:
            node.host, node.port = endpoint(item)


async def _probe_all(nodes: list[_Node], timeout: float) -> list[bool]:
    return list(await asyncio.gather(*(ssh_answers(n.host or "", n.port, timeout) for n in nodes)))


def _console_keys(ec2: Any, node: _Node) -> list[str]:
    """Host keys from the instance's console output (``Latest`` where the instance type supports it)."""
    from botocore.exceptions import ClientError

    try:
        with aws_call(
            f"reading the console output of {node.instance_id}", passthrough=("UnsupportedOperation",)
        ):
            if node.latest_unsupported:
                output = ec2.get_console_output(InstanceId=node.instance_id).get("Output", "")
            else:
                output = ec2.get_console_output(InstanceId=node.instance_id, Latest=True).get("Output", "")
    except ClientError as exc:
        if error_code(exc) != "UnsupportedOperation":
            raise
        node.latest_unsupported = True  # older (Xen) types: only the buffered output, updated after boot
        return []
    return host_keys_from_console(output or "")


def _finish(
    nodes: list[_Node], policy: HostKeyPolicy, host_key_wait: float, say: Callable[[str], None], io: Any
) -> list[ReadyNode]:
    missing = [n for n in nodes if not n.keys]
    if missing and policy == "console":
        raise ProvisionError(
            f"no SSH host keys appeared in the console output of {', '.join(n.instance_id for n in missing)} "
            f"within {host_key_wait:.0f}s of sshd answering, and AWS(host_keys='console') trusts no other source. "
            "Raise AWS(host_key_wait=...), or allow host_keys='console-or-first-use'."
        )
    ready = []
    for node in nodes:
        assert node.host is not None
        if node.keys:
            ready.append(ReadyNode(node.instance_id, node.host, node.port, tuple(node.keys), "console"))
            continue
        key = io.run(presented_host_key(node.host, node.port, 15.0)).result(timeout=30)
        if key is None:
            raise ProvisionError(f"{node.where()} answered SSH but presented no host key")
        say(
            f"{node.instance_id}: no host keys in its console output within {host_key_wait:.0f}s; trusting the "
            "key it presents now for this pool (AWS(host_keys='console') refuses instead)"
        )
        ready.append(ReadyNode(node.instance_id, node.host, node.port, (key,), "first-use"))
    return ready


def _timeout_message(nodes: list[_Node], timeout: float, hint: str) -> str:
    late = []
    for node in nodes:
        if node.answered_at is not None:
            continue
        if node.state != "running":
            late.append(f"{node.instance_id} ({node.state})")
        else:
            late.append(f"{node.where()} (running, no SSH answer)")
    return (
        f"timed out: {len(late)} of {len(nodes)} instance(s) did not answer SSH within {timeout:.0f}s: "
        + "; ".join(late)
        + (f". {hint}" if hint else "")
        + " See AWS(ssh_timeout=...)."
    )
