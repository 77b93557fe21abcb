"""`sky.Verda()`: nodes on Verda (formerly DataCrunch) instances that live exactly as long as their pool.

A launch goes: sign in and choose (the cheapest instance type with the pool's ``cpu=``, ``memory=`` and
``accelerator=`` that is available now) -> the pool's own SSH key and a startup script holding the node
watchdog, registered with the account -> the instances -> wait for ``running``, for an address and for sshd,
pinning the host key each presents -> `sky.SSH` bootstraps and starts the nodes exactly as on any host.

Teardown stops the workers, deletes every instance of the pool with its OS volume (permanently), then the key
and the startup script: on success, on exceptions, on Ctrl-C, and when a launch fails halfway. A client killed
outright cannot tear down: its nodes power themselves off once it is gone (the watchdog of `sky.AWS`); their
instances, named ``skyward-<pool id>-<n>``, then show as offline in the console until deleted.

The SDK is the optional extra ``skyward[verda]``; it is imported when a pool launches, not before.

Example::

    with sky.ComputePool(provider=sky.Verda(), nodes=2, accelerator="H100") as pool:
        ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skyward.bootstrap.progress import ProgressCallback
from skyward.image import Image
from skyward.providers.rented.deployment import RentedDeployment
from skyward.providers.rented.settings import check_ssh_options
from skyward.redact import redacted_repr
from skyward.spec import ClusterSpec

__all__ = ["Verda"]

DEFAULT_API_URL = "https://api.verda.com/v1"


@dataclass(frozen=True)
class Verda:
    """Run each node on a Verda instance started for the pool and deleted with it.

    What each instance is comes from the pool's resource parameters (``ComputePool(cpu=8, memory="32GB",
    accelerator="H100:2", machine="1H100.80S.30V", allocation="on-demand")``): a named type, else the cheapest
    type with at least that which is available now (2 vCPUs and 4 GB, no GPU, when nothing is asked).
    ``allocation="spot-if-available"`` (the default) takes spot capacity where Verda has some.

    Attributes:
        client_id, client_secret: API credentials; ``None`` reads ``VERDA_CLIENT_ID`` and
            ``VERDA_CLIENT_SECRET``.
        location: a location code (``"FIN-01"``); ``None`` is wherever the chosen type is available.
        instance_type: an instance type for every pool of this provider (``machine=`` of the pool likewise).
        image: the OS image; ``None`` is the type's Ubuntu 24.04 image (with CUDA on GPU types). It needs sshd,
            and a Python of the client's minor version (Ubuntu 24.04 has 3.12; see `python`).
        disk_gb: size of each instance's OS volume.
        api_url: the API's address (a test's fake, or another endpoint).
        user: the login of the image.
        python: the interpreter on the nodes; ``None`` is ``python3.X`` for the client's 3.X.
        ssh_timeout: seconds from launch until every instance must answer SSH.
        watchdog: install the node watchdog (a startup script) that powers a node off once its client is gone.
        quiet: print nothing (launch, wait, bootstrap and teardown progress go to stderr otherwise).
        progress: called with each node's bootstrap events instead of printing them (see `sky.SSH`).
        ssh_options: further `sky.SSH` settings (``offline``, ``installer``, ``index_url``, ...).
    """

    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    location: str | None = None
    instance_type: str | None = None
    image: str | None = None
    disk_gb: int = 50
    api_url: str = DEFAULT_API_URL
    user: str = "root"
    python: str | None = None
    ssh_timeout: float = 600.0
    watchdog: bool = True
    quiet: bool = False
    progress: ProgressCallback | None = None
    ssh_options: Mapping[str, Any] = field(default_factory=dict)
    name: str = field(default="verda", init=False)
    shares_client_files: bool = field(default=False, init=False)
    resource_parameters: frozenset[str] = field(
        default=frozenset({"cpu", "memory", "accelerator", "machine", "allocation"}), init=False
    )

    __repr__ = redacted_repr  # client_secret is not shown at all

    def __post_init__(self) -> None:
        if not self.ssh_timeout > 0:
            raise ValueError(f"Verda(ssh_timeout=...) must be positive, got {self.ssh_timeout!r}")
        if not isinstance(self.disk_gb, int) or self.disk_gb < 10:
            raise ValueError(f"Verda(disk_gb=...) must be an int >= 10, got {self.disk_gb!r}")
        object.__setattr__(self, "ssh_options", check_ssh_options("Verda", self.ssh_options))

    def launch(self, cluster: ClusterSpec, image: Image, secret: bytes, lease: float) -> RentedDeployment:
        """Choose, launch and bootstrap `cluster.nodes` instances; see the module docstring for the steps."""
        from skyward.providers.verda.api import VerdaCloud

        cloud = VerdaCloud.open(self, cluster, lease)
        deployment = RentedDeployment(self, cloud, cluster.pool_id)
        try:
            deployment.start(cluster, image, secret, lease)
        except BaseException:  # errors and Ctrl-C alike: delete whatever was created
            deployment.close()
            raise
        return deployment
