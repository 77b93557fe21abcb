"""Choosing what a pool's instances are: an instance type (by name, or the smallest that fits) and an AMI.

Everything here only reads from AWS (``DescribeInstanceTypes``, ``DescribeImages``, SSM ``GetParameter``):
nothing is created, so a failure here leaves nothing behind. What a type is and which one a request gets (no AWS
call) is `skyward.providers.aws.machine_types`, whose names this module re-exports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from skyward.errors import ProvisionError
from skyward.providers.aws.api import aws_call, error_code
from skyward.providers.aws.machine_types import (
    DEFAULT_CPU,
    DEFAULT_MEMORY_MIB,
    MIB_PER_GIB,
    Accelerator,
    AcceleratorRequest,
    InstanceType,
    MachineRequest,
    choose_instance_type,
    offered,
    parse_memory,
)

__all__ = [
    "DEFAULT_AMI_PYTHON",
    "DEFAULT_AMI_USER",
    "DEFAULT_CPU",
    "DEFAULT_MEMORY_MIB",
    "MIB_PER_GIB",
    "NVIDIA_PARAMETER",
    "UBUNTU_PARAMETER",
    "Accelerator",
    "AcceleratorRequest",
    "InstanceType",
    "MachineImage",
    "MachineRequest",
    "choose_instance_type",
    "default_ami_parameter",
    "describe_image",
    "instance_types",
    "lookup_instance_type",
    "offered",
    "parse_memory",
    "resolve_parameter",
]

# Public SSM parameters naming the current AMIs: Canonical's Ubuntu 24.04 LTS, and AWS's Deep Learning Base
# AMI on the same Ubuntu (NVIDIA driver and CUDA installed) for NVIDIA GPU instances. Both have Python 3.12.
UBUNTU_PARAMETER = "/aws/service/canonical/ubuntu/server/24.04/stable/current/{arch}/hvm/ebs-gp3/ami-id"
NVIDIA_PARAMETER = (
    "/aws/service/deeplearning/ami/{arch}/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
)
DEFAULT_AMI_PYTHON = "3.12"
DEFAULT_AMI_USER = "ubuntu"


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
