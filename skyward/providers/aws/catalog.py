"""Choosing what a pool's instances are: an instance type (by name, or the smallest that fits) and an AMI.

Everything here only reads from AWS (``DescribeInstanceTypes``, ``DescribeImages``, SSM ``GetParameter``):
nothing is created, so a failure here leaves nothing behind.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from skyward.errors import ProvisionError
from skyward.providers.aws.api import aws_call, error_code

MIB_PER_GIB = 1024
# With nothing asked, a node that installs and runs a scientific Python stack without swapping.
DEFAULT_CPU = 2
DEFAULT_MEMORY_MIB = 4 * MIB_PER_GIB

# Public SSM parameters naming the current AMIs: Canonical's Ubuntu 24.04 LTS, and AWS's Deep Learning Base
# AMI on the same Ubuntu (NVIDIA driver and CUDA installed) for NVIDIA GPU instances. Both have Python 3.12.
UBUNTU_PARAMETER = "/aws/service/canonical/ubuntu/server/24.04/stable/current/{arch}/hvm/ebs-gp3/ami-id"
NVIDIA_PARAMETER = (
    "/aws/service/deeplearning/ami/{arch}/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
)
DEFAULT_AMI_PYTHON = "3.12"
DEFAULT_AMI_USER = "ubuntu"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNIT_MIB = {"k": 1 / 1024, "m": 1, "g": MIB_PER_GIB, "t": MIB_PER_GIB * 1024, "": MIB_PER_GIB}


def parse_memory(value: str | int | float) -> int:
    """Memory in MiB from ``"16GB"``, ``"16 GiB"``, ``"512MB"``, ``"1TB"`` or a number of GiB.

    GB and GiB both mean 2**30 bytes: EC2 sizes its instances in GiB and people write "16GB" for them.
    """
    if isinstance(value, bool):
        raise ValueError(f"memory must be a size like '16GB', got {value!r}")
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


def lookup_instance_type(ec2: Any, name: str, region: str) -> InstanceType:
    """The instance type called `name` in this region."""
    from botocore.exceptions import ClientError

    try:
        with aws_call(f"looking up instance type {name!r}", passthrough=("InvalidInstanceType",)):
            items = ec2.describe_instance_types(InstanceTypes=[name])["InstanceTypes"]
    except ClientError as exc:
        if error_code(exc) != "InvalidInstanceType":
            raise
        items = []
    if not items:
        raise ProvisionError(f"there is no EC2 instance type {name!r} in {region}")
    return InstanceType.from_api(items[0])


def instance_types(ec2: Any, request: MachineRequest) -> list[InstanceType]:
    """The region's current-generation, virtualised instance types of the request's architecture and market."""
    filters = [
        {"Name": "current-generation", "Values": ["true"]},
        {"Name": "processor-info.supported-architecture", "Values": [request.architecture]},
        {"Name": "bare-metal", "Values": ["false"]},
        {"Name": "supported-usage-class", "Values": [request.market]},
    ]
    with aws_call("listing the region's instance types"):
        pages = ec2.get_paginator("describe_instance_types").paginate(Filters=filters)
        found = [InstanceType.from_api(item) for page in pages for item in page["InstanceTypes"]]
    # The same conditions again here: the filters are an optimisation, not something to rely on.
    return offered(found, request)


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
        if not t.burstable and t.satisfies(request) and (request.accelerator is not None or not t.accelerators)
    ]
    if not fits:
        raise ProvisionError(
            f"no {request.market} EC2 instance type in {region} has {request.describe()}. Ask for less, pick "
            "another region, or name a type with machine=... (or AWS(instance_type=...))."
        )
    return min(fits, key=lambda t: (t.accelerator_count, t.vcpus, t.memory_mib, t.instance_storage, t.name))


def default_ami_parameter(instance_type: InstanceType) -> str:
    """The public SSM parameter of the default AMI for `instance_type` (NVIDIA types get the driver)."""
    if instance_type.nvidia:
        return NVIDIA_PARAMETER.format(arch=instance_type.architecture)
    return UBUNTU_PARAMETER.format(arch="arm64" if instance_type.architecture == "arm64" else "amd64")


def resolve_parameter(ssm: Any, parameter: str, region: str) -> str:
    """The AMI id an SSM parameter names."""
    from botocore.exceptions import ClientError

    try:
        with aws_call(f"reading the SSM parameter {parameter}", passthrough=("ParameterNotFound",)):
            return str(ssm.get_parameter(Name=parameter)["Parameter"]["Value"])
    except ClientError as exc:
        if error_code(exc) != "ParameterNotFound":
            raise
        raise ProvisionError(
            f"the public SSM parameter {parameter} does not exist in {region}, so there is no default AMI for "
            "this instance type here: pass sky.AWS(ami='ami-...')"
        ) from None


@dataclass(frozen=True)
class MachineImage:
    """The facts of an AMI that launching needs."""

    ami: str
    architecture: str
    root_device: str
    root_size_gb: int
    name: str


def describe_image(ec2: Any, ami: str) -> MachineImage:
    from botocore.exceptions import ClientError

    try:
        with aws_call(
            f"looking up AMI {ami}", passthrough=("InvalidAMIID.NotFound", "InvalidAMIID.Malformed")
        ):
            images = ec2.describe_images(ImageIds=[ami])["Images"]
    except ClientError as exc:
        if not error_code(exc).startswith("InvalidAMIID"):
            raise
        images = []
    if not images:
        raise ProvisionError(f"AMI {ami} does not exist in this region, or this account cannot use it")
    image = images[0]
    root_device = image.get("RootDeviceName", "/dev/sda1")
    root_size = next(
        (
            int(mapping.get("Ebs", {}).get("VolumeSize", 0))
            for mapping in image.get("BlockDeviceMappings", [])
            if mapping.get("DeviceName") == root_device
        ),
        0,
    )
    return MachineImage(
        ami=ami,
        architecture=image.get("Architecture", "x86_64"),
        root_device=root_device,
        root_size_gb=root_size,
        name=image.get("Name", ""),
    )
