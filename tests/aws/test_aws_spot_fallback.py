"""Allocation strategies against botocore's Stubber: EC2 refusing spot capacity (``InsufficientInstanceCapacity``)
and granting part of it. The stubbed client makes no request at all; every expected call is asserted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

import skyward as sky
from skyward.providers.aws.instances import SPOT_OPTIONS, launch_instances

REQUEST = {"ImageId": "ami-0123456789abcdef0", "InstanceType": "c5.large", "KeyName": "skyward-sky-test"}


@pytest.fixture(scope="module")
def client() -> Any:
    return boto3.client(
        "ec2", region_name="us-east-1", aws_access_key_id="stub", aws_secret_access_key="stub"
    )


@pytest.fixture
def stubbed(client: Any) -> Iterator[tuple[Any, Stubber]]:
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()  # every call we expected was made


def instances(*ids: str) -> dict[str, Any]:
    return {"Instances": [{"InstanceId": i} for i in ids]}


def expect_run(
    stubber: Stubber, count: int, at_least: int, spot: bool, answer: dict[str, Any] | None
) -> None:
    params: dict[str, Any] = {**REQUEST, "MinCount": at_least, "MaxCount": count}
    if spot:
        params["InstanceMarketOptions"] = SPOT_OPTIONS
    if answer is None:
        stubber.add_client_error(
            "run_instances",
            service_error_code="InsufficientInstanceCapacity",
            service_message="We currently do not have sufficient c5.large capacity in the AZ you requested.",
            http_status_code=500,
            expected_params=params,
        )
    else:
        stubber.add_response("run_instances", answer, expected_params=params)


def launch(client: Any, count: int, allocation: str) -> tuple[list[str], list[list[str]], list[str]]:
    recorded: list[list[str]] = []
    said: list[str] = []
    ids = launch_instances(client, dict(REQUEST), count, allocation, record=recorded.append, say=said.append)
    return ids, recorded, said


def test_spot_if_available_falls_back_to_on_demand_when_spot_capacity_is_refused(stubbed) -> None:  # type: ignore[no-untyped-def]
    client, stubber = stubbed
    expect_run(stubber, 3, at_least=1, spot=True, answer=None)
    expect_run(stubber, 3, at_least=3, spot=False, answer=instances("i-1", "i-2", "i-3"))
    ids, recorded, said = launch(client, 3, "spot-if-available")
    assert ids == ["i-1", "i-2", "i-3"] and recorded == [ids]
    assert said == [
        "no spot capacity for c5.large (InsufficientInstanceCapacity): launching 3 on-demand instead"
    ]


def test_spot_if_available_tops_up_partial_spot_capacity_with_on_demand(stubbed) -> None:  # type: ignore[no-untyped-def]
    client, stubber = stubbed
    expect_run(stubber, 3, at_least=1, spot=True, answer=instances("i-spot"))
    expect_run(stubber, 2, at_least=2, spot=False, answer=instances("i-od1", "i-od2"))
    ids, recorded, said = launch(client, 3, "spot-if-available")
    assert ids == ["i-spot", "i-od1", "i-od2"]
    assert recorded == [["i-spot"], ["i-od1", "i-od2"]]  # each call's ids recorded as soon as it returned
    assert "spot capacity for 1 of 3" in said[0]


def test_spot_if_available_needs_no_on_demand_when_spot_suffices(stubbed) -> None:  # type: ignore[no-untyped-def]
    client, stubber = stubbed
    expect_run(stubber, 2, at_least=1, spot=True, answer=instances("i-1", "i-2"))
    assert launch(client, 2, "spot-if-available") == (["i-1", "i-2"], [["i-1", "i-2"]], [])


def test_always_spot_fails_clearly_and_never_launches_on_demand(stubbed) -> None:  # type: ignore[no-untyped-def]
    client, stubber = stubbed
    expect_run(stubber, 2, at_least=2, spot=True, answer=None)  # all or nothing; no second call expected
    with pytest.raises(sky.ProvisionError) as failure:
        launch(client, 2, "always-spot")
    message = str(failure.value)
    assert "no spot capacity for 2 x c5.large" in message and "InsufficientInstanceCapacity" in message
    assert "allocation='always-spot' does not fall back to on-demand" in message


def test_on_demand_never_asks_for_spot(stubbed) -> None:  # type: ignore[no-untyped-def]
    client, stubber = stubbed
    expect_run(stubber, 2, at_least=2, spot=False, answer=instances("i-1", "i-2"))
    assert launch(client, 2, "on-demand")[0] == ["i-1", "i-2"]


def test_other_refusals_are_not_mistaken_for_spot_capacity(stubbed) -> None:  # type: ignore[no-untyped-def]
    client, stubber = stubbed
    stubber.add_client_error("run_instances", service_error_code="VcpuLimitExceeded", service_message="quota")
    with pytest.raises(sky.ProvisionError, match="VcpuLimitExceeded.*vCPU quota"):
        launch(client, 2, "spot-if-available")  # no on-demand attempt: the stubber would have no answer
