"""Fixtures of the AWS provider tests: moto's server on 127.0.0.1 standing in for EC2 and SSM, a guard that
lets no connection leave this machine, and a recorder of the AWS calls a pool makes.

boto3 reaches moto through the standard ``AWS_ENDPOINT_URL`` variable, with dummy credentials; the config and
credential files are pointed at nothing, and instance metadata is off, so that no real account is ever used.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ssh"))  # the sshd lab of the SSH tests

from network_guard import NetworkGuard, guarded_network

import skyward.providers.aws as aws_module
from skyward.providers.aws.api import AwsClients

REGION = "us-east-1"
POOL_TAG = "skyward:pool"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "real_aws: launches real EC2 instances (needs credentials and SKYWARD_REAL_AWS=1; costs money)",
    )


# --- no connection leaves this machine (`network_guard`) --------------------------------------------------------


@pytest.fixture(autouse=True)
def network_guard(request: pytest.FixtureRequest) -> Iterator[NetworkGuard]:
    if request.node.get_closest_marker("real_aws") is not None:
        yield NetworkGuard()  # the one test that talks to AWS itself (and only when asked to)
        return
    with guarded_network() as guard:
        yield guard


# --- moto -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@contextlib.contextmanager
def moto_environment(endpoint: str, scratch: Path) -> Iterator[None]:
    """Point boto3 at moto (and away from any real account) while active."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ENDPOINT_URL", endpoint)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        patch.setenv("AWS_CONFIG_FILE", str(scratch / "no-aws-config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(scratch / "no-aws-credentials"))
        yield


@pytest.fixture
def aws_env(moto_endpoint: str, tmp_path: Path) -> Iterator[str]:
    with moto_environment(moto_endpoint, tmp_path):
        yield moto_endpoint


@pytest.fixture
def ec2(aws_env: str) -> Any:
    """A client of the test's own, to look at (and arrange) moto's state."""
    import boto3

    return boto3.client("ec2", region_name=REGION)


@pytest.fixture(scope="session")
def moto_ami(moto_endpoint: str) -> str:
    """An AMI that exists in moto (its Amazon Linux 2023 image; x86_64)."""
    import boto3

    ssm = boto3.client(
        "ssm",
        region_name=REGION,
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return ssm.get_parameter(Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")[
        "Parameter"
    ]["Value"]


# --- what a pool leaves behind ----------------------------------------------------------------------------------


def tagged(ec2: Any, pool_id: str) -> dict[str, list[str]]:
    """The pool's live instances, security groups and key pairs, by its tag."""
    pool_filter = [{"Name": f"tag:{POOL_TAG}", "Values": [pool_id]}]
    live = ["pending", "running", "stopping", "stopped", "shutting-down"]
    reservations = ec2.describe_instances(
        Filters=[*pool_filter, {"Name": "instance-state-name", "Values": live}]
    )["Reservations"]
    return {
        "instances": [i["InstanceId"] for r in reservations for i in r["Instances"]],
        "groups": [g["GroupId"] for g in ec2.describe_security_groups(Filters=pool_filter)["SecurityGroups"]],
        "key_pairs": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=pool_filter)["KeyPairs"]],
    }


def pool_ids_seen(calls: list[Call]) -> set[str]:
    """The pool ids of the calls' tags (a launch that failed has no pool object to ask)."""
    found = set()
    for call in calls:
        for spec in call.params.get("TagSpecifications", []):
            found |= {tag["Value"] for tag in spec["Tags"] if tag["Key"] == POOL_TAG}
    return found


def nothing_left(ec2: Any, pool_id: str) -> bool:
    return tagged(ec2, pool_id) == {"instances": [], "groups": [], "key_pairs": []}


# --- the AWS calls a pool makes ---------------------------------------------------------------------------------


@dataclass
class Call:
    service: str
    operation: str
    params: dict[str, Any]


@dataclass
class CallRecorder:
    """Records every call of the provider's own clients; ``on(event, fn)`` hooks botocore events of them.

    `fn` receives botocore's keyword arguments: it may look at moto's state, or raise (KeyboardInterrupt, to
    simulate Ctrl-C at that very point of a launch).
    """

    calls: list[Call] = field(default_factory=list)
    hooks: list[tuple[str, Callable[..., None]]] = field(default_factory=list)

    def on(self, event: str, fn: Callable[..., None]) -> None:
        self.hooks.append((event, fn))

    def operations(self, service: str = "ec2") -> list[str]:
        return [c.operation for c in self.calls if c.service == service]

    def of(self, operation: str) -> list[Call]:
        return [c for c in self.calls if c.operation == operation]


@contextlib.contextmanager
def recording_calls() -> Iterator[CallRecorder]:
    """While active, the provider's clients record their calls and carry the recorder's hooks."""
    recorder = CallRecorder()
    real_open_clients = aws_module.open_clients

    def open_clients(profile: str | None, region: str | None) -> AwsClients:
        clients = real_open_clients(profile, region)
        for service, client in (("ec2", clients.ec2), ("ssm", clients.ssm)):
            client.meta.events.register(f"provide-client-params.{service}.*", _keep_params(recorder, service))
            for event, fn in recorder.hooks:
                client.meta.events.register(event, fn)
        return clients

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aws_module, "open_clients", open_clients)
        yield recorder


@pytest.fixture
def aws_calls(aws_env: str) -> Iterator[CallRecorder]:
    with recording_calls() as recorder:
        yield recorder


def _keep_params(recorder: CallRecorder, service: str) -> Callable[..., None]:
    """A ``provide-client-params`` handler: the parameters exactly as the provider passed them."""

    def handler(params: dict[str, Any], model: Any, **_: Any) -> None:
        recorder.calls.append(Call(service, model.name, dict(params)))

    return handler


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never says a word: an sshd that does not answer."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture(autouse=True)
def _no_teardown_left_running() -> Iterator[None]:
    """Teardown runs in a thread of its own: by the end of a test it must have finished."""
    yield
    stray = [t.name for t in threading.enumerate() if t.name.startswith("skyward-teardown-")]
    assert not stray, f"teardown threads still running: {stray}"


def unreachable_aws(moto_ami: str, **overrides: Any) -> aws_module.AWS:
    """An AWS provider against moto whose instances never answer SSH (a documentation address, quick timeout):
    for tests of what is created, tagged and cleaned up when provisioning fails or is interrupted."""
    settings: dict[str, Any] = {
        "ami": moto_ami,
        "instance_type": "c5.large",
        "ssh_cidr": "198.51.100.7",
        "ssh_timeout": 1.5,
        "quiet": True,
    }
    settings.update(overrides)
    return aws_module.AWS(**settings)
