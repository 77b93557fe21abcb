"""Which Verda instance type, location and market a pool gets: plain data and a pure choice, no API call.

`skyward.providers.verda.api` reads the instance types (``GET /instance-types``) and where each is available now
(``GET /instance-availability``); this module decides over what it read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from skyward.errors import ProvisionError
from skyward.providers.aws.machine_types import (
    DEFAULT_CPU,
    DEFAULT_MEMORY_MIB,
    MIB_PER_GIB,
    AcceleratorRequest,
    parse_memory,
)
from skyward.spec import Resources

# Markets an allocation may use, preferred first. Verda's spot instances cost less and may be discontinued.
MARKETS: Mapping[str, tuple[bool, ...]] = {
    "spot-if-available": (True, False),
    "always-spot": (True,),
    "on-demand": (False,),
}
DEFAULT_IMAGE_PREFIX = "ubuntu-24.04"


@dataclass(frozen=True)
class VerdaType:
    """An instance type as ``GET /instance-types`` describes it."""

    name: str
    cpus: int
    memory_gib: float
    gpus: int
    gpu_model: str
    gpu_description: str
    price: float
    spot_price: float
    supported_os: tuple[str, ...]

    @classmethod
    def from_sdk(cls, item: Any) -> VerdaType:
        """From the SDK's ``InstanceType`` (its ``cpu``, ``memory`` and ``gpu`` are the API's dicts)."""
        gpu = item.gpu or {}
        return cls(
            name=item.instance_type,
            cpus=int((item.cpu or {}).get("number_of_cores") or 0),
            memory_gib=float((item.memory or {}).get("size_in_gigabytes") or 0),
            gpus=int(gpu.get("number_of_gpus") or 0),
            gpu_model=str(item.model or ""),
            gpu_description=str(gpu.get("description") or ""),
            price=float(item.price_per_hour),
            spot_price=float(item.spot_price_per_hour),
            supported_os=tuple(item.supported_os or ()),
        )

    def has(self, request: AcceleratorRequest) -> bool:
        """At least `request.count` GPUs named `request.name`: their model (``"H100"``), or the first words of
        their description (``"1x H100 SXM5 80GB"``), so that ``"L4"`` is not an ``"L40S"``."""
        wanted = request.name.lower().replace("_", " ").split()
        words = self.gpu_description.lower().split("x ", 1)[-1].split()
        named = wanted == self.gpu_model.lower().split() or wanted == words[: len(wanted)]
        return self.gpus >= request.count and named


@dataclass(frozen=True)
class VerdaChoice:
    """What each node of a pool runs on."""

    type: VerdaType
    location: str
    spot: bool
    image: str

    @property
    def price(self) -> float:
        return self.type.spot_price if self.spot else self.type.price

    def describe(self, nodes: int) -> str:
        market = "spot" if self.spot else "on-demand"
        return (
            f"{nodes} x {self.type.name} ({self.type.cpus} vCPU, {self.type.memory_gib:g} GB"
            + (f", {self.type.gpu_description or self.type.gpu_model}" if self.type.gpus else "")
            + f") {market} in {self.location}, image {self.image}, at ${self.price:.2f}/h each"
        )


def availability(rows: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """``GET /instance-availability``'s rows as {location: {instance types available there}}."""
    return {str(row["location_code"]): set(row.get("availabilities") or ()) for row in rows}


def choose(
    types: Iterable[VerdaType],
    available: Mapping[bool, Mapping[str, set[str]]],
    resources: Resources,
    *,
    instance_type: str | None = None,
    image: str | None = None,
) -> VerdaChoice:
    """The cheapest type that has what `resources` asks, available now, in the first market the allocation
    allows that has one (spot first for ``spot-if-available``); ties go to fewer GPUs, then the name.

    `available` maps spot (True) and on-demand (False) to {location: types}. A type named by `instance_type` or
    ``machine=`` is taken as is. Types with GPUs are only chosen when an accelerator is asked for.
    """
    types = list(types)
    named = instance_type or resources.machine
    accelerator = AcceleratorRequest.parse(resources.accelerator) if resources.accelerator else None
    asked_anything = named or accelerator or resources.cpu is not None or resources.memory is not None
    cpu = resources.cpu if asked_anything else DEFAULT_CPU
    memory_gib = (
        parse_memory(resources.memory) / MIB_PER_GIB
        if resources.memory is not None
        else (None if asked_anything else DEFAULT_MEMORY_MIB / MIB_PER_GIB)
    )

    def fits(t: VerdaType) -> bool:
        if named:
            return t.name == named
        if cpu is not None and t.cpus < cpu:
            return False
        if memory_gib is not None and t.memory_gib < memory_gib:
            return False
        return t.has(accelerator) if accelerator else t.gpus == 0

    wanted = [t for t in types if fits(t)]
    if not wanted:
        raise ProvisionError(
            f"no Verda instance type has {_describe(named, cpu, memory_gib, accelerator)}. Ask for less, or "
            "name a type with machine=... (or Verda(instance_type=...))."
        )
    allocation = resources.allocation or "spot-if-available"
    for spot in MARKETS[allocation]:
        offers = [
            (t.spot_price if spot else t.price, t.gpus, t.name, location, t)
            for t in wanted
            for location, names in sorted(available.get(spot, {}).items())
            if t.name in names
        ]
        if offers:
            *_, location, best = min(offers, key=lambda o: o[:4])
            return VerdaChoice(best, location, spot, image or _default_image(best))
    markets = " or ".join("spot" if s else "on-demand" for s in MARKETS[allocation])
    raise ProvisionError(
        f"no Verda instance type with {_describe(named, cpu, memory_gib, accelerator)} is available "
        f"{markets} now ({', '.join(sorted(t.name for t in wanted))} would fit). Try later, another location, or "
        "allocation='on-demand'."
    )


def _default_image(t: VerdaType) -> str:
    """The type's Ubuntu 24.04 image where it lists one (the CUDA one on GPU types comes first in Verda's
    list), else its first image."""
    for name in t.supported_os:
        if name.startswith(DEFAULT_IMAGE_PREFIX):
            return name
    return t.supported_os[0] if t.supported_os else DEFAULT_IMAGE_PREFIX


def _describe(
    named: str | None, cpu: int | None, memory_gib: float | None, accelerator: AcceleratorRequest | None
) -> str:
    if named:
        return f"the name {named!r}"
    parts = [f">= {cpu} vCPU" if cpu else "", f">= {memory_gib:g} GB" if memory_gib else ""]
    parts.append(f"{accelerator.count} x {accelerator.name}" if accelerator else "no GPU")
    return ", ".join(p for p in parts if p)
