"""`sky.Slurm(...)`: the provider's configuration, and `launch`, which turns a pool into one Slurm job.

`Slurm` is past the ~150-line rule on purpose: a settings dataclass of 22 options whose docstring (rendered on the
API page) documents each of them; its code is `launch` and the mapping of options to Slurm's command line.
"""

from __future__ import annotations

import logging
import re
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from skyward.errors import ProvisionError
from skyward.image import Image
from skyward.progress_display import status_line
from skyward.providers.slurm.allocation import Allocation
from skyward.providers.slurm.deployment import SlurmDeployment
from skyward.providers.slurm.shell import LocalShell, Shell
from skyward.spec import ClusterSpec

logger = logging.getLogger("skyward.slurm")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
_MIB = {"": 1 / (1 << 20), "K": 1 / 1024, "M": 1, "G": 1024, "T": 1 << 20}


def memory_mib(value: str | float) -> int:
    """``Resources.memory`` (``"16GB"``, ``"512MB"``, bytes as a number) as whole MiB for ``--mem``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(1, int(value) >> 20)
    found = _SIZE.match(str(value))
    if not found:
        raise ValueError(f"memory must be a size like '16GB', got {value!r}")
    return max(1, round(float(found.group(1)) * _MIB[found.group(2).upper()]))


def gres_of(accelerator: str) -> str:
    """``Resources.accelerator`` (``"A100:8"``, ``"v100"``) as ``--gres`` (``gpu:a100:8``, ``gpu:v100:1``).

    Slurm's GPU type names are the site's (``gres.conf``), almost always lower case; ``Slurm(gres=...)`` gives
    the exact spelling where it differs."""
    kind, _, count = accelerator.partition(":")
    return f"gpu:{kind.strip().lower()}:{int(count) if count else 1}"


@dataclass(frozen=True)
class Slurm:
    """Run a pool's nodes as one Slurm job on a cluster this machine can submit to (``salloc`` works here).

    (About 170 lines, past the ~150 rule on purpose: most of it is this docstring and the option checks of a
    user-facing settings class; launching lives in `skyward.providers.slurm.deployment`.)

    The pool becomes ``salloc --nodes=N --ntasks-per-node=1 --cpus-per-task=C --no-kill ...``; once
    it runs, ``srun`` starts one agent per node inside it, and the job is cancelled when the pool closes (on
    every exit path). The pool's ``cpu``, ``memory`` and ``accelerator`` become ``--cpus-per-task`` (default:
    the worker's concurrency), ``--mem`` and ``--gres=gpu:<type>:<n>``.

    Attributes:
        partition: ``--partition`` (``None``: the cluster's default).
        account: ``--account``.
        time: ``--time``, the job's limit (``"1:00:00"``): it bounds the pool, even if the client vanishes.
        qos: ``--qos``.
        constraint: ``--constraint`` (node features, e.g. ``"skylake&ib"``).
        gres: ``--gres`` as Slurm spells it (``"gpu:a100:2"``); overrides the pool's ``accelerator``.
        sbatch_args: further options for the allocation, as on the ``salloc``/``sbatch`` command line
            (``("--exclusive", "--reservation=mine")``).
        python: an interpreter on the compute nodes that has skyward and what the pool's image asks for, of
            the client's Python minor version. ``None`` without `login`: this client's interpreter at the same
            path (a shared home or software tree makes it visible on the nodes) when it holds what the image
            asks for; otherwise the image's environment is built once under this account's home (shared with
            the nodes), as `sky.SSH` builds it on a host, from ``python3.X`` on this host's PATH. ``None`` with
            `login`: that environment is built under the login's home, from ``python3.X`` there.
        login: ``"[user@]host[:port]"`` of a login node: Slurm's commands run there over SSH, and the client
            reaches each node through that connection (a local forward on 127.0.0.1 here). ``None``: this
            machine runs them and reaches the nodes' addresses directly.
        key_file, known_hosts, verify_host_keys, connect_timeout: the SSH login to `login`, as for `sky.SSH`
            (host keys are verified against ``~/.ssh/known_hosts`` by default).
        offline, installer, index_url, install_timeout: how that environment is built, as for `sky.SSH`.
        start_timeout: seconds the job may wait in the queue; then it is cancelled and the pool fails.
        agent_timeout: seconds an agent may take to start on its node once the job runs.
        forward_output: print what tasks print, each line prefixed with the node's name.
        quiet: show no progress (the job queued, its reason, running; nor the automatic bar of a long call).
        progress: called with each progress line instead of printing it.
    """

    partition: str | None = None
    account: str | None = None
    time: str = "1:00:00"
    qos: str | None = None
    constraint: str | None = None
    gres: str | None = None
    sbatch_args: Sequence[str] = ()
    python: str | None = None
    login: str | None = None
    key_file: str | None = None
    known_hosts: str | None = None
    verify_host_keys: bool = True
    connect_timeout: float = 15.0
    offline: bool | None = None
    installer: Literal["auto", "uv", "pip"] = "auto"
    index_url: str | None = None
    install_timeout: float = 1800.0
    start_timeout: float = 600.0
    agent_timeout: float = 120.0
    forward_output: bool = True
    quiet: bool = False
    progress: Callable[[str], None] | None = None
    name: str = field(default="slurm", init=False)
    shares_client_files: bool = field(default=False, init=False)
    resource_parameters: frozenset[str] = field(
        default=frozenset({"cpu", "memory", "accelerator"}), init=False, repr=False
    )

    def __post_init__(self) -> None:
        if isinstance(self.sbatch_args, str):
            raise TypeError(
                f"Slurm(sbatch_args=...) takes a sequence of options, not one string: {self.sbatch_args!r}"
            )
        object.__setattr__(self, "sbatch_args", tuple(self.sbatch_args))
        if self.login is not None:
            from skyward.providers.ssh_connect import HostSpec

            HostSpec.parse(self.login)  # fail at construction, not at launch
        if not isinstance(self.time, str) or not self.time.strip():
            raise ValueError(f"Slurm(time=...) must be a Slurm time limit like '1:00:00', got {self.time!r}")

    def cpus_per_node(self, cluster: ClusterSpec) -> int:
        return cluster.resources.cpu or cluster.worker.concurrency

    def salloc_args(self, cluster: ClusterSpec) -> list[str]:
        """The options of the pool's job (salloc's, before its command)."""
        resources = cluster.resources
        args = [
            f"--nodes={cluster.nodes}",
            "--ntasks-per-node=1",
            f"--cpus-per-task={self.cpus_per_node(cluster)}",
            f"--time={self.time}",
            f"--job-name=skyward-{cluster.pool_id}",
            "--no-kill",  # a node that fails leaves the others running: the pool moves its work
        ]
        optional = {"partition": self.partition, "account": self.account, "qos": self.qos}
        optional["constraint"] = self.constraint
        optional["gres"] = self.gres or (gres_of(resources.accelerator) if resources.accelerator else None)
        args += [f"--{option}={value}" for option, value in optional.items() if value]
        if resources.memory is not None:
            args.append(f"--mem={memory_mib(resources.memory)}M")
        return [*args, *self.sbatch_args]

    def _report(self, message: str) -> None:
        if self.progress is not None:
            try:
                self.progress(message)
            except Exception as exc:  # noqa: BLE001 - a broken progress display must not break the pool
                logger.warning("the progress callback raised %s: %s", type(exc).__name__, exc)
        else:  # an INFO record of skyward.slurm, and a line on stderr unless quiet
            status_line(logger, message, f"skyward: {message}", shown=not self.quiet)

    def _environment(self, shell: Shell, image: Image) -> str:
        """Build (or find) the image's environment on the shared home: through the login node, or here."""
        from skyward.bootstrap.remote import BootstrapSettings
        from skyward.ioloop import shared_loop
        from skyward.providers.slurm.environment import build_environment
        from skyward.providers.slurm.local_node import LocalNode
        from skyward.providers.slurm.login_shell import LoginShell

        settings = BootstrapSettings(self.offline, self.installer, self.index_url, self.install_timeout)
        python = f"python{sys.version_info.major}.{sys.version_info.minor}"
        if isinstance(shell, LoginShell):
            return build_environment(shell.conn, shell.io, shell.where, python, image, settings, self._report)
        where = f"{socket.gethostname()} (this host)"
        return build_environment(LocalNode(), shared_loop(), where, python, image, settings, self._report)

    def launch(self, cluster: ClusterSpec, image: Image, secret: bytes, lease: float) -> SlurmDeployment:
        """Submit the pool's job, wait for it to run, start an agent on each of its nodes.

        On any failure, Ctrl-C included, the job is cancelled before the error propagates.
        """
        build = self.python is None and self.login is not None
        if self.python is None and self.login is None:
            # This client's interpreter runs on the nodes if it holds what the image asks; else the image's
            # environment is built here, on the home the nodes share.
            from skyward.providers.local import check_image

            try:
                check_image(image)
            except ProvisionError:
                build = True
        shell: Shell = LocalShell()
        if self.login is not None:
            from skyward.providers.slurm.login_shell import LoginShell

            shell = LoginShell.open(
                self.login,
                key_file=self.key_file,
                known_hosts=self.known_hosts,
                verify_host_keys=self.verify_host_keys,
                timeout=self.connect_timeout,
            )
        allocation = Allocation(shell, self.salloc_args(cluster), self._report)
        deployment = SlurmDeployment(self, shell, allocation)
        try:
            if build:
                deployment.python = self._environment(shell, image)
            try:
                allocation.submit()
            except FileNotFoundError:
                raise ProvisionError(
                    "salloc is not on PATH: run the pool where Slurm's commands work"
                ) from None
            hosts = allocation.wait_running(self.start_timeout)
            if len(hosts) != cluster.nodes:
                raise ProvisionError(
                    f"slurm job {allocation.job_id} got {len(hosts)} nodes, not {cluster.nodes}"
                )
            deployment.start(hosts, cluster, image, secret, lease)
        except BaseException:
            deployment.close()
            raise
        self._report(f"slurm job {allocation.job_id}: {cluster.nodes} agent(s) ready on {', '.join(hosts)}")
        return deployment
