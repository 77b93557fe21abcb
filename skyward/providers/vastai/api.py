"""The VastAI adapter of `RentedDeployment`, through the official SDK (``vastai``).

The SDK is the optional extra ``skyward[vastai]``, imported here when a pool launches. API calls (under
``/api/v0`` unless said), in order: ``POST /bundles/`` (the offer search); ``POST /ssh/`` (the pool's key);
``PUT /asks/{offer id}/`` per node (the instance, with the watchdog as its onstart script; a taken offer is
skipped for the next one); ``GET /instances/{id}/`` until each runs; and at teardown ``GET
/api/v1/instances/`` (any instance of the pool not yet recorded), ``DELETE /instances/{id}/``, ``DELETE
/ssh/{id}/``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from skyward.errors import ProvisionError
from skyward.providers.aws.userdata import watchdog_times
from skyward.providers.rented.cloud import MachineState, Say
from skyward.providers.vastai.offers import choose_offers, describe_offer, offer_query
from skyward.providers.vastai.onstart import DEFAULT_SERVER, onstart
from skyward.spec import ClusterSpec

if TYPE_CHECKING:
    from skyward.providers.vastai import VastAI

INSTALL_HINT = (
    "install the VastAI SDK (`uv sync --extra vastai` in a clone of skyward, or `uv pip install vastai`)"
)
_GONE = frozenset({"exited", "offline", "stopped", "destroyed"})


@contextlib.contextmanager
def vast_call(what: str) -> Iterator[None]:
    """The SDK's HTTP errors as `ProvisionError` saying what was being done."""
    import requests

    try:
        yield
    except requests.HTTPError as exc:
        response = exc.response
        detail = response.text[:300] if response is not None else str(exc)
        status = response.status_code if response is not None else "?"
        raise ProvisionError(f"VastAI refused {what}: HTTP {status}: {detail}") from None
    except requests.RequestException as exc:
        raise ProvisionError(f"VastAI could not be reached while {what}: {exc}") from None


def open_client(provider: VastAI) -> Any:
    """The SDK's client: the key from the provider, else ``VAST_API_KEY``, else the vastai CLI's key file."""
    try:
        from vastai import VastAI as Client
    except ImportError:
        raise ProvisionError(f"sky.VastAI needs the VastAI SDK: {INSTALL_HINT}") from None
    try:
        return Client(api_key=provider.api_key, server_url=provider.api_url, quiet=True)
    except RuntimeError as exc:  # no key anywhere
        raise ProvisionError(
            f"sky.VastAI needs an API key: pass VastAI(api_key=...) or set VAST_API_KEY ({exc})"
        ) from None


class VastCloud:
    """One pool's dealings with VastAI (see `skyward.providers.rented.cloud.MachineCloud`)."""

    label = "vastai"

    def __init__(
        self, provider: VastAI, client: Any, offers: list[dict[str, Any]], script: str | None
    ) -> None:
        self._provider = provider
        self._client = client
        self.offers = offers
        self._script = script
        self.key_id: int | None = None

    @classmethod
    def open(cls, provider: VastAI, cluster: ClusterSpec, lease: float) -> VastCloud:
        """Search the offers and choose those the pool's nodes rent (read-only calls)."""
        client = open_client(provider)
        resources = cluster.resources
        query = offer_query(resources, provider.max_price, provider.offer_filters)
        with vast_call("searching offers"):
            found = client.search_offers(
                query=query,
                type="on-demand",
                order="dph_total",
                limit=max(20, cluster.nodes * 4),
                storage=provider.disk_gb,
            )
        offers = choose_offers(found, cluster.nodes, resources, provider.max_price)
        script = None
        if provider.watchdog:
            python = provider.python or f"python{sys.version_info.major}.{sys.version_info.minor}"
            times = watchdog_times(provider.ssh_timeout, 0.0, lease)
            script = onstart(cluster.pool_id, times, python, provider.api_url or DEFAULT_SERVER)
        return cls(provider, client, offers, script)

    def describe_plan(self, nodes: int) -> str:
        return f"{nodes} instance(s) of {self._provider.image}: " + "; ".join(
            describe_offer(o) for o in self.offers[:nodes]
        )

    def prepare(self, pool_id: str, public_key: str) -> None:
        with vast_call("registering the pool's SSH key"):
            self.key_id = int(self._client.create_ssh_key(ssh_key=public_key)["key"]["id"])

    def launch(self, nodes: int, pool_id: str, record: Callable[[str], None], say: Say) -> None:
        provider = self._provider
        spares = list(self.offers)
        created = 0
        while created < nodes:
            if not spares:
                raise ProvisionError(
                    f"VastAI: only {created} of {nodes} offers could be rented; the rest were taken"
                )
            offer = spares.pop(0)
            try:
                with vast_call(f"renting {describe_offer(offer)}"):
                    answer = self._client.create_instance(
                        id=int(offer["id"]),
                        image=provider.image,
                        disk=provider.disk_gb,
                        label=f"skyward-{pool_id}",
                        onstart_cmd=self._script,
                        ssh=True,
                        direct=provider.direct,
                    )
            except ProvisionError as exc:
                if "HTTP 4" not in str(exc) or "HTTP 401" in str(exc) or "HTTP 403" in str(exc):
                    raise
                say(f"{exc}; trying the next offer")  # taken by someone else since the search
                continue
            if not answer.get("success") or not answer.get("new_contract"):
                say(f"VastAI did not rent offer {offer['id']} ({answer}); trying the next offer")
                continue
            record(str(answer["new_contract"]))
            created += 1

    def describe(self, ids: Sequence[str]) -> list[MachineState]:
        states = []
        for instance_id in ids:
            with vast_call(f"describing instance {instance_id}"):
                row = self._client.show_instance(id=int(instance_id))
            states.append(self._state(instance_id, row))
        return states

    def _state(self, instance_id: str, row: dict[str, Any] | None) -> MachineState:
        if row is None:
            return MachineState(instance_id, "gone", detail="destroyed")
        status = str(row.get("actual_status") or "loading")
        detail = " ".join(p for p in (status, str(row.get("status_msg") or "").strip()) if p)
        if status in _GONE or row.get("intended_status") == "stopped":
            return MachineState(instance_id, "gone", detail=detail)
        if self._provider.direct:
            host = row.get("public_ipaddr")
            port = ((row.get("ports") or {}).get("22/tcp") or [{}])[0].get("HostPort")
        else:
            host, port = row.get("ssh_host"), row.get("ssh_port")
        if status == "running" and host and port:
            return MachineState(instance_id, "running", str(host), int(port), detail)
        return MachineState(instance_id, "pending", detail=detail)

    def pool_instances(self, pool_id: str) -> list[str]:
        with vast_call("listing instances"):
            rows = self._client.show_instances()
        return [str(r["id"]) for r in rows if r.get("label") == f"skyward-{pool_id}"]

    def delete(self, ids: Sequence[str]) -> None:
        failed = []
        for instance_id in ids:
            try:
                with vast_call(f"destroying instance {instance_id}"):
                    self._client.destroy_instance(id=int(instance_id))
            except ProvisionError as exc:
                failed.append(str(exc))
        if failed:
            raise ProvisionError("; ".join(failed))

    def forget(self) -> None:
        if self.key_id is not None:
            with vast_call("deleting the pool's SSH key"):
                self._client.delete_ssh_key(id=self.key_id)
            self.key_id = None
