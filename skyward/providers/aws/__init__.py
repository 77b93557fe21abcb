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
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from skyward.bootstrap.progress import ProgressCallback
from skyward.errors import ProvisionError
from skyward.image import Image
from skyward.providers.aws.api import open_clients
from skyward.providers.aws.catalog import DEFAULT_AMI_USER
from skyward.providers.aws.deployment import ORPHAN_AGE, AWSDeployment
from skyward.providers.aws.plan import make_plan
from skyward.providers.aws.reach import normalise_cidr
from skyward.providers.aws.wait import HostKeyPolicy
from skyward.providers.rented.settings import check_ssh_options
from skyward.providers.ssh_connect import HostSpec
from skyward.redact import redacted_repr
from skyward.spec import ClusterSpec

__all__ = ["AWS", "ORPHAN_AGE", "AWSDeployment"]

Address = Literal["public", "private"] | Callable[[Mapping[str, Any]], str]


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
        iam_instance_profile: an IAM instance profile (its name, or its ARN) to attach to every instance: the
            nodes' own AWS credentials, e.g. for ``sky.S3Volume(..., credentials="instance-profile")``.
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
    iam_instance_profile: str | None = None
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
        profile = self.iam_instance_profile
        if profile is not None and (not isinstance(profile, str) or not profile.strip()):
            raise ValueError(f"AWS(iam_instance_profile=...) must be a profile name or ARN, got {profile!r}")
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
        object.__setattr__(self, "ssh_options", check_ssh_options("AWS", self.ssh_options))

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
