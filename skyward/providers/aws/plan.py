"""The launch plan of a pool on EC2: every decision made before anything is created.

Instance type, AMI, allocation, network and the client's address are settled here from the provider's settings
and the pool's resource parameters. Only read calls are made, so a plan that cannot be made leaves nothing
behind.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from skyward.errors import ProvisionError
from skyward.providers.aws.api import AwsClients, aws_call
from skyward.providers.aws.catalog import (
    DEFAULT_AMI_PYTHON,
    AcceleratorRequest,
    InstanceType,
    MachineImage,
    MachineRequest,
    choose_instance_type,
    default_ami_parameter,
    describe_image,
    instance_types,
    lookup_instance_type,
    parse_memory,
    resolve_parameter,
)
from skyward.providers.aws.reach import client_cidr, normalise_cidr
from skyward.providers.aws.tags import pool_tags
from skyward.providers.aws.userdata import user_data, watchdog_times
from skyward.spec import DEFAULT_ALLOCATION, ClusterSpec

if TYPE_CHECKING:
    from skyward.providers.aws import AWS


@dataclass(frozen=True)
class LaunchPlan:
    """What a pool will launch, and where."""

    region: str
    instance_type: InstanceType
    image: MachineImage
    image_source: str  # "given", or the SSM parameter that named it
    allocation: str
    cidr: str
    vpc_id: str
    subnet_id: str | None
    user_data: str

    def describe(self, count: int) -> str:
        source = "" if self.image_source == "given" else f" (from {self.image_source})"
        return (
            f"{count} x {self.instance_type.describe()}, {self.allocation}, in {self.region}; "
            f"AMI {self.image.ami}{source}; SSH from {self.cidr}"
        )


def make_plan(provider: AWS, clients: AwsClients, cluster: ClusterSpec, lease: float) -> LaunchPlan:
    """Decide what `cluster` launches with `provider`; raises `ProvisionError` when it cannot be done."""
    resources = cluster.resources
    resources.validate()
    allocation = resources.allocation or DEFAULT_ALLOCATION
    # A cheap check first: a bad ssh_cidr must not cost a round of AWS calls.
    cidr = normalise_cidr(provider.ssh_cidr) if provider.ssh_cidr is not None else None
    if cidr is None and provider.address != "public":
        raise ProvisionError(
            "AWS(ssh_cidr=...) is needed when nodes are not reached at their public address: the security group "
            "must name the address SSH comes from (e.g. your VPC's CIDR, or a bastion's address)"
        )
    try:
        request = MachineRequest(
            cpu=resources.cpu,
            memory_mib=parse_memory(resources.memory) if resources.memory is not None else None,
            accelerator=AcceleratorRequest.parse(resources.accelerator) if resources.accelerator else None,
            architecture=provider.architecture,
            market="spot" if allocation == "always-spot" else "on-demand",
        )
    except ValueError as exc:
        raise ProvisionError(str(exc)) from None
    instance_type = _instance_type(provider, clients, request, resources.machine)
    if allocation == "always-spot" and "spot" not in instance_type.usage_classes:
        raise ProvisionError(
            f"{instance_type.name} is not offered as spot; allocation='always-spot' needs it"
        )
    image, source = _image(provider, clients, instance_type)
    vpc_id = _vpc(clients, provider.subnet_id)
    if cidr is None:
        cidr = client_cidr(None)
    times = watchdog_times(provider.ssh_timeout, provider.host_key_wait, lease)
    return LaunchPlan(
        region=clients.region,
        instance_type=instance_type,
        image=image,
        image_source=source,
        allocation=allocation,
        cidr=cidr,
        vpc_id=vpc_id,
        subnet_id=provider.subnet_id,
        user_data=user_data(cluster.pool_id, times),
    )


def _instance_type(
    provider: AWS, clients: AwsClients, request: MachineRequest, machine: str | None
) -> InstanceType:
    if machine and provider.instance_type and machine != provider.instance_type:
        raise ProvisionError(
            f"the pool asks for machine={machine!r} but AWS(instance_type={provider.instance_type!r}): "
            "name one instance type"
        )
    name = machine or provider.instance_type
    if name is None:
        return choose_instance_type(instance_types(clients.ec2, request), request, clients.region)
    chosen = lookup_instance_type(clients.ec2, name, clients.region)
    if not request.is_default and not chosen.satisfies(request):
        raise ProvisionError(
            f"{chosen.describe()} does not have what the pool asks for ({request.describe()})"
        )
    return chosen


def _image(provider: AWS, clients: AwsClients, instance_type: InstanceType) -> tuple[MachineImage, str]:
    if provider.ami is not None:
        image, source = describe_image(clients.ec2, provider.ami), "given"
    else:
        client_python = f"{sys.version_info.major}.{sys.version_info.minor}"
        if client_python != DEFAULT_AMI_PYTHON and provider.python is None:
            raise ProvisionError(
                f"the default AMIs (Ubuntu 24.04) have Python {DEFAULT_AMI_PYTHON}, but this client runs Python "
                f"{client_python}, and nodes need the client's version (functions travel as its bytecode). "
                f"Pass sky.AWS(ami=..., python=...) naming an AMI with Python {client_python} and its interpreter."
            )
        source = default_ami_parameter(instance_type)
        image = describe_image(clients.ec2, resolve_parameter(clients.ssm, source, clients.region))
    if image.architecture != instance_type.architecture:
        raise ProvisionError(
            f"AMI {image.ami} is built for {image.architecture} but {instance_type.name} is "
            f"{instance_type.architecture}"
        )
    return image, source


def _vpc(clients: AwsClients, subnet_id: str | None) -> str:
    ec2: Any = clients.ec2
    if subnet_id is not None:
        with aws_call(f"looking up subnet {subnet_id}"):
            subnets = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"]
        return str(subnets[0]["VpcId"])
    with aws_call("looking up the default VPC"):
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise ProvisionError(f"{clients.region} has no default VPC: pass sky.AWS(subnet_id='subnet-...')")
    return str(vpcs[0]["VpcId"])


def run_request(
    plan: LaunchPlan,
    pool_id: str,
    key_name: str,
    group_id: str,
    disk_gb: int,
    public: bool,
    instance_profile: str | None = None,
) -> dict[str, Any]:
    """``RunInstances`` arguments for the plan's instances, but the counts and the market; `instance_profile`
    (a name or an ARN) gives the instances their own credentials."""
    request: dict[str, Any] = {
        "ImageId": plan.image.ami,
        "InstanceType": plan.instance_type.name,
        "KeyName": key_name,
        "UserData": plan.user_data,
        # Powering off terminates: the node's watchdog ends a lost pool's instances this way.
        "InstanceInitiatedShutdownBehavior": "terminate",
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},  # IMDSv2 only
        "BlockDeviceMappings": [
            {
                "DeviceName": plan.image.root_device,
                "Ebs": {
                    "VolumeSize": max(disk_gb, plan.image.root_size_gb),
                    "VolumeType": "gp3",
                    "DeleteOnTermination": True,
                },
            }
        ],
        "TagSpecifications": [
            *pool_tags(pool_id, "instance", Name=f"skyward {pool_id}"),
            *pool_tags(pool_id, "volume"),
        ],
    }
    if instance_profile is not None:
        key = "Arn" if instance_profile.startswith("arn:") else "Name"
        request["IamInstanceProfile"] = {key: instance_profile}
    if plan.subnet_id is not None and public:
        # A subnet of the user's may not give public addresses by default: ask for one explicitly.
        request["NetworkInterfaces"] = [
            {
                "DeviceIndex": 0,
                "SubnetId": plan.subnet_id,
                "Groups": [group_id],
                "AssociatePublicIpAddress": True,
                "DeleteOnTermination": True,
            }
        ]
    else:
        request["SecurityGroupIds"] = [group_id]
        if plan.subnet_id is not None:
            request["SubnetId"] = plan.subnet_id
    return request
