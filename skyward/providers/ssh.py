"""`sky.SSH(hosts=[...])`: nodes on machines you already have (a lab cluster, an HPC allocation, VMs).

Each node is one host reached over SSH (asyncssh, on skyward's I/O loop). Its bootstrap creates, or finds, a
per-image environment under ``~/.skyward/envs/<key>`` (see `skyward.bootstrap`); the worker agent then starts
in it bound to 127.0.0.1, and the client reaches it through an SSH local forward that listens on 127.0.0.1
only. Nothing but sshd is exposed on the node. This module is the provider's settings; a pool's nodes are an
`SSHDeployment` (`ssh_deployment`), each node's worker session is `ssh_node`, and logging in is `ssh_connect`.

Example::

    provider = sky.SSH(hosts=["me@gpu1", "me@gpu2:2222"], key_file="~/.ssh/id_ed25519")
    with sky.ComputePool(provider=provider, nodes=2, worker=sky.Worker(concurrency=8)) as pool:
        ...
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from skyward.bootstrap.environments import build_project_wheels
from skyward.bootstrap.progress import ProgressCallback
from skyward.errors import ProvisionError, SkywardError
from skyward.image import Image
from skyward.ioloop import shared_loop
from skyward.providers.ssh_connect import HostSpec
from skyward.providers.ssh_deployment import SSHDeployment
from skyward.redact import redacted_repr
from skyward.spec import ClusterSpec

__all__ = ["SSH", "SSHDeployment", "build_project_wheels"]


@dataclass(frozen=True)
class SSH:
    """Run nodes on existing machines reachable over SSH.

    Each node needs sshd, a Python of the client's minor version, and either a package index or nothing at all:
    when a node cannot reach an index, the client ships the wheels it needs over SFTP and installs them offline.

    Attributes:
        hosts: ``"[user@]host[:port]"`` entries; node ``i`` runs on ``hosts[i]``. A pool may use fewer nodes
            than hosts (the first ones), never more. ``~/.ssh/config`` applies as it does for ``ssh``.
        key_file: the private key to log in with; ``None`` uses the SSH agent and ``~/.ssh/id_*``.
        known_hosts: the known-hosts file host keys are checked against; ``None`` is ``~/.ssh/known_hosts``.
        python: the interpreter on the nodes: a name on the login's ``PATH`` or an absolute path (``~/``
            allowed); by default ``python3.X`` for the client's 3.X (``"python3.12"`` on a 3.12 client). It must
            be the client's minor version: functions travel as that version's bytecode.
        verify_host_keys: ``False`` turns host key checking off, accepting any key. This is the documented
            opt-out for throwaway machines; a man in the middle could then run your tasks. Default: verify.
        offline: ``None`` probes whether each node reaches a package index and ships wheels when it does not;
            ``True`` always ships wheels; ``False`` always installs from the node's index.
        installer: ``"auto"`` uses uv (the node's, else a uv unpacked into ``~/.skyward/bin`` from a wheel the
            client sends), falling back to venv+pip; ``"uv"`` or ``"pip"`` insist on one.
        index_url: the package index nodes install from when online (``None``: their own configuration) and
            whose reachability is probed (``None``: PyPI).
        connect_timeout: seconds to open an SSH connection (TCP, key exchange and login).
        start_timeout: seconds the worker may take to start listening, once its environment exists.
        install_timeout: seconds one node's installation may take.
        quiet: show no progress (bootstrap, nor the automatic bar of a long call).
        progress: called with each `BootstrapEvent` (on skyward's I/O thread: keep it quick); replaces the
            printed progress.
        forward_output: print what tasks print on the nodes, each line prefixed with the node's name.
        forward_agent: forward this machine's SSH agent to the nodes (tasks could then log in elsewhere with
            your keys, and so could anyone with root on a node). Off by default, whatever ``ForwardAgent`` in
            ``~/.ssh/config`` says.
    """

    hosts: Sequence[str]
    key_file: str | None = None
    known_hosts: str | None = None
    python: str = f"python{sys.version_info.major}.{sys.version_info.minor}"
    verify_host_keys: bool = True
    offline: bool | None = None
    installer: Literal["auto", "uv", "pip"] = "auto"
    index_url: str | None = None
    connect_timeout: float = 15.0
    start_timeout: float = 60.0
    install_timeout: float = 1800.0
    quiet: bool = False
    progress: ProgressCallback | None = None
    forward_output: bool = True
    forward_agent: bool = False
    name: str = field(default="ssh", init=False)
    shares_client_files: bool = field(default=False, init=False)

    __repr__ = redacted_repr  # an index_url with a token prints as https://***@host/...

    def __post_init__(self) -> None:
        if isinstance(self.hosts, str):
            raise TypeError(
                f"SSH(hosts=...) takes a list of hosts, not one string: use hosts=[{self.hosts!r}]"
            )
        hosts = tuple(self.hosts)
        if not hosts:
            raise ValueError("SSH(hosts=...) needs at least one host")
        for host in hosts:
            HostSpec.parse(host)  # fail at construction, not halfway through a launch
        if self.installer not in ("auto", "uv", "pip"):
            raise ValueError(f"SSH(installer=...) must be 'auto', 'uv' or 'pip', got {self.installer!r}")
        object.__setattr__(self, "hosts", hosts)

    def launch(self, cluster: ClusterSpec, image: Image, secret: bytes, lease: float) -> SSHDeployment:
        if cluster.nodes > len(self.hosts):
            raise ProvisionError(
                f"the pool asks for {cluster.nodes} nodes but SSH(hosts=...) lists {len(self.hosts)}: "
                f"{', '.join(self.hosts)}. Each node is one host entry (repeat a host to run several nodes on it)."
            )
        io = shared_loop()
        if io.on_loop():
            raise SkywardError("a pool cannot be started from skyward's I/O thread")
        deployment = SSHDeployment(self, io)
        starting = io.run(deployment.start(cluster, image, secret, lease))
        try:
            deployment.nodes = starting.result()
        except BaseException:  # errors and Ctrl-C alike: stop whatever had started
            starting.cancel()
            deployment.close()
            raise
        return deployment
