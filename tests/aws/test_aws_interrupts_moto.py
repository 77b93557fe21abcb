"""Ctrl-C and failures at every phase of a launch leave nothing behind, including calls interrupted after AWS
acted but before its answer arrived; a plan that cannot be made creates nothing at all."""

from __future__ import annotations

import _thread
import http.server
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import CallRecorder, nothing_left, pool_ids_seen, tagged
from conftest import unreachable_aws as provider

import skyward as sky
import skyward.providers.aws.reach as aws_reach

CREATES = {"ImportKeyPair", "CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "RunInstances"}


def interrupt(**_: Any) -> None:
    """Ctrl-C, as it arrives: in the main thread (teardown's own calls, in its thread, go through)."""
    if threading.current_thread() is threading.main_thread():
        raise KeyboardInterrupt


@pytest.mark.parametrize(
    "event",
    [
        # After AWS created the thing, before its answer reached the provider: only the tag finds it.
        "after-call.ec2.ImportKeyPair",
        "after-call.ec2.CreateSecurityGroup",
        "after-call.ec2.RunInstances",
        # While waiting for the instances.
        "before-parameter-build.ec2.DescribeInstances",
    ],
)
def test_ctrl_c_at_each_phase_of_a_launch_leaves_nothing(
    event: str, aws_calls: CallRecorder, ec2: Any, moto_ami: str
) -> None:
    aws_calls.on(event, interrupt)
    with pytest.raises(KeyboardInterrupt), sky.ComputePool(provider=provider(moto_ami), nodes=2):
        pytest.fail("the pool must not start")
    (pool_id,) = pool_ids_seen(aws_calls.calls)
    assert nothing_left(ec2, pool_id), tagged(ec2, pool_id)
    operations = aws_calls.operations()
    # Teardown swept by tag: what the interrupted call created is found though its id never arrived.
    assert "DescribeKeyPairs" in operations and "DescribeSecurityGroups" in operations
    if event != "after-call.ec2.ImportKeyPair":
        assert "DeleteSecurityGroup" in operations
    if "RunInstances" in event or "DescribeInstances" in event:
        assert "TerminateInstances" in operations


def test_an_error_after_the_instances_started_leaves_nothing(
    aws_calls: CallRecorder, ec2: Any, moto_ami: str
) -> None:
    def explode(**_: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            raise RuntimeError("the console broke")

    aws_calls.on("before-parameter-build.ec2.DescribeInstances", explode)
    with pytest.raises(RuntimeError, match="the console broke"), sky.ComputePool(provider=provider(moto_ami)):
        pass
    (pool_id,) = pool_ids_seen(aws_calls.calls)
    assert nothing_left(ec2, pool_id)


def test_a_second_ctrl_c_during_teardown_does_not_stop_it(
    aws_calls: CallRecorder, ec2: Any, moto_ami: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Ctrl-C while waiting, then again while teardown deletes the key pair. Teardown runs in a thread of its
    # own, so the second one lands in the main thread's wait for it, as a real second Ctrl-C would.
    def taken() -> bool:
        return any("still removing the AWS resources" in r.getMessage() for r in caplog.records)

    def second_ctrl_c(**_: Any) -> None:
        _thread.interrupt_main()
        # Teardown stays busy until the main thread has taken the Ctrl-C (a fixed sleep lost that race on a
        # loaded machine: the main thread woke after teardown had finished).
        deadline = time.monotonic() + 60
        while not taken() and time.monotonic() < deadline:
            time.sleep(0.05)

    aws_calls.on("before-parameter-build.ec2.DescribeInstances", interrupt)
    aws_calls.on("before-parameter-build.ec2.DeleteKeyPair", second_ctrl_c)
    with pytest.raises(KeyboardInterrupt), sky.ComputePool(provider=provider(moto_ami, quiet=False), nodes=1):
        pass
    (said,) = [r for r in caplog.records if "still removing the AWS resources" in r.getMessage()]
    assert (said.name, said.levelno) == ("skyward.aws", logging.WARNING)
    (teardown,) = [t for t in threading.enumerate() if t.name.startswith("skyward-teardown-")]
    assert teardown.is_alive() and not teardown.daemon  # the interpreter would wait for it at exit
    teardown.join(60)
    (pool_id,) = pool_ids_seen(aws_calls.calls)
    assert nothing_left(ec2, pool_id)


def test_a_plan_that_cannot_be_made_creates_nothing(aws_calls: CallRecorder, moto_ami: str) -> None:
    cases: list[tuple[dict[str, Any], dict[str, Any], str]] = [
        ({"instance_type": "c5.nonesuch"}, {}, "no EC2 instance type 'c5.nonesuch' in us-east-1"),
        ({"ami": "ami-0123456789abcdef0"}, {}, "AMI ami-0123456789abcdef0 does not exist"),
        ({"instance_type": "c6g.large"}, {}, "is built for x86_64 but c6g.large is arm64"),
        ({"instance_type": "c5.large"}, {"machine": "m5.large"}, "name one instance type"),
        ({"instance_type": "c5.large"}, {"cpu": 64}, "does not have what the pool asks for"),
        (
            {"ami": None},
            {},
            "the public SSM parameter /aws/service/canonical/ubuntu/server/24.04/stable/current/amd64",
        ),
        ({}, {"memory": "lots"}, "memory must be a size like"),
        ({}, {"accelerator": "T4:none"}, "accelerator must look like"),
        ({"address": "private", "ssh_cidr": None}, {}, "AWS(ssh_cidr=...) is needed"),
    ]
    for settings, pool, message in cases:
        aws_calls.calls.clear()
        with pytest.raises(sky.ProvisionError, match=message.replace("(", r"\(").replace(")", r"\)")):
            with sky.ComputePool(provider=provider(moto_ami, **settings), **pool):
                pass
        assert not CREATES & set(aws_calls.operations()), (settings, aws_calls.operations())


def test_the_default_ami_comes_from_the_public_ubuntu_parameter(aws_calls: CallRecorder) -> None:
    # moto has no Canonical parameters: the error shows which one was asked for, and nothing was created.
    with pytest.raises(sky.ProvisionError, match="pass sky.AWS\\(ami='ami-...'\\)"):
        with sky.ComputePool(
            provider=sky.AWS(instance_type="c6g.large", ssh_cidr="198.51.100.7", quiet=True)
        ):
            pass
    (get,) = [c for c in aws_calls.calls if c.service == "ssm"]
    assert get.params == {
        "Name": "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id"
    }
    assert not CREATES & set(aws_calls.operations())


# --- the client's address ---------------------------------------------------------------------------------------


@pytest.fixture
def checkip(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bytes], None]]:
    """A local stand-in for checkip.amazonaws.com; ``answer(b"...")`` sets what it says."""
    said = {"body": b"203.0.113.9\n"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(said["body"])

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(aws_reach, "CHECKIP_URL", f"http://127.0.0.1:{server.server_address[1]}/")
    yield lambda body: said.update(body=body)
    server.shutdown()


def test_the_client_address_defaults_to_what_checkip_sees(checkip: Callable[[bytes], None]) -> None:
    assert aws_reach.client_cidr(None) == "203.0.113.9/32"
    checkip(b"2001:db8::7\n")
    assert aws_reach.client_cidr(None) == "2001:db8::7/128"
    assert aws_reach.client_cidr("192.0.2.0/24") == "192.0.2.0/24"
    checkip(b"<html>a captive portal</html>")
    with pytest.raises(sky.ProvisionError, match="ssh_cidr"):
        aws_reach.client_cidr(None)


def test_without_ssh_cidr_and_offline_the_pool_asks_for_it_and_creates_nothing(
    aws_calls: CallRecorder, moto_ami: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Offline: the address service cannot be reached (here: a port where nothing listens).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setattr(aws_reach, "CHECKIP_URL", f"http://127.0.0.1:{closed}/")
    started = time.monotonic()
    with pytest.raises(sky.ProvisionError, match=r"cannot find this machine's public address.*ssh_cidr="):
        with sky.ComputePool(provider=provider(moto_ami, ssh_cidr=None)):
            pass
    assert time.monotonic() - started < 10
    assert not CREATES & set(aws_calls.operations())
