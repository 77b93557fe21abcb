"""A fake of the part of VastAI's public API (https://docs.vast.ai/api-reference) that `sky.VastAI` uses through
the ``vastai`` SDK, whose instances are hosts of the sshd lab.

Endpoints covered (``Authorization: Bearer <api key>`` on each):

- ``POST /api/v0/bundles/``: the offer search; filters ``{field: {"eq"|"gte"|"lte"|"in": value}}``, ``order``
  ``[[field, "asc"|"desc"]]``, ``limit``; answers ``{"offers": [...]}``. Rented offers are no longer listed.
- ``POST /api/v0/ssh/`` ``{"ssh_key"}`` -> ``{"success", "key": {"id", ...}}``; ``DELETE /api/v0/ssh/{id}/``.
- ``PUT /api/v0/asks/{offer id}/`` (create instance: ``image``, ``disk``, ``label``, ``onstart``,
  ``runtype``...) -> ``{"success": true, "new_contract": <instance id>}``; an offer taken meanwhile answers 400.
- ``GET /api/v0/instances/{id}/?owner=me`` -> ``{"instances": row}``: ``actual_status`` ``loading``, then
  ``running`` with ``ssh_host``/``ssh_port`` (the proxy) and ``public_ipaddr``/``ports`` (direct).
- ``GET /api/v1/instances/`` -> ``{"instances": [...], "next_token": null}``.
- ``DELETE /api/v0/instances/{id}/`` -> ``{"success": true}``.
- ``PUT /api/v0/instances/{id}/`` ``{"state": "stopped"}`` -> ``{"success": true}`` (stop).

An instance's own key (``CONTAINER_API_KEY`` on the instance: `container_keys`) is accepted for that instance's
stop, and for its destruction unless `scoped_may_destroy` is False.

Instance ``n`` (in creation order) is lab host ``hosts[n]`` (sshd on port 22 of its address); the account's SSH
keys are appended to the lab's ``authorized_keys`` when it is created, as VastAI's SSH mode does.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fake_http import ApiError, FakeApi, Reply, Request

API_KEY = "fake-vast-api-key"
NOWHERE = "10.231.255.253"  # in the lab's range, never a lab host's: nothing answers there


def offer(
    offer_id: int, price: float, cpus: float, ram_gb: int, gpus: int = 1, gpu: str = "RTX 4090"
) -> dict[str, Any]:
    """One offer as the search answers it (the fields the provider and the SDK read, and a few more)."""
    return {
        "id": offer_id,
        "ask_contract_id": offer_id,
        "machine_id": 1000 + offer_id,
        "gpu_name": gpu,
        "num_gpus": gpus,
        "gpu_ram": 24564,
        "cpu_cores_effective": cpus,
        "cpu_ram": ram_gb * 1000,
        "dph_total": price,
        "disk_space": 200.0,
        "geolocation": "Finland, FI",
        "reliability2": 0.99,
        "verified": True,
        "rentable": True,
        "rented": False,
        "external": False,
        "hosting_type": 1,
    }


OFFERS = [
    offer(11, 0.45, 16, 64),
    offer(12, 0.31, 8, 32),
    offer(13, 0.29, 4, 16),
    offer(14, 0.33, 8, 32),
    offer(15, 2.10, 32, 256, gpus=1, gpu="H100 SXM"),
]


def _matches(value: Any, test: dict[str, Any]) -> bool:
    for op, wanted in test.items():
        if op == "eq" and value != wanted:
            return False
        if op == "neq" and value == wanted:
            return False
        if op == "gte" and not value >= wanted:
            return False
        if op == "lte" and not value <= wanted:
            return False
        if op == "in" and value not in wanted:
            return False
    return True


class FakeVast(FakeApi):
    def __init__(self, addresses: list[str], authorized_keys: Path) -> None:
        self.addresses = addresses
        self.authorized_keys = authorized_keys
        self.offers = [dict(o) for o in OFFERS]
        self.taken: set[int] = set()  # offers someone else rents between the search and the pool's PUT
        self.unreachable: set[int] = set()
        self.container_keys: dict[int, str] = {}
        self.scoped_may_destroy = True
        self.on_create: Callable[[], None] | None = None  # called once an instance exists, before the answer
        self.keys: dict[int, dict[str, Any]] = {}
        self.instances: dict[int, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []  # every PUT /asks body, with its offer id
        self.searches: list[dict[str, Any]] = []
        self._ids = itertools.count(5000)
        self._count = itertools.count()
        super().__init__()

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", "/api/v0/bundles/", self.search),
            ("POST", "/api/v0/ssh/", self.add_key),
            ("DELETE", r"/api/v0/ssh/(?P<id>\d+)/", self.delete_key),
            ("PUT", r"/api/v0/asks/(?P<id>\d+)/", self.rent),
            ("GET", r"/api/v0/instances/(?P<id>\d+)/", self.show),
            ("GET", "/api/v1/instances/", self.list_instances),
            ("DELETE", r"/api/v0/instances/(?P<id>\d+)/", self.destroy),
            ("PUT", r"/api/v0/instances/(?P<id>\d+)/", self.change),
        ]

    def left(self) -> dict[str, list[int]]:
        return {"instances": sorted(self.instances), "ssh_keys": sorted(self.keys)}

    def _authorised(self, request: Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            raise ApiError(401, {"success": False, "error": "invalid_api_key", "msg": "Invalid API key"})

    def search(self, request: Request) -> Reply:
        self._authorised(request)
        query = dict(request.body)
        self.searches.append(dict(request.body))
        order = query.pop("order", [["score", "desc"]])
        limit = query.pop("limit", None)
        for setting in ("type", "allocated_storage", "disable_bundling"):
            query.pop(setting, None)
        found = [
            o for o in self.offers if not o["rented"] and all(_matches(o.get(k), t) for k, t in query.items())
        ]
        for field, direction in reversed(order):
            found.sort(key=lambda o: o.get(field) or 0, reverse=direction == "desc")
        return Reply(200, {"offers": found[:limit] if limit else found})

    def add_key(self, request: Request) -> Reply:
        self._authorised(request)
        key_id = next(self._ids)
        self.keys[key_id] = {
            "id": key_id,
            "user_id": 1,
            "public_key": request.body["ssh_key"],
            "deleted_at": None,
        }
        return Reply(200, {"success": True, "key": self.keys[key_id]})

    def delete_key(self, request: Request) -> Reply:
        self._authorised(request)
        if self.keys.pop(int(request.match["id"]), None) is None:
            raise ApiError(404, {"success": False, "error": "not_found", "msg": "no such key"})
        return Reply(200, {"success": True})

    def rent(self, request: Request) -> Reply:
        self._authorised(request)
        offer_id = int(request.match["id"])
        body = request.body
        self.created.append({"offer": offer_id, **body})
        found = next((o for o in self.offers if o["id"] == offer_id), None)
        if found is None or found["rented"] or offer_id in self.taken:
            raise ApiError(
                400, {"success": False, "error": "no_such_ask", "msg": f"offer {offer_id} is not available"}
            )
        found["rented"] = True
        index = next(self._count)
        address = NOWHERE if index in self.unreachable else self.addresses[index]
        with open(self.authorized_keys, "a") as keys:  # what VastAI's SSH mode does at start
            keys.writelines(k["public_key"].strip() + "\n" for k in self.keys.values())
        instance_id = next(self._ids)
        self.instances[instance_id] = {
            "id": instance_id,
            "label": body.get("label"),
            "image_uuid": body.get("image"),
            "onstart": body.get("onstart"),
            "actual_status": None,
            "intended_status": "running",
            "cur_state": "running",
            "status_msg": "pulling image",
            "ssh_host": address,
            "ssh_port": 22,
            "public_ipaddr": address,
            "ports": {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "22"}]},
            "machine_id": found["machine_id"],
            "num_gpus": found["num_gpus"],
            "gpu_name": found["gpu_name"],
            "dph_total": found["dph_total"],
            "start_date": time.time(),
            "extra_env": [],
        }
        if self.on_create is not None:
            self.on_create()
        return Reply(200, {"success": True, "new_contract": instance_id})

    def _row(self, instance: dict[str, Any]) -> dict[str, Any]:
        row = dict(instance)
        if row["actual_status"] != "running":  # no address to reach until it runs
            row.update(ssh_host=None, ssh_port=None, public_ipaddr=None, ports={})
        return row

    def show(self, request: Request) -> Reply:
        self._authorised(request)
        instance = self.instances.get(int(request.match["id"]))
        if instance is None:
            return Reply(200, {"instances": None})
        if instance["actual_status"] is None:
            instance["actual_status"] = "loading"
        elif instance["actual_status"] == "loading":
            instance.update(actual_status="running", status_msg="success, running")
        return Reply(200, {"instances": self._row(instance)})

    def list_instances(self, request: Request) -> Reply:
        self._authorised(request)
        return Reply(200, {"instances": [self._row(i) for i in self.instances.values()], "next_token": None})

    def _scoped(self, request: Request, allowed: bool) -> None:
        """The account's key, or (where `allowed`) the instance's own."""
        own = self.container_keys.get(int(request.match["id"]))
        if allowed and own is not None and request.headers.get("Authorization") == f"Bearer {own}":
            return
        self._authorised(request)

    def change(self, request: Request) -> Reply:
        self._scoped(request, allowed=True)
        instance = self.instances.get(int(request.match["id"]))
        if instance is None:
            raise ApiError(404, {"success": False, "error": "no_such_instance", "msg": "no such instance"})
        if request.body.get("state") == "stopped":
            instance.update(intended_status="stopped", actual_status="exited")
        return Reply(200, {"success": True})

    def destroy(self, request: Request) -> Reply:
        self._scoped(request, allowed=self.scoped_may_destroy)
        if self.instances.pop(int(request.match["id"]), None) is None:
            raise ApiError(404, {"success": False, "error": "no_such_instance", "msg": "no such instance"})
        return Reply(200, {"success": True})
