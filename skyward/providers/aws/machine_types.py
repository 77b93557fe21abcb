"""What an instance type is, and which one a pool's request gets: plain data and a pure choice, no AWS call.

`skyward.providers.aws.catalog` reads the region's types and AMIs from AWS; this module decides over what it read,
so the choice is tested without AWS at all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from skyward.errors import ProvisionError

MIB_PER_GIB = 1024
# With nothing asked, a node that installs and runs a scientific Python stack without swapping.
DEFAULT_CPU = 2
DEFAULT_MEMORY_MIB = 4 * MIB_PER_GIB

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNIT_MIB = {"k": 1 / 1024, "m": 1, "g": MIB_PER_GIB, "t": MIB_PER_GIB * 1024, "": MIB_PER_GIB}


def parse_memory(value: str | float) -> int:
    """Memory in MiB from ``"16GB"``, ``"16 GiB"``, ``"512MB"``, ``"1TB"`` or a number of GiB.

    GB and GiB both mean 2**30 bytes: EC2 sizes its instances in GiB and people write "16GB" for them.
    """
    if isinstance(value, bool):
        raise ValueError(f"memory must be a size like '16GB', got {value!r}")  # noqa: TRY004  (a bad value to users)
    if isinstance(value, int | float):
        amount, unit = float(value), ""
    else:
        match = _SIZE.match(str(value))
        if match is None or (match.group(3) and not match.group(2)):
            raise ValueError(f"memory must be a size like '16GB', '512MB' or '1TB', got {value!r}")
        amount, unit = float(match.group(1)), match.group(2).lower()
    if amount <= 0:
        raise ValueError(f"memory must be positive, got {value!r}")
    return math.ceil(amount * _UNIT_MIB[unit])


@dataclass(frozen=True)
class AcceleratorRequest:
    """``"T4"`` or ``"A100:8"``: an accelerator by name (case does not matter) and how many at least."""

    name: str
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> AcceleratorRequest:
        name, _, count = str(text).strip().partition(":")
        if not name.strip() or (count and not (count.strip().isdigit() and int(count) > 0)):
            raise ValueError(f"accelerator must look like 'T4' or 'A100:8', got {text!r}")
        return cls(name.strip(), int(count) if count else 1)

    def __str__(self) -> str:
        return self.name if self.count == 1 else f"{self.name}:{self.count}"


@dataclass(frozen=True)
class Accelerator:
    """Accelerators of one kind on an instance type, as ``DescribeInstanceTypes`` lists them."""

    manufacturer: str
    name: str
    count: int


@dataclass(frozen=True)
class InstanceType:
    """The facts of an EC2 instance type that choosing one needs."""

    name: str
    vcpus: int
    memory_mib: int
    architectures: tuple[str, ...]
    accelerators: tuple[Accelerator, ...]
    usage_classes: frozenset[str]
    burstable: bool
    bare_metal: bool
    current: bool
    instance_storage: bool = False

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> InstanceType:
        accelerators = [
            Accelerator(gpu.get("Manufacturer", ""), gpu.get("Name", ""), int(gpu.get("Count", 1)))
            for gpu in item.get("GpuInfo", {}).get("Gpus", [])
        ]
        accelerators += [
            Accelerator("AWS", device.get("Name", ""), int(device.get("Count", 1)))
            for device in item.get("NeuronInfo", {}).get("NeuronDevices", [])
        ]
        accelerators += [
            Accelerator(acc.get("Manufacturer", ""), acc.get("Name", ""), int(acc.get("Count", 1)))
            for acc in item.get("InferenceAcceleratorInfo", {}).get("Accelerators", [])
        ]
        accelerators += [
            Accelerator(fpga.get("Manufacturer", ""), fpga.get("Name", ""), int(fpga.get("Count", 1)))
            for fpga in item.get("FpgaInfo", {}).get("Fpgas", [])
        ]
        return cls(
            name=item["InstanceType"],
            vcpus=int(item["VCpuInfo"]["DefaultVCpus"]),
            memory_mib=int(item["MemoryInfo"]["SizeInMiB"]),
            architectures=tuple(item.get("ProcessorInfo", {}).get("SupportedArchitectures", ())),
            accelerators=tuple(accelerators),
            usage_classes=frozenset(item.get("SupportedUsageClasses", ())),
            burstable=bool(item.get("BurstablePerformanceSupported", False)),
            bare_metal=bool(item.get("BareMetal", False)),
            current=bool(item.get("CurrentGeneration", False)),
            instance_storage=bool(item.get("InstanceStorageSupported", False)),
        )

    @property
    def accelerator_count(self) -> int:
        return sum(acc.count for acc in self.accelerators)

    @property
    def nvidia(self) -> bool:
        """Whether it has NVIDIA GPUs (their default AMI carries the NVIDIA driver)."""
        return any(acc.manufacturer.upper() == "NVIDIA" for acc in self.accelerators)

    @property
    def architecture(self) -> str:
        """``"x86_64"`` or ``"arm64"`` (what AMIs are built for)."""
        return "arm64" if "arm64" in self.architectures else "x86_64"

    def has(self, request: AcceleratorRequest) -> bool:
        wanted = request.name.lower()
        return any(acc.name.lower() == wanted and acc.count >= request.count for acc in self.accelerators)

    def satisfies(self, request: MachineRequest) -> bool:
        """Whether it has at least the CPUs, memory and accelerators of `request` (architecture aside)."""
        if request.cpu is not None and self.vcpus < request.cpu:
            return False
        if request.memory_mib is not None and self.memory_mib < request.memory_mib:
            return False
        return request.accelerator is None or self.has(request.accelerator)

    def describe(self) -> str:
        """``"c5.large (2 vCPU, 4 GiB)"``, with its accelerators when it has some."""
        memory = self.memory_mib / MIB_PER_GIB
        text = f"{self.name} ({self.vcpus} vCPU, {memory:g} GiB"
        for acc in self.accelerators:
            text += f", {acc.count} x {acc.manufacturer} {acc.name}".replace("  ", " ")
        return text + ")"


@dataclass(frozen=True)
class MachineRequest:
    """What a node must have, from the pool's resource parameters.

    Attributes:
        cpu, memory_mib, accelerator: minimums; ``None`` asks nothing.
        architecture: ``"x86_64"`` or ``"arm64"``.
        market: ``"spot"`` when the type must be offered as spot (``always-spot``), else ``"on-demand"``
            (``spot-if-available`` falls back to on-demand, so the type must be offered so too).
    """

    cpu: int | None
    memory_mib: int | None
    accelerator: AcceleratorRequest | None
    architecture: str = "x86_64"
    market: str = "on-demand"

    @property
    def is_default(self) -> bool:
        return self.cpu is None and self.memory_mib is None and self.accelerator is None

    def with_defaults(self) -> MachineRequest:
        """Nothing asked: a machine of `DEFAULT_CPU` vCPUs and `DEFAULT_MEMORY_MIB`."""
        if not self.is_default:
            return self
        return MachineRequest(DEFAULT_CPU, DEFAULT_MEMORY_MIB, None, self.architecture, self.market)

    def describe(self) -> str:
        parts = []
        if self.cpu is not None:
            parts.append(f">= {self.cpu} vCPU")
        if self.memory_mib is not None:
            parts.append(f">= {self.memory_mib / MIB_PER_GIB:g} GiB")
        if self.accelerator is not None:
            parts.append(f"{self.accelerator.count} x {self.accelerator.name}")
        parts.append(self.architecture)
        return ", ".join(parts)


def offered(types: Iterable[InstanceType], request: MachineRequest) -> list[InstanceType]:
    """Those of `types` a pool may use: current generation, virtualised, of the request's architecture and
    market."""
    return [
        t
        for t in types
        if t.current
        and not t.bare_metal
        and request.architecture in t.architectures
        and request.market in t.usage_classes
    ]


def choose_instance_type(
    candidates: Iterable[InstanceType], request: MachineRequest, region: str
) -> InstanceType:
    """The smallest type that satisfies `request`: fewest accelerators, then vCPUs, then memory.

    Among equals, types without local instance storage come first (storage-dense types cost more for the same
    CPUs), then the name decides, so that a request always gets the same type. Burstable types (t3, t4g, ...)
    are left out: their CPU is throttled once their credits run out, which a compute pool does at once; name
    one with ``machine=`` to use it anyway. Types with accelerators are only chosen when one is asked for.
    """
    request = request.with_defaults()
    fits = [
        t
        for t in candidates
        if not t.burstable
        and t.satisfies(request)
        and (request.accelerator is not None or not t.accelerators)
    ]
    if not fits:
        raise ProvisionError(
            f"no {request.market} EC2 instance type in {region} has {request.describe()}. Ask for less, pick "
            "another region, or name a type with machine=... (or AWS(instance_type=...))."
        )
    return min(fits, key=lambda t: (t.accelerator_count, t.vcpus, t.memory_mib, t.instance_storage, t.name))
