"""Prices of a pool's instances: the Price List answer's parsing (recorded shapes, tests/aws/fixtures/README.md),
and `look_up` against moto's EC2 (spot price history and ``InstanceLifecycle``), failures leaving "unknown"."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from skyward.providers.aws.prices import NodePrice, look_up, money, on_demand_filters, parse_on_demand

FIXTURES = Path(__file__).parent / "fixtures"
MOTO_SPOT_PRICE = 0.00001  # what moto answers for every type and zone


def answer(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def test_the_hourly_on_demand_price_is_read_from_a_get_products_answer() -> None:
    # 0.085 on demand, not the reserved term's 0.054
    assert parse_on_demand(answer("get_products_c5_large.json")["PriceList"]) == 0.085


def test_an_answer_without_an_hourly_on_demand_price_is_an_error() -> None:
    with pytest.raises(ValueError, match="0 distinct"):  # AWS's own example: storage, per GB-month
        parse_on_demand(answer("get_products_storage.json")["PriceList"])
    with pytest.raises(ValueError, match="0 distinct"):
        parse_on_demand([])
    product = answer("get_products_c5_large.json")["PriceList"][0]
    other = product.replace("0.0850000000", "0.0960000000")
    with pytest.raises(ValueError, match="2 distinct"):  # filters that did not single out one product
        parse_on_demand([product, other])


def test_the_filters_name_type_region_and_linux_shared_tenancy() -> None:
    fields = {f["Field"]: f["Value"] for f in on_demand_filters("c5.large", "eu-west-1")}
    assert fields == {
        "instanceType": "c5.large", "regionCode": "eu-west-1", "operatingSystem": "Linux",
        "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used",
    }  # fmt: skip


def test_money_keeps_small_prices_visible() -> None:
    assert money(None) == "unknown"
    assert money(0.085) == "$0.08500"
    assert money(12.3456) == "$12.35"
    assert money(0.00001) == "$0.00001000"
    assert NodePrice("spot", 0.36, launched=1000.0).cost(1000.0 + 1800) == pytest.approx(0.18)
    assert NodePrice("spot", None, launched=0.0).cost(10.0) is None


class FakePricing:
    """A Price List client that answers with a recorded answer (moto does not serve ``pricing``)."""

    def __init__(self, answer: dict[str, Any] | None) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def get_products(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        if self.answer is None:
            raise RuntimeError("AccessDeniedException: not allowed pricing:GetProducts")
        return self.answer


def launch(ec2: Any, ami: str, *, spot: bool) -> str:
    market = {"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}
    return ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="c5.large", **market)[
        "Instances"
    ][0]["InstanceId"]


def test_each_instance_gets_the_price_of_the_basis_it_came_up_with(ec2: Any, moto_ami: str) -> None:
    spot, on_demand = launch(ec2, moto_ami, spot=True), launch(ec2, moto_ami, spot=False)
    pricing = FakePricing(answer("get_products_c5_large.json"))
    prices = look_up(ec2, lambda: pricing, [spot, on_demand], "c5.large")
    assert (prices[spot].basis, prices[spot].hourly) == ("spot", MOTO_SPOT_PRICE)
    assert (prices[on_demand].basis, prices[on_demand].hourly) == ("on-demand", 0.085)
    assert {f["Field"]: f["Value"] for f in pricing.calls[0]["Filters"]}["regionCode"] == "us-east-1"
    assert prices[spot].launched > 0


def test_a_failed_lookup_leaves_the_price_unknown_and_says_why(
    ec2: Any, moto_ami: str, caplog: pytest.LogCaptureFixture
) -> None:
    spot, on_demand = launch(ec2, moto_ami, spot=True), launch(ec2, moto_ami, spot=False)

    def refuse(**_: Any) -> None:
        raise RuntimeError("simulated throttling")

    ec2.meta.events.register("before-call.ec2.DescribeSpotPriceHistory", refuse)
    with caplog.at_level(logging.INFO, logger="skyward.aws"):
        prices = look_up(ec2, lambda: FakePricing(None), [spot, on_demand], "c5.large")
    assert (prices[spot].basis, prices[spot].hourly) == ("spot", None)
    assert (prices[on_demand].basis, prices[on_demand].hourly) == ("on-demand", None)
    text = caplog.text
    assert "simulated throttling" in text and "AccessDeniedException" in text
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "skyward.aws")
