"""Which VastAI offers a pool rents: the offer search's query from the pool's resource parameters, and the
choice among the offers it answers (cheapest first). Plain data, no API call."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from skyward.errors import ProvisionError
from skyward.providers.aws.machine_types import AcceleratorRequest, parse_memory
from skyward.spec import Resources

_MB_PER_MIB = 1.048576  # VastAI sizes RAM in MB


def offer_query(resources: Resources, max_price: float | None, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The filters of ``POST /bundles/`` for `resources` (the SDK adds verified, rentable, not rented)."""
    query: dict[str, Any] = {}
    if resources.accelerator:
        accelerator = AcceleratorRequest.parse(resources.accelerator)
        query["gpu_name"] = {"eq": gpu_name(accelerator.name)}
        query["num_gpus"] = {"gte": accelerator.count}
    if resources.cpu is not None:
        query["cpu_cores_effective"] = {"gte": resources.cpu}
    if resources.memory is not None:
        query["cpu_ram"] = {"gte": ram_mb(resources.memory)}
    if max_price is not None:
        query["dph_total"] = {"lte": max_price}
    query.update(extra)
    return query


def gpu_name(name: str) -> str:
    """VastAI's spelling of a GPU: ``"RTX_4090"`` and ``"RTX 4090"`` are both ``"RTX 4090"``."""
    return " ".join(name.replace("_", " ").split())


def ram_mb(memory: str) -> int:
    return math.ceil(parse_memory(memory) * _MB_PER_MIB)


def fits(offer: Mapping[str, Any], resources: Resources, max_price: float | None) -> bool:
    """Whether `offer` has what `resources` asks (the search's filters, checked again here)."""
    if resources.accelerator:
        accelerator = AcceleratorRequest.parse(resources.accelerator)
        if gpu_name(str(offer.get("gpu_name", ""))).lower() != gpu_name(accelerator.name).lower():
            return False
        if int(offer.get("num_gpus") or 0) < accelerator.count:
            return False
    if resources.cpu is not None and float(offer.get("cpu_cores_effective") or 0) < resources.cpu:
        return False
    if resources.memory is not None and float(offer.get("cpu_ram") or 0) < ram_mb(resources.memory):
        return False
    return max_price is None or float(offer.get("dph_total") or 0) <= max_price


def choose_offers(
    offers: Iterable[Mapping[str, Any]], nodes: int, resources: Resources, max_price: float | None
) -> list[dict[str, Any]]:
    """The offers that fit, cheapest first (then by id, so that a search gives one order). Each node rents one;
    the rest are spares, tried in order when an offer is taken before the pool rents it."""
    fitting = sorted(
        (dict(o) for o in offers if fits(o, resources, max_price)),
        key=lambda o: (float(o.get("dph_total") or 0), int(o["id"])),
    )
    if len(fitting) < nodes:
        asked = ", ".join(f"{k}={v!r}" for k, v in resources.requested().items()) or "nothing in particular"
        raise ProvisionError(
            f"VastAI has {len(fitting)} offer(s) with {asked}"
            + (f" at <= ${max_price}/h" if max_price is not None else "")
            + f", and the pool needs {nodes}. Ask for less, allow a higher VastAI(max_price=...), or try later."
        )
    return fitting


def describe_offer(offer: Mapping[str, Any]) -> str:
    gpus = f"{offer.get('num_gpus')} x {offer.get('gpu_name')}, " if offer.get("num_gpus") else ""
    return (
        f"offer {offer['id']} ({gpus}{float(offer.get('cpu_cores_effective') or 0):g} vCPU, "
        f"{float(offer.get('cpu_ram') or 0) / 1000:.0f} GB, ${float(offer.get('dph_total') or 0):.3f}/h)"
    )
