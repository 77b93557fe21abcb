"""`RentedDeployment`: one pool's nodes on machines rented through a cloud API, from its SSH key to its workers.

`start` makes the pool's key and registers it (`MachineCloud.prepare`), launches the instances, waits for them
to answer SSH (pinning each host key), then hands them to `sky.SSH`, which bootstraps and starts the nodes as on
any host. `close` stops the workers, then deletes every instance of the pool and what `prepare` registered, in a
thread that a second Ctrl-C does not stop; it runs on every exit path, a launch that fails halfway included.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from skyward.errors import ProvisionError
from skyward.image import Image
from skyward.link import Link
from skyward.progress_display import status_line
from skyward.providers.aws.release import CleanupFailed
from skyward.providers.aws.teardown import run_outliving_interrupts
from skyward.providers.base import StartedNode, WorkerExit
from skyward.providers.pinned_ssh import pinned_ssh
from skyward.providers.rented.cloud import MachineCloud, RentedSettings
from skyward.providers.rented.keys import new_key
from skyward.providers.rented.wait import ReadyMachine, wait_for_machines
from skyward.providers.ssh import SSHDeployment
from skyward.spec import ClusterSpec


class RentedDeployment:
    """One pool's nodes on rented machines: the `sky.SSH` deployment that runs them, and what the pool rented."""

    def __init__(self, settings: RentedSettings, cloud: MachineCloud, pool_id: str) -> None:
        self._settings = settings
        self.cloud = cloud
        self.pool_id = pool_id
        self.workdir = Path(tempfile.mkdtemp(prefix=f"skyward-{pool_id}-"))
        self.instance_ids: list[str] = []
        self.ready: list[ReadyMachine] = []
        self.ssh: SSHDeployment | None = None
        self.nodes: list[StartedNode] = []
        self._closed = False

    def say(self, message: str) -> None:
        """A status message: an INFO record of ``skyward.<cloud>`` (``skyward.verda``, ``skyward.vastai``), and a
        line on stderr unless quiet."""
        line = f"skyward [{self.cloud.label} {self.pool_id}] {message}"
        log = logging.getLogger(f"skyward.{self.cloud.label}")
        status_line(log, f"{self.pool_id}: {message}", line, shown=not self._settings.quiet)

    def start(self, cluster: ClusterSpec, image: Image, secret: bytes, lease: float) -> None:
        settings = self._settings
        key_file = self.workdir / "id_ed25519"
        self.cloud.prepare(self.pool_id, new_key(key_file, comment=f"skyward {self.pool_id}"))
        self.say(f"launching {self.cloud.describe_plan(cluster.nodes)}")
        self.cloud.launch(cluster.nodes, self.pool_id, self.instance_ids.append, self.say)
        self.say(
            f"waiting for {', '.join(self.instance_ids)} to run and answer SSH (up to {settings.ssh_timeout:.0f}s)"
        )
        self.ready = wait_for_machines(self.cloud, list(self.instance_ids), settings.ssh_timeout, self.say)
        ssh = pinned_ssh(
            settings.user,
            [(m.host, m.port, [m.key]) for m in self.ready],
            key_file=key_file,
            workdir=self.workdir,
            ssh_options=settings.ssh_options,
            quiet=settings.quiet,
            progress=settings.progress,
            python=settings.python,
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
        return self.ssh.restart(index)

    def close(self) -> None:
        """Stop the workers, then delete the pool's instances, key and other account objects. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.ssh is not None:
                self.ssh.close()
        finally:
            run_outliving_interrupts(
                self.release,
                self.pool_id,
                self.workdir,
                self.cloud.label,
                logging.getLogger(f"skyward.{self.cloud.label}"),
            )

    def release(self) -> None:
        """Delete every instance of the pool (those recorded and any the cloud lists for it), then the key and
        what else `prepare` registered. Tries everything; raises `CleanupFailed` naming what is left."""
        problems = []
        ids = list(self.instance_ids)
        try:
            ids += [i for i in self.cloud.pool_instances(self.pool_id) if i not in ids]
        except Exception as exc:  # noqa: BLE001  (the recorded ids are still deleted)
            problems.append(f"listing the pool's instances failed ({exc})")
        if ids:
            self.say(f"deleting {', '.join(ids)}")
            try:
                self.cloud.delete(ids)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"instances {', '.join(ids)} may still exist ({exc})")
        try:
            self.cloud.forget()
        except Exception as exc:  # noqa: BLE001
            problems.append(f"the pool's SSH key (skyward-{self.pool_id}) may still be registered ({exc})")
        if problems:
            raise CleanupFailed(
                f"{self.cloud.label} pool {self.pool_id}: " + "; ".join(problems) + ". Delete them in the "
                f"{self.cloud.label} console (their names start with skyward-{self.pool_id})."
            )
