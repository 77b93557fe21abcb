"""What a pool's instances cost by the hour: the basis each one got (spot or on-demand) and its hourly price.

Looked up once per pool, in a thread of its own once the instances run (never on the I/O loop):
``DescribeInstances`` says how each instance came up (``InstanceLifecycle`` is ``"spot"`` for spot, absent for
on-demand), its availability zone and launch time; a spot price comes from ``DescribeSpotPriceHistory`` for its
type and zone, an on-demand price from the AWS Price List API (``pricing:GetProducts``, served in us-east-1).
Nothing here fails a pool: a price that cannot be had is ``None`` ("unknown"), with the reason logged at INFO.

The figures are estimates of the instances alone: no storage, data transfer, taxes or discounts.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("skyward.aws")

PRICING_REGION = "us-east-1"  # the Price List API's endpoint (it answers for every region)


@dataclass(frozen=True)
class NodePrice:
    """One instance's price basis as launched, hourly price in USD (``None``: unknown) and launch time."""

    basis: str  # "spot", "on-demand", or "unknown" (the instance could not be described)
    hourly: float | None
    launched: float  # epoch seconds

    def cost(self, now: float) -> float | None:
        """The running cost so far: hourly price x hours since launch (``None`` when the price is unknown)."""
        if self.hourly is None:
            return None
        return self.hourly * max(0.0, now - self.launched) / 3600.0


def money(amount: float | None) -> str:
    """USD with four significant digits at least two decimals (spot prices go down to a millionth)."""
    if amount is None:
        return "unknown"
    if amount <= 0:
        return "$0.00"
    decimals = max(2, 3 - math.floor(math.log10(amount)))
    return f"${amount:.{decimals}f}"


def parse_on_demand(price_list: Iterable[str]) -> float:
    """The hourly USD price in a ``GetProducts`` answer's ``PriceList`` (JSON strings, one per product).

    Takes the ``OnDemand`` terms' price dimensions whose unit is hours; raises `ValueError` unless exactly one
    distinct price is found (none, or several products the filters did not tell apart).
    """
    found: set[float] = set()
    for text in price_list:
        item = json.loads(text)
        for term in item.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                if dimension.get("unit") not in ("Hrs", "Hours"):
                    continue
                usd = dimension.get("pricePerUnit", {}).get("USD")
                if usd is not None:
                    found.add(float(usd))
    if len(found) != 1:
        raise ValueError(f"{len(found)} distinct hourly on-demand prices in the answer (expected one)")
    return found.pop()


def on_demand_filters(instance_type: str, region: str) -> list[dict[str, str]]:
    """``GetProducts`` filters for Linux, shared tenancy, no pre-installed software, capacity used."""
    fields = {
        "instanceType": instance_type,
        "regionCode": region,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
    }
    return [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in fields.items()]


def on_demand_price(pricing: Any, instance_type: str, region: str) -> float:
    answer = pricing.get_products(
        ServiceCode="AmazonEC2", Filters=on_demand_filters(instance_type, region), MaxResults=10
    )
    return parse_on_demand(answer.get("PriceList", []))


def spot_price(ec2: Any, instance_type: str, zone: str) -> float:
    """The latest spot price of `instance_type` (Linux) in availability zone `zone`."""
    history = ec2.describe_spot_price_history(
        InstanceTypes=[instance_type],
        ProductDescriptions=["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
        Filters=[{"Name": "availability-zone", "Values": [zone]}],
        StartTime=time.time(),  # the price in force now (AWS returns the latest one before it)
    )["SpotPriceHistory"]
    if not history:
        raise ValueError(f"no spot price history for {instance_type} in {zone}")
    latest = max(history, key=lambda entry: entry["Timestamp"])
    return float(latest["SpotPrice"])


class PriceBook:
    """The prices of one pool's instances, looked up in a background thread; readable at any time."""

    def __init__(self) -> None:
        self.prices: dict[str, NodePrice] = {}
        self.done = threading.Event()

    def start(self, ec2: Any, pricing: Callable[[], Any] | None, instance_ids: list[str], kind: str) -> None:
        """Look the prices up in a daemon thread (AWS calls can be slow; nothing waits for them)."""
        thread = threading.Thread(
            target=self._look_up,
            args=(ec2, pricing, instance_ids, kind),
            name="skyward-aws-prices",
            daemon=True,
        )
        thread.start()

    def _look_up(self, ec2: Any, pricing: Callable[[], Any] | None, ids: list[str], kind: str) -> None:
        try:
            self.prices = look_up(ec2, pricing, ids, kind)
        finally:
            self.done.set()


def look_up(ec2: Any, pricing: Callable[[], Any] | None, ids: list[str], kind: str) -> dict[str, NodePrice]:
    """Each instance's `NodePrice`; every failure is logged at INFO and leaves the price unknown."""
    now = time.time()
    try:
        reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    except Exception as exc:  # noqa: BLE001  (a price is a nicety: never fail the pool for it)
        logger.info("price unknown for %s: describing the instances failed: %s", ", ".join(ids), exc)
        return {i: NodePrice("unknown", None, now) for i in ids}
    cache: dict[tuple[str, str], float | None] = {}

    def hourly(basis: str, zone: str) -> float | None:
        key = (basis, zone if basis == "spot" else "")
        if key not in cache:
            try:
                if basis == "spot":
                    cache[key] = spot_price(ec2, kind, zone)
                elif pricing is None:
                    raise ValueError("no Price List client")
                else:
                    cache[key] = on_demand_price(pricing(), kind, ec2.meta.region_name)
            except Exception as exc:  # noqa: BLE001
                logger.info("price unknown for %s %s (%s): %s", basis, kind, zone or "-", exc)
                cache[key] = None
        return cache[key]

    prices: dict[str, NodePrice] = {}
    for reservation in reservations:
        for instance in reservation["Instances"]:
            basis = "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand"
            zone = instance.get("Placement", {}).get("AvailabilityZone", "")
            launch = instance.get("LaunchTime")
            launched = launch.timestamp() if hasattr(launch, "timestamp") else now
            prices[instance["InstanceId"]] = NodePrice(basis, hourly(basis, zone), launched)
    return prices
