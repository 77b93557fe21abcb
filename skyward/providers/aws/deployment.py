"""`AWSDeployment`: one pool's nodes on EC2, from its key pair and security group to its running workers.

`start` creates the pool's key pair and security group, launches its instances, waits for them to answer SSH
with known host keys, then hands them to `sky.SSH`, which bootstraps and starts the nodes as on any host.
`close` stops the workers, then removes every resource the pool created (`skyward.providers.aws.teardown`).
"""

from __future__ import annotations

import ipaddress
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from skyward.errors import ProvisionError
from skyward.image import Image
from skyward.link import Link
from skyward.progress_display import status_line
from skyward.providers.aws.api import AwsClients
from skyward.providers.aws.instances import launch_instances
from skyward.providers.aws.plan import LaunchPlan, run_request
from skyward.providers.aws.prices import PriceBook, money
from skyward.providers.aws.resources import PoolResources, sweep_orphans
from skyward.providers.aws.teardown import release_outliving_interrupts
from skyward.providers.aws.wait import ReadyNode, wait_for_nodes
from skyward.providers.base import StartedNode, WorkerExit
from skyward.providers.pinned_ssh import pinned_ssh
from skyward.providers.rented.keys import new_key
from skyward.providers.ssh import SSHDeployment
from skyward.spec import ClusterSpec

if TYPE_CHECKING:
    from skyward.providers.aws import AWS

logger = logging.getLogger("skyward.aws")

ORPHAN_AGE = 3600.0  # seconds: older skyward groups and key pairs without a live instance are leftovers


class AWSDeployment:
    """One pool's nodes on EC2: the `sky.SSH` deployment that runs them, and every resource the pool created."""

    def __init__(self, provider: AWS, clients: AwsClients, pool_id: str) -> None:
        self._provider = provider
        self._clients = clients
        self.pool_id = pool_id
        self.resources = PoolResources(clients.ec2, pool_id, clients.region, self._say)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"skyward-{pool_id}-"))
        self.ssh: SSHDeployment | None = None
        self.ready: list[ReadyNode] = []
        self.nodes: list[StartedNode] = []
        self.plan: LaunchPlan | None = None
        self.prices = PriceBook()
        self._closed = False

    def _say(self, message: str) -> None:
        """A status message: an INFO record of ``skyward.aws``, and a line on stderr unless quiet."""
        line = f"skyward [aws {self.pool_id}] {message}"
        status_line(logger, f"{self.pool_id}: {message}", line, shown=not self._provider.quiet)

    def sweep(self) -> None:
        """Remove what earlier, killed clients left (see `sweep_orphans`); a failure here stops nothing."""
        try:
            sweep_orphans(self._clients.ec2, ORPHAN_AGE, self._say)
        except Exception as exc:  # noqa: BLE001  (housekeeping: the launch itself decides what is an error)
            self._say(f"could not look for leftovers of earlier pools: {exc}")

    def start(
        self, plan: LaunchPlan, cluster: ClusterSpec, image: Image, secret: bytes, lease: float
    ) -> None:
        provider = self._provider
        self.plan = plan
        key_file = self.workdir / "id_ed25519"
        public_key = new_key(key_file, comment=f"skyward {self.pool_id}")
        self.resources.import_key_pair(public_key)
        group_id = self.resources.create_security_group(plan.vpc_id, plan.cidr)
        if ipaddress.ip_network(plan.cidr).num_addresses > 1:
            logger.warning(
                "%s: tcp/22 is open to %s, not only to this machine (allow_wide_ssh_cidr)",
                self.pool_id,
                plan.cidr,
            )
        self._say(f"launching {plan.describe(cluster.nodes)}")
        request = run_request(
            plan,
            self.pool_id,
            self.resources.key_name,
            group_id,
            provider.disk_gb,
            provider.address == "public",
            provider.iam_instance_profile,
        )
        self.resources.launching()
        ids = launch_instances(
            self._clients.ec2,
            request,
            cluster.nodes,
            plan.allocation,
            record=self.resources.record_instances,
            say=self._say,
        )
        self.prices.start(self._clients.ec2, self._clients.pricing, ids, plan.instance_type.name)
        self._say(f"waiting for {', '.join(ids)} to run and answer SSH (up to {provider.ssh_timeout:.0f}s)")
        self.ready = wait_for_nodes(
            self._clients.ec2,
            ids,
            endpoint=provider.endpoint,
            timeout=provider.ssh_timeout,
            host_keys=provider.host_keys,
            host_key_wait=provider.host_key_wait,
            say=self._say,
            unreachable_hint=f"The security group lets tcp/22 in from {plan.cidr} only: is that this machine's "
            "address as the instances see it (AWS(ssh_cidr=...))?",
        )
        ssh = pinned_ssh(
            provider.user,
            [(node.host, node.port, list(node.keys)) for node in self.ready],
            key_file=key_file,
            workdir=self.workdir,
            ssh_options=provider.ssh_options,
            quiet=provider.quiet,
            progress=provider.progress,
            python=provider.python,
        )
        # The SSH provider bootstraps and starts the nodes, exactly as on any host (and stops them on failure).
        self.ssh = ssh.launch(cluster, image, secret, lease)
        self.nodes = self.ssh.nodes

    def node_details(self, index: int) -> dict[str, str]:
        """What the dashboard shows of node `index`'s machine: instance, type, price basis and cost estimate."""
        if self.plan is None or index >= len(self.ready):
            return {}
        instance = self.ready[index].instance_id
        details = {"instance": instance, "instance type": self.plan.instance_type.name,
                   "allocation": self.plan.allocation, "region": self.plan.region}  # fmt: skip
        if not self.prices.done.is_set():
            return {**details, "price": "looking up"}
        price = self.prices.prices.get(instance)
        if price is None:
            return {**details, "price basis": "unknown", "$/hour": "unknown", "cost so far": "unknown"}
        cost = price.cost(time.time())
        return {**details, "price basis": price.basis, "$/hour": money(price.hourly),
                "cost so far": money(cost) + (" (estimate)" if cost is not None else "")}  # fmt: skip

    def cost_estimate(self) -> str | None:
        """The pool's instances' running cost so far (``None`` before the prices are known), e.g.
        ``"$0.01234 (estimate; 1 node without a price)"``: instances only, no storage, transfer or taxes."""
        if not self.prices.done.is_set():
            return None
        now = time.time()
        ready = {node.instance_id for node in self.ready}
        costs = [price.cost(now) for instance, price in self.prices.prices.items() if instance in ready]
        unknown = len(ready) - sum(c is not None for c in costs)
        known = sum(c for c in costs if c is not None)
        if unknown == len(ready):
            return "unknown"
        tail = f"; {unknown} node{'s' if unknown > 1 else ''} without a price" if unknown else ""
        return f"{money(known)} (estimate{tail})"

    # --- Deployment protocol -------------------------------------------------------------------------------

    def link(self, index: int, secret: bytes) -> Link:
        if self.ssh is None:
            raise ProvisionError("the pool's nodes were never started")
        return self.ssh.link(index, secret)

    def is_alive(self, index: int) -> bool:
        return self.ssh is not None and self.ssh.is_alive(index)

    def exit_info(self, index: int) -> WorkerExit | None:
        return self.ssh.exit_info(index) if self.ssh is not None else None

    def restart(self, index: int) -> StartedNode:
        """Start node `index`'s worker again over its SSH connection (the instance is the same)."""
        if self.ssh is None:
            raise ProvisionError("the pool's nodes were never started")
        return self.ssh.restart(index)  # `self.nodes` is the SSH deployment's list: updated there

    def close(self) -> None:
        """Stop the workers, then terminate the pool's instances and delete its group and key pair. Idempotent.

        The cloud part runs in a non-daemon thread: an interrupted wait (a second Ctrl-C) leaves it running,
        and the interpreter waits for it before exiting.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self.ssh is not None:
                self.ssh.close()
        finally:
            release_outliving_interrupts(self.resources, self.workdir)
