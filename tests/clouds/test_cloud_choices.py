"""What Verda and VastAI pools ask for, decided without any API: instance types, markets, offers, settings.

These need no lab and no root: they run everywhere the suite runs.
"""

from __future__ import annotations

from typing import Any

import pytest
from fake_vastai import OFFERS
from fake_verda import CATALOGUE, instance_type

import skyward as sky
from skyward.errors import ProvisionError
from skyward.providers.aws.machine_types import AcceleratorRequest
from skyward.providers.vastai.offers import choose_offers, gpu_name, offer_query
from skyward.providers.verda.choice import VerdaType, availability, choose
from skyward.spec import Resources, check_honoured


class _SdkType:
    """The SDK's ``InstanceType`` as the provider reads it (the API's fields, renamed as the SDK does)."""

    def __init__(self, item: dict[str, Any]) -> None:
        self.instance_type = item["instance_type"]
        self.cpu, self.memory, self.gpu = item["cpu"], item["memory"], item["gpu"]
        self.model, self.supported_os = item["model"], item["supported_os"]
        self.price_per_hour, self.spot_price_per_hour = (
            float(item["price_per_hour"]),
            float(item["spot_price"]),
        )


TYPES = [VerdaType.from_sdk(_SdkType(t)) for t in CATALOGUE]
EVERYWHERE = {
    s: availability([{"location_code": "FIN-01", "availabilities": [t.name for t in TYPES]}])
    for s in (True, False)
}


def test_nothing_asked_is_the_cheapest_small_cpu_type_on_spot() -> None:
    choice = choose(TYPES, EVERYWHERE, Resources())
    assert (choice.type.name, choice.spot, choice.location, choice.image) == (
        "CPU.2V.8G",
        True,
        "FIN-01",
        "ubuntu-24.04",
    )


def test_cpu_and_memory_take_the_cheapest_type_that_has_both() -> None:
    assert choose(TYPES, EVERYWHERE, Resources(cpu=4)).type.name == "CPU.4V.16G"
    assert choose(TYPES, EVERYWHERE, Resources(memory="20GB")).type.name == "CPU.8V.32G"


def test_an_accelerator_takes_a_gpu_type_and_its_cuda_image() -> None:
    choice = choose(TYPES, EVERYWHERE, Resources(accelerator="H100"))
    assert choice.type.name == "1H100.80S.30V" and choice.image == "ubuntu-24.04-cuda-12.8-open-docker"
    with pytest.raises(ProvisionError, match="2 x H100"):
        choose(TYPES, EVERYWHERE, Resources(accelerator="H100:2"))


def test_an_l4_is_not_an_l40s() -> None:
    l40s = VerdaType.from_sdk(_SdkType(instance_type("1L40S.20V", 20, 60, 1.0, gpus=1, model="L40S")))
    assert not l40s.has(AcceleratorRequest("L4")) and l40s.has(AcceleratorRequest("l40s"))


def test_allocation_picks_the_market_and_spot_if_available_falls_back() -> None:
    assert not choose(TYPES, EVERYWHERE, Resources(allocation="on-demand")).spot
    no_spot = {True: {"FIN-01": set()}, False: EVERYWHERE[False]}
    assert not choose(TYPES, no_spot, Resources()).spot
    with pytest.raises(ProvisionError, match="available spot now"):
        choose(TYPES, no_spot, Resources(allocation="always-spot"))


def test_only_available_locations_count_and_a_named_type_is_taken_as_is() -> None:
    split = {s: {"FIN-01": {"CPU.8V.32G"}, "ICE-01": {"CPU.2V.8G"}} for s in (True, False)}
    assert choose(TYPES, split, Resources()).location == "ICE-01"
    assert choose(TYPES, split, Resources(machine="CPU.8V.32G")).type.name == "CPU.8V.32G"
    with pytest.raises(ProvisionError, match="the name 'nope'"):
        choose(TYPES, split, Resources(machine="nope"))


def test_vast_query_and_choice() -> None:
    resources = Resources(cpu=8, memory="16GB", accelerator="RTX_4090:1")
    query = offer_query(resources, 0.5, {"reliability2": {"gte": 0.98}})
    assert query == {
        "gpu_name": {"eq": "RTX 4090"},
        "num_gpus": {"gte": 1},
        "cpu_cores_effective": {"gte": 8},
        "cpu_ram": {"gte": 17180},
        "dph_total": {"lte": 0.5},
        "reliability2": {"gte": 0.98},
    }
    assert [o["id"] for o in choose_offers(OFFERS, 2, resources, 0.5)] == [12, 14, 11]
    assert [o["id"] for o in choose_offers(OFFERS, 1, Resources(), None)][:2] == [13, 12]
    with pytest.raises(ProvisionError, match=r"VastAI has 2 offer\(s\) with cpu=8 at <= \$0.4/h"):
        choose_offers(OFFERS, 3, Resources(cpu=8), 0.4)
    assert gpu_name("H100_SXM") == gpu_name("H100  SXM") == "H100 SXM"


def test_resource_parameters_each_provider_honours() -> None:
    check_honoured(
        "ComputePool",
        sky.Verda(),
        Resources(cpu=2, memory="4GB", accelerator="A100", machine="x", allocation="on-demand"),
    )
    check_honoured("ComputePool", sky.VastAI(), Resources(cpu=2, memory="4GB", accelerator="RTX_4090"))
    with pytest.raises(ValueError, match="machine='x'"):
        check_honoured("ComputePool", sky.VastAI(), Resources(machine="x"))


def test_settings_are_checked_and_secrets_not_shown() -> None:
    assert "s3cret" not in repr(sky.Verda(client_id="id", client_secret="s3cret"))
    assert "s3cret" not in repr(sky.VastAI(api_key="s3cret"))
    with pytest.raises(ValueError, match="does not take hosts"):
        sky.Verda(ssh_options={"hosts": ["x"]})
    with pytest.raises(ValueError, match="max_price"):
        sky.VastAI(max_price=0)


def test_missing_credentials_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VERDA_CLIENT_ID", raising=False)
    monkeypatch.delenv("VERDA_CLIENT_SECRET", raising=False)
    with pytest.raises(sky.ProvisionError, match="VERDA_CLIENT_ID and VERDA_CLIENT_SECRET"):
        with sky.ComputePool(provider=sky.Verda(quiet=True)):
            pass
