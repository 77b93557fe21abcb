"""The measuring tools of benchmarks/: they measure something real and write what they say. Never timed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import skyward as sky

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_casty_floor_is_measured_against_the_pools_own_node() -> None:
    bench_core = load("bench_core")
    with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=1)) as pool:
        # casty_floor raises unless the node answered every ask (True: its agent's heartbeat).
        samples, in_flight = bench_core.casty_floor(pool, rounds=20, calls=40)
        from_thread = bench_core.casty_from_thread(pool, rounds=20)
    assert len(samples) == 20 and samples == sorted(samples) and samples[0] > 0
    assert in_flight > 0
    assert len(from_thread) == 20 and from_thread[0] > 0
