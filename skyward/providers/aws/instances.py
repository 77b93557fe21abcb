"""Launching a pool's instances: spot where it is asked for and available, on-demand otherwise.

- ``"on-demand"``: one ``RunInstances`` of all the nodes, on-demand.
- ``"always-spot"``: one ``RunInstances`` of all the nodes as spot, all or nothing; no spot capacity is an error.
- ``"spot-if-available"``: as many spot instances as EC2 grants (at least one, at most all), then the rest
  on-demand; when EC2 grants no spot capacity at all, all of them on-demand.

Every instance is tagged with its pool when it is created (`pool_tags`), and the ids of each successful call
are recorded at once, so that a failure in a later call still leaves them to the pool's teardown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from skyward.errors import ProvisionError
from skyward.providers.aws.api import aws_call, error_code, error_message

# The errors that mean "no spot capacity for this request now", as opposed to a request that is wrong.
SPOT_CAPACITY_ERRORS = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "UnfulfillableCapacity",
        "SpotMaxPriceTooLow",
        "MaxSpotInstanceCountExceeded",
        "SpotCapacityNotAvailable",
    }
)

SPOT_OPTIONS = {
    "MarketType": "spot",
    # One-time requests end with their instance; reclaimed capacity terminates it (never stop/hibernate).
    "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
}


def launch_instances(
    ec2: Any,
    request: dict[str, Any],
    count: int,
    allocation: str,
    *,
    record: Callable[[list[str]], None],
    say: Callable[[str], None],
) -> list[str]:
    """Start `count` instances of `request` (``RunInstances`` arguments but the counts and market) following
    `allocation`; returns their ids. `record` receives the ids of each call as soon as it returns."""

    def run(how_many: int, *, spot: bool, at_least: int) -> list[str]:
        arguments = {**request, "MinCount": at_least, "MaxCount": how_many}
        if spot:
            arguments["InstanceMarketOptions"] = SPOT_OPTIONS
        instances = ec2.run_instances(**arguments)["Instances"]
        ids = [item["InstanceId"] for item in instances]
        record(list(ids))
        return ids

    kind = request.get("InstanceType", "instances")
    if allocation == "on-demand":
        with aws_call(f"launching {count} on-demand {kind}"):
            return run(count, spot=False, at_least=count)
    from botocore.exceptions import ClientError

    try:
        with aws_call(f"launching {count} spot {kind}", passthrough=SPOT_CAPACITY_ERRORS):
            at_least = count if allocation == "always-spot" else 1
            ids = run(count, spot=True, at_least=at_least)
    except ClientError as exc:
        if allocation == "always-spot":
            raise ProvisionError(
                f"no spot capacity for {count} x {kind} now ({error_message(exc)}), and allocation='always-spot' "
                "does not fall back to on-demand. Try again later, another instance type or region, or "
                "allocation='spot-if-available'."
            ) from None
        say(f"no spot capacity for {kind} ({error_code(exc)}): launching {count} on-demand instead")
        with aws_call(f"launching {count} on-demand {kind}"):
            return run(count, spot=False, at_least=count)
    if len(ids) < count:
        rest = count - len(ids)
        say(f"spot capacity for {len(ids)} of {count} x {kind}: launching the other {rest} on-demand")
        with aws_call(f"launching {rest} on-demand {kind}"):
            ids = ids + run(rest, spot=False, at_least=rest)
    return ids
