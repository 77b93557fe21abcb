"""A fake of the part of Verda's public API (https://api.verda.com/v1/docs) that `sky.Verda` uses through the
``verda`` SDK, whose instances are hosts of the sshd lab.

Endpoints covered (paths under ``/v1``):

- ``POST /oauth2/token``: client-credentials grant; every other call needs its ``Bearer`` token.
- ``GET /instance-types``: the catalogue (``cpu.number_of_cores``, ``memory.size_in_gigabytes``,
  ``gpu.number_of_gpus``, ``price_per_hour``, ``spot_price``, ``supported_os``, ...).
- ``GET /instance-availability?isSpot=&location_code=``: ``[{"location_code", "availabilities": [types]}]``.
- ``POST /sshkeys`` (answers the new id as text), ``DELETE /sshkeys/{id}``.
- ``POST /scripts`` (startup scripts; the id as text), ``DELETE /scripts/{id}``.
- ``POST /instances`` (the id as text), ``GET /instances``, ``GET /instances/{id}``: an instance is
  ``ordered``, then ``provisioning``, then ``running`` with its ``ip`` (one step per read).
- ``PUT /instances``: ``{"id": [...], "action": "delete", "volume_ids": [...], "delete_permanently": bool}``;
  volumes not deleted permanently go to the trash, which counts as left behind.

Instance ``n`` (in creation order) is lab host ``hosts[n]``: its ``ip`` is that host's address (sshd on port
22, as on a real instance), and its SSH keys are appended to the lab's ``authorized_keys``, as the image's
cloud-init would. Indices in `unreachable` get an address where nothing answers.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fake_http import ApiError, FakeApi, Reply, Request

CLIENT_ID, CLIENT_SECRET = "fake-client-id", "fake-client-secret"
NOWHERE = "10.231.255.253"  # in the lab's range, never a lab host's: nothing answers there


def instance_type(
    name: str, cpus: int, memory: int, price: float, gpus: int = 0, model: str = ""
) -> dict[str, Any]:
    """One ``GET /instance-types`` entry, with the fields the SDK reads."""
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
        "instance_type": name,
        "price_per_hour": f"{price:.3f}",
        "spot_price": f"{price / 3:.3f}",
        "description": name,
        "cpu": {"description": f"{cpus} CPU", "number_of_cores": cpus},
        "gpu": {"description": f"{gpus}x {model}" if gpus else "", "number_of_gpus": gpus},
        "memory": {"description": f"{memory}GB RAM", "size_in_gigabytes": memory},
        "gpu_memory": {"description": "", "size_in_gigabytes": 80 * gpus},
        "storage": {"description": "dynamic"},
        "best_for": [],
        "model": model or "CPU Node",
        "name": model or "CPU Node",
        "p2p": "",
        "currency": "usd",
        "manufacturer": "NVIDIA" if gpus else "AMD",
        "display_name": name,
        "supported_os": ["ubuntu-24.04-cuda-12.8-open-docker", "ubuntu-22.04"] if gpus else ["ubuntu-24.04"],
    }


CATALOGUE = [
    instance_type("CPU.4V.16G", 4, 16, 0.12),
    instance_type("CPU.8V.32G", 8, 32, 0.24),
    instance_type("CPU.2V.8G", 2, 8, 0.06),
    instance_type("1H100.80S.30V", 30, 120, 2.19, gpus=1, model="H100"),
    instance_type("1A100.22V", 22, 120, 1.29, gpus=1, model="A100"),
]


class FakeVerda(FakeApi):
    prefix = "/v1"

    def __init__(self, addresses: list[str], authorized_keys: Path) -> None:
        self.addresses = addresses
        self.authorized_keys = authorized_keys
        self.types = list(CATALOGUE)
        # {spot: [{"location_code", "availabilities"}]}: everything everywhere, unless a test says otherwise.
        names = [t["instance_type"] for t in self.types]
        self.availability: dict[bool, list[dict[str, Any]]] = {
            spot: [{"location_code": "FIN-01", "availabilities": names}] for spot in (False, True)
        }
        self.unreachable: set[int] = set()
        self.on_create: Callable[[], None] | None = None  # called once an instance exists, before the answer
        self.tokens: set[str] = set()
        self.keys: dict[str, dict[str, Any]] = {}
        self.scripts: dict[str, dict[str, Any]] = {}
        self.instances: dict[str, dict[str, Any]] = {}
        self.volumes: dict[str, str] = {}  # id -> "attached" | "trash"
        self.created: list[dict[str, Any]] = []  # every POST /instances body, in order
        self._count = itertools.count()
        super().__init__()

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", "/oauth2/token", self.token),
            ("GET", "/instance-types", lambda r: Reply(200, self.types)),
            ("GET", "/instance-availability", self.get_availability),
            ("POST", "/sshkeys", self.add_key),
            ("DELETE", "/sshkeys/(?P<id>[^/]+)", self.delete_key),
            ("POST", "/scripts", self.add_script),
            ("DELETE", "/scripts/(?P<id>[^/]+)", self.delete_script),
            ("POST", "/instances", self.create_instance),
            ("GET", "/instances", self.list_instances),
            ("GET", "/instances/(?P<id>[^/]+)", self.get_instance),
            ("PUT", "/instances", self.act),
        ]

    # --- what a test asserts -----------------------------------------------------------------------------------

    def left(self) -> dict[str, list[str]]:
        """What the account still holds: nothing, after a pool."""
        return {
            "instances": sorted(self.instances),
            "volumes": sorted(self.volumes),
            "sshkeys": sorted(self.keys),
            "scripts": sorted(self.scripts),
        }

    # --- endpoints -----------------------------------------------------------------------------------------------

    def _authorised(self, request: Request) -> None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            raise ApiError(
                401, {"code": "unauthorized_request", "message": "Access token is missing or invalid"}
            )

    def token(self, request: Request) -> Reply:
        body = request.body or {}
        if body.get("grant_type") != "client_credentials" or (
            body.get("client_id"),
            body.get("client_secret"),
        ) != (
            CLIENT_ID,
            CLIENT_SECRET,
        ):
            raise ApiError(401, {"code": "unauthorized_request", "message": "Invalid client credentials"})
        token = uuid.uuid4().hex
        self.tokens.add(token)
        return Reply(
            200,
            {
                "access_token": token,
                "refresh_token": uuid.uuid4().hex,
                "scope": "cloud-api-v1",
                "token_type": "Bearer",
                "expires_in": 3600,
            },
        )

    def get_availability(self, request: Request) -> Reply:
        self._authorised(request)
        rows = self.availability[request.params.get("isSpot") == "true"]
        location = request.params.get("location_code")
        return Reply(200, [r for r in rows if location in (None, r["location_code"])])

    def add_key(self, request: Request) -> Reply:
        self._authorised(request)
        key_id = str(uuid.uuid4())
        self.keys[key_id] = {"id": key_id, "name": request.body["name"], "key": request.body["key"]}
        return Reply(201, key_id)

    def delete_key(self, request: Request) -> Reply:
        self._authorised(request)
        if self.keys.pop(request.match["id"], None) is None:
            raise ApiError(404, {"code": "not_found", "message": "SSH key not found"})
        return Reply(200, "")

    def add_script(self, request: Request) -> Reply:
        self._authorised(request)
        script_id = str(uuid.uuid4())
        self.scripts[script_id] = {"id": script_id, **request.body}
        return Reply(201, script_id)

    def delete_script(self, request: Request) -> Reply:
        self._authorised(request)
        if self.scripts.pop(request.match["id"], None) is None:
            raise ApiError(404, {"code": "not_found", "message": "script not found"})
        return Reply(200, "")

    def create_instance(self, request: Request) -> Reply:
        self._authorised(request)
        body = request.body
        self.created.append(body)
        kind = next((t for t in self.types if t["instance_type"] == body["instance_type"]), None)
        if kind is None:
            raise ApiError(400, {"code": "invalid_request", "message": "Invalid instance type"})
        for key_id in body["ssh_key_ids"]:
            if key_id not in self.keys:
                raise ApiError(400, {"code": "invalid_request", "message": f"SSH key {key_id} not found"})
        index = next(self._count)
        instance_id, volume_id = str(uuid.uuid4()), str(uuid.uuid4())
        self.volumes[volume_id] = "attached"
        with open(self.authorized_keys, "a") as keys:  # what cloud-init does at first boot
            keys.writelines(self.keys[k]["key"].strip() + "\n" for k in body["ssh_key_ids"])
        self.instances[instance_id] = {
            "id": instance_id,
            "instance_type": kind["instance_type"],
            "price_per_hour": float(kind["spot_price" if body["is_spot"] else "price_per_hour"]),
            "hostname": body["hostname"],
            "description": body["description"],
            "status": "ordered",
            "created_at": "2026-12-03T12:00:00Z",
            "ssh_key_ids": body["ssh_key_ids"],
            "cpu": kind["cpu"],
            "gpu": kind["gpu"],
            "memory": kind["memory"],
            "storage": kind["storage"],
            "gpu_memory": kind["gpu_memory"],
            "ip": None,
            "os_volume_id": volume_id,
            "location": body["location_code"],
            "image": body["image"],
            "startup_script_id": body["startup_script_id"],
            "is_spot": body["is_spot"],
            "_address": NOWHERE if index in self.unreachable else self.addresses[index],
        }
        if self.on_create is not None:
            self.on_create()
        return Reply(202, instance_id)

    def _public(self, instance: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in instance.items() if not k.startswith("_")}

    def list_instances(self, request: Request) -> Reply:
        self._authorised(request)
        status = request.params.get("status")
        return Reply(200, [self._public(i) for i in self.instances.values() if status in (None, i["status"])])

    def get_instance(self, request: Request) -> Reply:
        self._authorised(request)
        instance = self.instances.get(request.match["id"])
        if instance is None:
            raise ApiError(404, {"code": "not_found", "message": "Instance not found"})
        if instance["status"] == "ordered":
            instance["status"] = "provisioning"
        elif instance["status"] == "provisioning":
            instance["status"], instance["ip"] = "running", instance["_address"]
        return Reply(200, self._public(instance))

    def act(self, request: Request) -> Reply:
        self._authorised(request)
        body = request.body
        if body["action"] != "delete":
            raise ApiError(400, {"code": "invalid_request", "message": "fake: only delete"})
        missing = [i for i in body["id"] if i not in self.instances]
        if missing:
            raise ApiError(404, {"code": "not_found", "message": f"instances not found: {missing}"})
        for instance_id in body["id"]:
            volume = self.instances.pop(instance_id)["os_volume_id"]
            permanent = body.get("delete_permanently") and volume in (body.get("volume_ids") or [])
            if permanent:
                del self.volumes[volume]
            else:
                self.volumes[volume] = "trash"
        return Reply(202, "")
