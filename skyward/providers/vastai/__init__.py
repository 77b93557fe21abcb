"""`sky.VastAI()`: nodes on VastAI instances (Docker containers on rented machines) that live as long as their
pool.

A launch goes: the offer search (the cheapest verified, rentable offers with the pool's ``cpu=``, ``memory=``
and ``accelerator=``) -> the pool's own SSH key, registered with the account -> one instance per node, in SSH
mode, with the node watchdog as its onstart script -> wait for ``running`` and for sshd (through VastAI's SSH
proxy, or the machine's own address with ``direct=True``), pinning the host key each presents -> `sky.SSH`
bootstraps and starts the nodes exactly as on any host.

Teardown stops the workers, destroys every instance of the pool, then deletes the key: on success, on
exceptions, on Ctrl-C, and when a launch fails halfway. A client killed outright cannot tear down: the watchdog
then destroys (or stops) its instance through VastAI's API with the instance's own scoped key.

The SDK is the optional extra ``skyward[vastai]``; it is imported when a pool launches, not before.

Example::

    with sky.ComputePool(provider=sky.VastAI(), nodes=2, accelerator="RTX_4090") as pool:
        ...
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skyward.bootstrap.progress import ProgressCallback
from skyward.image import Image
from skyward.providers.rented.deployment import RentedDeployment
from skyward.providers.rented.settings import check_ssh_options
from skyward.redact import redacted_repr
from skyward.spec import ClusterSpec

__all__ = ["VastAI"]

DEFAULT_IMAGE = f"python:{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class VastAI:
    """Run each node on a VastAI instance rented for the pool and destroyed with it.

    Each node rents one offer: the cheapest verified, rentable on-demand offer with at least the pool's ``cpu=``,
    ``memory=`` and ``accelerator=`` (``"RTX_4090"``, ``"H100_SXM:2"``: VastAI's GPU names, with ``_`` or spaces).

    Attributes:
        api_key: the API key; ``None`` is ``VAST_API_KEY``, else the key file of the ``vastai`` CLI.
        image: the Docker image; it needs a Python of the client's minor version (the default, the official
            ``python:3.X`` image, has it) and apt or ``ss``/``pgrep`` for the watchdog. VastAI adds sshd.
        disk_gb: disk of each instance.
        direct: reach sshd at the machine's own address and mapped port instead of VastAI's SSH proxy.
        max_price: the most an instance may cost, in dollars per hour (all included); ``None``: no limit.
        offer_filters: further filters of the offer search, as the API takes them
            (``{"reliability2": {"gte": 0.98}, "geolocation": {"in": ["DE", "FR"]}}``).
        api_url: the API's address; ``None`` is the SDK's (``VAST_URL``, else https://console.vast.ai).
        user: the login (``root`` in VastAI's SSH mode).
        python: the interpreter on the nodes; ``None`` is ``python3.X`` for the client's 3.X.
        ssh_timeout: seconds from launch until every instance must answer SSH (image pulls take minutes).
        watchdog: install the node watchdog (the onstart script) that destroys an instance once its client is
            gone.
        quiet: print nothing (launch, wait, bootstrap and teardown progress go to stderr otherwise).
        progress: called with each node's bootstrap events instead of printing them (see `sky.SSH`).
        ssh_options: further `sky.SSH` settings (``offline``, ``installer``, ``index_url``, ...).
    """

    api_key: str | None = field(default=None, repr=False)
    image: str = DEFAULT_IMAGE
    disk_gb: int = 32
    direct: bool = False
    max_price: float | None = None
    offer_filters: Mapping[str, Any] = field(default_factory=dict)
    api_url: str | None = None
    user: str = "root"
    python: str | None = None
    ssh_timeout: float = 900.0
    watchdog: bool = True
    quiet: bool = False
    progress: ProgressCallback | None = None
    ssh_options: Mapping[str, Any] = field(default_factory=dict)
    name: str = field(default="vastai", init=False)
    shares_client_files: bool = field(default=False, init=False)
    resource_parameters: frozenset[str] = field(
        default=frozenset({"cpu", "memory", "accelerator"}), init=False
    )

    __repr__ = redacted_repr  # api_key is not shown at all

    def __post_init__(self) -> None:
        if not self.ssh_timeout > 0:
            raise ValueError(f"VastAI(ssh_timeout=...) must be positive, got {self.ssh_timeout!r}")
        if not isinstance(self.disk_gb, int) or self.disk_gb < 8:
            raise ValueError(f"VastAI(disk_gb=...) must be an int >= 8, got {self.disk_gb!r}")
        if self.max_price is not None and not self.max_price > 0:
            raise ValueError(f"VastAI(max_price=...) must be positive, got {self.max_price!r}")
        object.__setattr__(self, "offer_filters", dict(self.offer_filters))
        object.__setattr__(self, "ssh_options", check_ssh_options("VastAI", self.ssh_options))

    def launch(self, cluster: ClusterSpec, image: Image, secret: bytes, lease: float) -> RentedDeployment:
        """Search, rent and bootstrap `cluster.nodes` instances; see the module docstring for the steps."""
        from skyward.providers.vastai.api import VastCloud

        cloud = VastCloud.open(self, cluster, lease)
        deployment = RentedDeployment(self, cloud, cluster.pool_id)
        try:
            deployment.start(cluster, image, secret, lease)
        except BaseException:  # errors and Ctrl-C alike: destroy whatever was rented
            deployment.close()
            raise
        return deployment
