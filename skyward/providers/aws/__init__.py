"""`sky.AWS()`: nodes on EC2 instances that live exactly as long as their pool.

A launch goes: plan (instance type, AMI, the client's address: read-only calls) -> an ephemeral ed25519 key pair
and a security group open on tcp/22 to the client only -> the instances (spot where asked and available) ->
wait for ``running``, for sshd, and for host keys (`skyward.providers.aws.wait`) -> `sky.SSH` bootstraps and
starts the nodes exactly as it does on any host. Everything is tagged ``skyward:pool=<pool id>``.

Teardown stops the workers, terminates every instance of the pool, then deletes its security group and key
pair: on success, on exceptions, on Ctrl-C, and when a launch fails halfway (`PoolResources.release`). It runs
in a thread of its own that a second Ctrl-C does not stop (the interpreter waits for it). A client killed
outright cannot tear down: its nodes power themselves off once their lease has passed
(`skyward.providers.aws.userdata`), and the next pool sweeps the security group and key pair they leave.

boto3 is the optional extra ``skyward[aws]``; it is imported when a pool launches, not before.

Example::

    with sky.ComputePool(provider=sky.AWS(region="eu-west-1"), nodes=4, cpu=8, memory="32GB") as pool:
        ...
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from skyward.bootstrap.progress import ProgressCallback
from skyward.errors import ProvisionError
from skyward.image import Image
from skyward.link import Link
from skyward.providers.aws.api import AwsClients, open_clients
from skyward.providers.aws.catalog import DEFAULT_AMI_USER
from skyward.providers.aws.instances import launch_instances
from skyward.providers.aws.plan import LaunchPlan, make_plan, run_request
from skyward.providers.aws.reach import known_hosts_lines, normalise_cidr, ssh_host
from skyward.providers.aws.resources import CleanupFailed, PoolResources, sweep_orphans
from skyward.providers.aws.wait import HostKeyPolicy, ReadyNode, wait_for_nodes
from skyward.providers.base import StartedNode, WorkerExit
from skyward.providers.ssh import SSH, SSHDeployment
from skyward.providers.ssh_connect import HostSpec
from skyward.redact import redacted_repr
from skyward.spec import ClusterSpec

Address = Literal["public", "private"] | Callable[[Mapping[str, Any]], str]
# sky.SSH settings that the AWS provider sets itself: they are not for `ssh_options`.
_OWN_SSH_SETTINGS = frozenset(
    {"hosts", "key_file", "known_hosts", "verify_host_keys", "python", "quiet", "progress"}
)
ORPHAN_AGE = 3600.0  # seconds: older skyward groups and key pairs without a live instance are leftovers


@dataclass(frozen=True)
class AWS:
    """Run each node on an EC2 instance started for the pool and terminated with it.

    What each instance is comes from the pool's resource parameters (``ComputePool(cpu=8, memory="32GB",
    accelerator="T4", machine="m5.xlarge", allocation="on-demand")``): a named type, else the smallest type of
    the region with at least that (2 vCPUs and 4 GiB when nothing is asked). ``allocation`` is
    ``"spot-if-available"`` by default (spot capacity where EC2 has some, on-demand for the rest),
    ``"always-spot"`` or ``"on-demand"``.

    Attributes:
        region: the AWS region; ``None`` is the profile's or ``AWS_DEFAULT_REGION``.
        instance_type: an instance type for every pool of this provider (``machine=`` of the pool likewise).
        ami: the AMI; ``None`` is the current Ubuntu 24.04 LTS of the region (AWS's Deep Learning Base AMI on
            Ubuntu 24.04, with the NVIDIA driver, for NVIDIA GPU types), found through their public SSM
            parameters. It needs cloud-init, sshd, and a Python of the client's minor version.
        subnet_id: the subnet to launch in; ``None`` is the region's default VPC.
        ssh_cidr: who may connect to tcp/22; ``None`` is this machine's public address, as
            ``https://checkip.amazonaws.com`` sees it (pass it where that cannot be reached). A range wider
            than one address (``"10.0.0.0/16"``, ``"0.0.0.0/0"``) needs ``allow_wide_ssh_cidr=True``.
        allow_wide_ssh_cidr: accept an `ssh_cidr` wider than one address (a warning is still given): every
            machine in it may then try to log in to the nodes (key-only, but exposed to sshd's flaws).
        profile: the AWS profile (``~/.aws/config``) to use; ``None`` is the default chain.
        ssh_timeout: seconds from launch until every instance must answer SSH.
        architecture: ``"x86_64"`` or ``"arm64"`` (Graviton), for types chosen from the resource parameters.
        user: the login of the AMI (``"ubuntu"`` on the default AMIs).
        python: the interpreter on the nodes; ``None`` is ``python3.X`` for the client's 3.X.
        disk_gb: size of each instance's root volume (at least the AMI's own).
        address: how nodes are reached: ``"public"`` (their public IP), ``"private"`` (from inside the VPC;
            needs `ssh_cidr`), or a function of the instance (``DescribeInstances``' description of it) that
            returns ``"host[:port]"`` (a bastion's port forward, say; needs `ssh_cidr`).
        host_keys: which host keys to trust: ``"console-or-first-use"`` reads them from each instance's console
            output, where cloud-init prints them, and pins the key the instance presents when they do not
            appear within `host_key_wait`; ``"console"`` refuses to connect without them.
        host_key_wait: seconds to wait, once an instance answers SSH, for its host keys in its console output.
        sweep_orphans: at launch, delete skyward security groups and key pairs older than an hour whose pool has
            no live instance left (what a killed client leaves behind).
        quiet: print nothing (launch, wait, bootstrap and teardown progress go to stderr otherwise).
        progress: called with each node's bootstrap events instead of printing them (see `sky.SSH`).
        ssh_options: further `sky.SSH` settings for the bootstrap and the nodes (``offline``, ``installer``,
            ``index_url``, ``install_timeout``, ``connect_timeout``, ``start_timeout``, ``forward_output``).

    Example::

        with sky.ComputePool(provider=sky.AWS(), nodes=4, cpu=4, memory="16GB") as pool:
            results = pool.broadcast(platform.node)
    """

    region: str | None = None
    instance_type: str | None = None
    ami: str | None = None
    subnet_id: str | None = None
    ssh_cidr: str | None = None
    allow_wide_ssh_cidr: bool = False
    profile: str | None = None
    ssh_timeout: float = 300.0
    architecture: Literal["x86_64", "arm64"] = "x86_64"
    user: str = DEFAULT_AMI_USER
    python: str | None = None
    disk_gb: int = 30
    address: Address = "public"
    host_keys: HostKeyPolicy = "console-or-first-use"
    host_key_wait: float = 60.0
    sweep_orphans: bool = True
    quiet: bool = False
    progress: ProgressCallback | None = None
    ssh_options: Mapping[str, Any] = field(default_factory=dict)
    name: str = field(default="aws", init=False)
    shares_client_files: bool = field(default=False, init=False)
    resource_parameters: frozenset[str] = field(
        default=frozenset({"cpu", "memory", "accelerator", "machine", "allocation"}), init=False
    )

    __repr__ = redacted_repr  # an index_url with a token prints as https://***@host/...

    def __post_init__(self) -> None:
        # Mistakes surface here, at construction, rather than after instances have been paid for.
        if self.ssh_cidr is not None:
            _check_cidr_width(normalise_cidr(self.ssh_cidr), self.allow_wide_ssh_cidr)
        if not self.ssh_timeout > 0:
            raise ValueError(f"AWS(ssh_timeout=...) must be positive, got {self.ssh_timeout!r}")
        if self.host_key_wait < 0:
            raise ValueError(f"AWS(host_key_wait=...) must be >= 0, got {self.host_key_wait!r}")
        if self.architecture not in ("x86_64", "arm64"):
            raise ValueError(f"AWS(architecture=...) must be 'x86_64' or 'arm64', got {self.architecture!r}")
        if self.host_keys not in ("console", "console-or-first-use"):
            raise ValueError(
                f"AWS(host_keys=...) must be 'console' or 'console-or-first-use', got {self.host_keys!r}"
            )
        if not (callable(self.address) or self.address in ("public", "private")):
            raise ValueError(
                f"AWS(address=...) must be 'public', 'private' or a function, got {self.address!r}"
            )
        if not isinstance(self.disk_gb, int) or self.disk_gb < 8:
            raise ValueError(f"AWS(disk_gb=...) must be an int >= 8, got {self.disk_gb!r}")
        known = {f.name for f in fields(SSH) if f.init} - _OWN_SSH_SETTINGS
        unknown = sorted(set(self.ssh_options) - known)
        if unknown:
            raise ValueError(
                f"AWS(ssh_options=...) does not take {', '.join(unknown)}; it takes {', '.join(sorted(known))}"
            )
        object.__setattr__(self, "ssh_options", dict(self.ssh_options))

    def launch(self, cluster: ClusterSpec, image: Image, secret: bytes, lease: float) -> AWSDeployment:
        """Launch and bootstrap `cluster.nodes` instances; see the module docstring for the steps."""
        clients = open_clients(self.profile, self.region)
        deployment = AWSDeployment(self, clients, cluster.pool_id)
        try:
            if self.sweep_orphans:
                deployment.sweep()
            plan = make_plan(self, clients, cluster, lease)
            deployment.start(plan, cluster, image, secret, lease)
        except BaseException:  # errors and Ctrl-C alike: remove whatever was created
            deployment.close()
            raise
        return deployment

    def endpoint(self, instance: Mapping[str, Any]) -> tuple[str, int]:
        """Where SSH reaches `instance` (its ``DescribeInstances`` description), by `address`."""
        if callable(self.address):
            target = HostSpec.parse(self.address(instance))
            return target.host, target.port or 22
        key = "PublicIpAddress" if self.address == "public" else "PrivateIpAddress"
        host = instance.get(key)
        if not host:
            raise ProvisionError(
                f"instance {instance.get('InstanceId')} has no {'public' if key[0] == 'P' else 'private'} "
                "address: its subnet gives none. Pass a subnet that does (AWS(subnet_id=...)), or "
                "AWS(address='private') when this machine is inside the VPC."
            )
        return str(host), 22


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
        self._closed = False

    def _say(self, message: str) -> None:
        if not self._provider.quiet:
            print(f"skyward [aws {self.pool_id}] {message}", file=sys.stderr, flush=True)

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
        key_file = self.workdir / "id_ed25519"
        public_key = _new_key(key_file, comment=f"skyward {self.pool_id}")
        self.resources.import_key_pair(public_key)
        group_id = self.resources.create_security_group(plan.vpc_id, plan.cidr)
        if ipaddress.ip_network(plan.cidr).num_addresses > 1:
            self._say(
                f"WARNING: tcp/22 is open to {plan.cidr}, not only to this machine (allow_wide_ssh_cidr)"
            )
        self._say(f"launching {plan.describe(cluster.nodes)}")
        request = run_request(
            plan,
            self.pool_id,
            self.resources.key_name,
            group_id,
            provider.disk_gb,
            provider.address == "public",
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
        known_hosts = self.workdir / "known_hosts"  # in a private (0700) directory, written 0600
        text = "".join(
            line + "\n"
            for node in self.ready
            for line in known_hosts_lines(node.host, node.port, list(node.keys))
        )
        with os.fdopen(os.open(known_hosts, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(text)
        settings: dict[str, Any] = {
            **provider.ssh_options,
            "quiet": provider.quiet,
            "progress": provider.progress,
        }
        if provider.python is not None:
            settings["python"] = provider.python
        ssh = SSH(
            hosts=[ssh_host(provider.user, node.host, node.port) for node in self.ready],
            key_file=str(key_file),
            known_hosts=str(known_hosts),
            verify_host_keys=True,
            **settings,
        )
        # The SSH provider bootstraps and starts the nodes, exactly as on any host (and stops them on failure).
        self.ssh = ssh.launch(cluster, image, secret, lease)
        self.nodes = self.ssh.nodes

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
            released = threading.Event()
            releasing = threading.Thread(
                target=self._release, args=(released,), name=f"skyward-teardown-{self.pool_id}"
            )
            releasing.start()
            try:
                # An Event, not Thread.join: on Python 3.12 an interrupted join() releases the thread's state
                # lock, after which the interpreter would no longer wait for it at exit. Short waits: a Ctrl-C
                # delivered to another thread is still acted on here within 0.2 s.
                while not released.wait(0.2):
                    pass
            except KeyboardInterrupt:
                print(
                    f"skyward: still removing the AWS resources of {self.pool_id}; the program exits once "
                    "they are gone",
                    file=sys.stderr,
                    flush=True,
                )
                raise

    def _release(self, released: threading.Event) -> None:
        try:
            self.resources.release()
        except CleanupFailed as exc:
            # Loud, with what to do by hand; raising here would only hide the error that ended the pool.
            print(f"skyward: WARNING: {exc}", file=sys.stderr, flush=True)
        except Exception as exc:  # noqa: BLE001
            print(
                f"skyward: WARNING: removing the AWS resources of {self.pool_id} failed: {exc!r}",
                file=sys.stderr,
                flush=True,
            )
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            released.set()


def _check_cidr_width(cidr: str, allowed: bool) -> None:
    """A range wider than one address opens the nodes' sshd to every machine in it: only when asked, loudly."""
    network = ipaddress.ip_network(cidr)
    if network.prefixlen == network.max_prefixlen:
        return
    if not allowed:
        raise ValueError(
            f"AWS(ssh_cidr={cidr!r}) lets {network.num_addresses} addresses try to log in to the nodes' sshd. "
            "Give this machine's address (a /32), or pass allow_wide_ssh_cidr=True to accept the range."
        )
    warnings.warn(
        f"sky.AWS: tcp/22 of the pool's instances will be open to {cidr} ({network.num_addresses} addresses), "
        "not only to this machine",
        UserWarning,
        stacklevel=4,
    )


def _new_key(path: Path, comment: str) -> str:
    """Write a fresh ed25519 private key to `path` (mode 0600); returns its public key in OpenSSH format."""
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(key.export_private_key("openssh"))
    return key.export_public_key("openssh").decode().strip()
