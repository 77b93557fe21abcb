"""The decisions of the AWS provider: sizes and accelerators, the instance type chosen from the region's list,
the default AMI, host keys read from console output, and which providers honour resource parameters."""

from __future__ import annotations

from typing import Any

import asyncssh
import pytest
from conftest import REGION

import skyward as sky
from skyward.integrations import JoblibPool
from skyward.providers.aws.catalog import (
    NVIDIA_PARAMETER,
    UBUNTU_PARAMETER,
    AcceleratorRequest,
    InstanceType,
    MachineRequest,
    choose_instance_type,
    default_ami_parameter,
    offered,
    parse_memory,
)
from skyward.providers.aws.reach import host_keys_from_console, known_hosts_lines, ssh_host

# --- sizes and accelerators ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mib"),
    [
        ("16GB", 16384),
        ("16 GiB", 16384),
        ("16g", 16384),
        ("0.5GB", 512),
        ("512MB", 512),
        ("512 MiB", 512),
        ("1TB", 1024 * 1024),
        (8, 8192),
        (1.5, 1536),
    ],
)
def test_memory_sizes(text: str | float, mib: int) -> None:
    assert parse_memory(text) == mib


@pytest.mark.parametrize("text", ["lots", "16 GX", "-4GB", "0", "GB", "16iB", True])
def test_memory_sizes_that_are_not(text: Any) -> None:
    with pytest.raises(ValueError, match="memory must"):
        parse_memory(text)


def test_accelerators() -> None:
    assert AcceleratorRequest.parse("T4") == AcceleratorRequest("T4", 1)
    assert AcceleratorRequest.parse(" a100:8 ") == AcceleratorRequest("a100", 8)
    for bad in ("", ":2", "T4:0", "T4:two"):
        with pytest.raises(ValueError, match="accelerator must look like"):
            AcceleratorRequest.parse(bad)


# --- the instance type: the smallest that fits, from the region's list ------------------------------------------


@pytest.fixture(scope="module")
def catalog() -> dict[str, list[InstanceType]]:
    """moto's instance types (what its DescribeInstanceTypes serves) that a pool may use, by architecture.

    Read from moto's data rather than through its server: the listing itself is exercised by the pools of
    test_aws_launch_moto, and serving it takes moto seconds on a small machine.
    """
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    every = [InstanceType.from_api(item) for item in INSTANCE_TYPES.values()]
    return {arch: offered(every, MachineRequest(None, None, None, arch)) for arch in ("x86_64", "arm64")}


def choose(catalog: dict[str, list[InstanceType]], arch: str = "x86_64", **asked: Any) -> InstanceType:
    request = MachineRequest(
        asked.get("cpu"),
        parse_memory(asked["memory"]) if "memory" in asked else None,
        AcceleratorRequest.parse(asked["accelerator"]) if "accelerator" in asked else None,
        arch,
    )
    return choose_instance_type(catalog[arch], request, REGION)


@pytest.mark.parametrize(
    ("asked", "arch", "expected"),
    [
        ({}, "x86_64", "c5a.large"),  # nothing asked: 2 vCPUs, 4 GiB
        ({"cpu": 4, "memory": "16GB"}, "x86_64", "m5a.xlarge"),
        ({"cpu": 8, "memory": "64GB"}, "x86_64", "r5a.2xlarge"),
        ({"memory": "3GB"}, "x86_64", "m7a.medium"),  # 1 vCPU is enough when only memory is asked
        ({"cpu": 4, "memory": "16GB"}, "arm64", "m6g.xlarge"),
        ({"accelerator": "T4"}, "x86_64", "g4dn.xlarge"),
        ({"accelerator": "a100:8"}, "x86_64", "p4d.24xlarge"),
        ({"accelerator": "T4g"}, "arm64", "g5g.xlarge"),
    ],
)
def test_the_smallest_type_that_fits(
    catalog: dict[str, list[InstanceType]], asked: dict[str, Any], arch: str, expected: str
) -> None:
    chosen = choose(catalog, arch, **asked)
    assert chosen.name == expected
    # Independently of the choice's own ordering: it fits, and nothing that fits is smaller.
    request = MachineRequest(
        asked.get("cpu"),
        parse_memory(asked["memory"]) if "memory" in asked else None,
        AcceleratorRequest.parse(asked["accelerator"]) if "accelerator" in asked else None,
        arch,
    ).with_defaults()
    assert chosen.satisfies(request) and not chosen.burstable
    fitting = [t for t in catalog[arch] if t.satisfies(request) and not t.burstable]
    if "accelerator" not in asked:
        fitting = [t for t in fitting if not t.accelerators]
        assert not chosen.accelerators
    smallest = min((t.accelerator_count, t.vcpus, t.memory_mib) for t in fitting)
    assert (chosen.accelerator_count, chosen.vcpus, chosen.memory_mib) == smallest


def test_burstable_types_are_never_chosen_but_exist(catalog: dict[str, list[InstanceType]]) -> None:
    burstable = [t for t in catalog["x86_64"] if t.burstable]
    assert burstable and any(t.name.startswith("t3.") for t in burstable)
    assert choose(catalog, cpu=1).name not in {t.name for t in burstable}


def test_asking_for_what_the_region_lacks_says_so(catalog: dict[str, list[InstanceType]]) -> None:
    with pytest.raises(sky.ProvisionError, match=r"has 3 x Nonesuch, x86_64.*machine="):
        choose(catalog, accelerator="Nonesuch:3")
    with pytest.raises(sky.ProvisionError, match="has >= 100000 vCPU"):
        choose(catalog, cpu=100000)


def test_the_default_ami_is_ubuntu_or_the_nvidia_base_ami(catalog: dict[str, list[InstanceType]]) -> None:
    assert default_ami_parameter(choose(catalog)) == UBUNTU_PARAMETER.format(arch="amd64")
    assert default_ami_parameter(choose(catalog, "arm64")) == UBUNTU_PARAMETER.format(arch="arm64")
    assert default_ami_parameter(choose(catalog, accelerator="T4")) == NVIDIA_PARAMETER.format(arch="x86_64")
    assert (
        "/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
        in UBUNTU_PARAMETER.format(arch="amd64")
    )


# --- host keys from the console -----------------------------------------------------------------------------------


def _public_key(kind: str) -> str:
    return asyncssh.generate_private_key(kind).export_public_key().decode().strip()


def test_host_keys_are_read_from_cloud_inits_block_in_the_console_output() -> None:
    ed25519, ecdsa = _public_key("ssh-ed25519"), _public_key("ecdsa-sha2-nistp256")
    stale = _public_key("ssh-ed25519")  # a block from an earlier boot: the last block counts
    console = "\r\n".join(
        [
            "[    0.000000] Linux version 6.8.0-1012-aws",
            "-----BEGIN SSH HOST KEY KEYS-----",
            f"{stale} root@ip-10-0-0-1",
            "-----END SSH HOST KEY KEYS-----",
            "ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----",
            "ec2: 256 SHA256:abcdef root@ip-10-0-0-1 (ED25519)",
            "ec2: -----END SSH HOST KEY FINGERPRINTS-----",
            "-----BEGIN SSH HOST KEY KEYS-----",
            f"{ecdsa} root@ip-172-31-5-6",
            "[   21.123456] cloud-init[812]: a kernel line in the middle",
            f"{ed25519} root@ip-172-31-5-6",
            "ssh-ed25519 bm90LWEta2V5 root@forged",  # not a well-formed key: ignored
            "-----END SSH HOST KEY KEYS-----",
            "Cloud-init v. 24.1 finished",
        ]
    )
    assert host_keys_from_console(console) == [" ".join(ecdsa.split()[:2]), " ".join(ed25519.split()[:2])]
    assert host_keys_from_console("no keys here") == []
    unfinished = "-----BEGIN SSH HOST KEY KEYS-----\n" + ed25519  # still being written
    assert host_keys_from_console(unfinished) == []


def test_known_hosts_lines_and_ssh_hosts() -> None:
    key = "ssh-ed25519 AAAA"
    assert known_hosts_lines("203.0.113.5", 22, [key]) == ["203.0.113.5 ssh-ed25519 AAAA"]
    assert known_hosts_lines("127.0.0.1", 2222, [key]) == ["[127.0.0.1]:2222 ssh-ed25519 AAAA"]
    assert ssh_host("ubuntu", "203.0.113.5", 22) == "ubuntu@203.0.113.5:22"
    assert ssh_host("ubuntu", "2001:db8::5", 22) == "ubuntu@[2001:db8::5]:22"


# --- who honours resource parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting", [{"cpu": 8}, {"memory": "32GB"}, {"machine": "m5.xlarge"}, {"allocation": "on-demand"}]
)
def test_local_and_ssh_refuse_resource_parameters(setting: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="cannot be honoured: Local nodes"):
        sky.ComputePool(nodes=1, **setting)
    ssh = sky.SSH(hosts=["me@example.invalid"])
    with pytest.raises(ValueError, match="cannot be honoured: SSH nodes are the hosts you listed"):
        sky.ComputePool(provider=ssh, **setting)
    # The default allocation asks nothing: every provider satisfies it.
    sky.ComputePool(nodes=1, allocation="spot-if-available")


def test_aws_takes_resource_parameters_from_the_pool_and_the_older_api() -> None:
    provider = sky.AWS(region="us-east-1", ssh_cidr="198.51.100.7")
    pool = sky.ComputePool(provider=provider, cpu=8, memory="32GB", accelerator="T4", allocation="on-demand")
    assert pool.cluster.resources == sky.Resources(
        cpu=8, memory="32GB", accelerator="T4", allocation="on-demand"
    )
    older = JoblibPool(provider=provider, nodes=2, machine="m5.xlarge", allocation="always-spot")
    assert older.cluster.resources.machine == "m5.xlarge"
    assert older.cluster.resources.allocation == "always-spot"
    with pytest.raises(ValueError, match="allocation must be one of"):
        sky.ComputePool(provider=provider, allocation="spot")
    with pytest.raises(ValueError, match="cpu must be a positive int"):
        sky.ComputePool(provider=provider, cpu=0)


def test_aws_settings_are_checked_at_construction() -> None:
    for settings, message in [
        ({"ssh_cidr": "not-an-address"}, "ssh_cidr must be"),
        ({"ssh_timeout": 0}, "ssh_timeout"),
        ({"architecture": "sparc"}, "architecture"),
        ({"host_keys": "any"}, "host_keys"),
        ({"address": "elsewhere"}, "address"),
        ({"disk_gb": 2}, "disk_gb"),
        ({"ssh_options": {"hosts": ["x"]}}, "does not take hosts"),
        ({"ssh_options": {"verify_host_keys": False}}, "does not take verify_host_keys"),
    ]:
        with pytest.raises(ValueError, match=message):
            sky.AWS(**settings)
    assert sky.AWS(ssh_options={"offline": True}).ssh_options == {"offline": True}
