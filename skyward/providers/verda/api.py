"""The Verda (formerly DataCrunch) adapter of `RentedDeployment`, through the official SDK (``verda``).

The SDK is the optional extra ``skyward[verda]``, imported here when a pool launches. API calls, in order:
``POST /oauth2/token``; ``GET /instance-types`` and ``GET /instance-availability`` (the choice); ``POST
/sshkeys`` and ``POST /scripts`` (the pool's key and its watchdog startup script); ``POST /instances`` per node;
``GET /instances/{id}`` until each runs; and at teardown ``GET /instances`` (any instance of the pool not yet
recorded), ``PUT /instances`` (action ``delete``, OS volumes deleted permanently), ``DELETE /sshkeys/{id}``,
``DELETE /scripts/{id}``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from skyward.errors import ProvisionError
from skyward.providers.aws.userdata import user_data, watchdog_times
from skyward.providers.rented.cloud import MachineState, Say
from skyward.providers.verda.choice import MARKETS, VerdaChoice, VerdaType, availability, choose
from skyward.spec import ClusterSpec

if TYPE_CHECKING:
    from skyward.providers.verda import Verda

INSTALL_HINT = (
    "install the Verda SDK (`uv sync --extra verda` in a clone of skyward, or `uv pip install verda`)"
)
_RUNNING = frozenset({"running"})
_GONE = frozenset({"offline", "error", "discontinued", "deleting", "notfound", "no_capacity"})


@contextlib.contextmanager
def verda_call(what: str) -> Iterator[None]:
    """Verda's API errors as `ProvisionError` saying what was being done."""
    from verda.exceptions import APIException

    try:
        yield
    except APIException as exc:
        raise ProvisionError(f"Verda refused {what}: {exc.code}: {exc.message}") from None


def open_client(provider: Verda) -> Any:
    """A signed-in ``VerdaClient``: credentials from the provider, else ``VERDA_CLIENT_ID``/``..._SECRET``."""
    try:
        from verda import VerdaClient
    except ImportError:
        raise ProvisionError(f"sky.Verda needs the Verda SDK: {INSTALL_HINT}") from None
    client_id = provider.client_id or os.environ.get("VERDA_CLIENT_ID")
    secret = provider.client_secret or os.environ.get("VERDA_CLIENT_SECRET")
    if not client_id or not secret:
        raise ProvisionError(
            "sky.Verda needs API credentials: pass Verda(client_id=..., client_secret=...) or set "
            "VERDA_CLIENT_ID and VERDA_CLIENT_SECRET (create them under Keys in the Verda console)."
        )
    with verda_call("signing in (check VERDA_CLIENT_ID and VERDA_CLIENT_SECRET)"):
        return VerdaClient(client_id, secret, base_url=provider.api_url)


class VerdaCloud:
    """One pool's dealings with Verda (see `skyward.providers.rented.cloud.MachineCloud`)."""

    label = "verda"

    def __init__(self, provider: Verda, client: Any, choice: VerdaChoice, startup_script: str | None) -> None:
        self._provider = provider
        self._client = client
        self.choice = choice
        self._startup_script = startup_script
        self.key_id: str | None = None
        self.script_id: str | None = None
        self._volumes: dict[str, str] = {}  # instance id -> its OS volume, deleted with it

    @classmethod
    def open(cls, provider: Verda, cluster: ClusterSpec, lease: float) -> VerdaCloud:
        """Sign in and choose what the pool's nodes run on (read-only calls)."""
        client = open_client(provider)
        resources = cluster.resources
        with verda_call("listing instance types"):
            types = [VerdaType.from_sdk(t) for t in client.instance_types.get()]
        available = {}
        for spot in MARKETS[resources.allocation or "spot-if-available"]:
            with verda_call("reading instance availability"):
                rows = client.instances.get_availabilities(is_spot=spot, location_code=provider.location)
            available[spot] = availability(rows)
        choice = choose(
            types, available, resources, instance_type=provider.instance_type, image=provider.image
        )
        script = None
        if provider.watchdog:
            script = user_data(cluster.pool_id, watchdog_times(provider.ssh_timeout, 0.0, lease))
        return cls(provider, client, choice, script)

    def describe_plan(self, nodes: int) -> str:
        return self.choice.describe(nodes)

    def prepare(self, pool_id: str, public_key: str) -> None:
        with verda_call("registering the pool's SSH key"):
            self.key_id = self._client.ssh_keys.create(f"skyward-{pool_id}", public_key).id
        if self._startup_script is not None:
            with verda_call("registering the pool's startup script (its node watchdog)"):
                self.script_id = self._client.startup_scripts.create(
                    f"skyward-{pool_id}", self._startup_script
                ).id

    def launch(self, nodes: int, pool_id: str, record: Callable[[str], None], say: Say) -> None:
        choice = self.choice
        os_volume: dict[str, Any] = {"name": f"skyward-{pool_id}", "size": self._provider.disk_gb}
        if choice.spot:
            os_volume["on_spot_discontinue"] = "delete_permanently"  # nothing left when Verda takes it back
        for index in range(nodes):
            with verda_call(
                f"creating instance {index + 1} of {nodes} ({choice.type.name} in {choice.location})"
            ):
                instance = self._client.instances.create(
                    instance_type=choice.type.name,
                    image=choice.image,
                    hostname=f"skyward-{pool_id}-{index}",
                    description=f"skyward pool {pool_id}",
                    ssh_key_ids=[self.key_id],
                    location=choice.location,
                    startup_script_id=self.script_id,
                    os_volume=dict(os_volume, name=f"skyward-{pool_id}-{index}"),
                    is_spot=choice.spot,
                    wait_for_status=None,
                )
            record(instance.id)
            self._remember(instance)

    def describe(self, ids: Sequence[str]) -> list[MachineState]:
        states = []
        for instance_id in ids:
            with verda_call(f"describing instance {instance_id}"):
                instance = self._client.instances.get_by_id(instance_id)
            self._remember(instance)
            status = str(instance.status)
            if status in _GONE:
                states.append(MachineState(instance_id, "gone", detail=status))
            elif status in _RUNNING and instance.ip:
                states.append(MachineState(instance_id, "running", instance.ip, 22, status))
            else:
                states.append(MachineState(instance_id, "pending", detail=status))
        return states

    def pool_instances(self, pool_id: str) -> list[str]:
        with verda_call("listing instances"):
            instances = self._client.instances.get()
        mine = [i for i in instances if str(i.hostname).startswith(f"skyward-{pool_id}-")]
        for instance in mine:
            self._remember(instance)
        return [i.id for i in mine]

    def delete(self, ids: Sequence[str]) -> None:
        volumes = [self._volumes[i] for i in ids if i in self._volumes]
        with verda_call(f"deleting instances {', '.join(ids)}"):
            self._client.instances.action(
                list(ids), "delete", volume_ids=volumes or None, delete_permanently=bool(volumes)
            )

    def forget(self) -> None:
        failed = []
        for what, ident, service in (
            ("startup script", self.script_id, self._client.startup_scripts),
            ("SSH key", self.key_id, self._client.ssh_keys),
        ):
            if ident is None:
                continue
            try:
                with verda_call(f"deleting the pool's {what}"):
                    service.delete_by_id(ident)
            except ProvisionError as exc:
                failed.append(str(exc))
        if failed:
            raise ProvisionError("; ".join(failed))

    def _remember(self, instance: Any) -> None:
        if getattr(instance, "os_volume_id", None):
            self._volumes[instance.id] = instance.os_volume_id
