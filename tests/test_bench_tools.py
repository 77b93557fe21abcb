"""The measuring tools of benchmarks/: they measure something real and write what they say. Never timed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from xml.etree import ElementTree

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


def test_suite_plot_writes_one_valid_svg_per_workload_from_a_json_result(tmp_path: Path) -> None:
    fixture = Path(__file__).parent / "fixtures" / "suite_small.json"
    charts = tmp_path / "charts"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "suite.py"), "--from-json", str(fixture), "--plot", str(charts)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in charts.iterdir()) == ["bigargs.svg", "latency.svg", "tiny.svg"]
    texts = {}
    for path in charts.iterdir():
        root = ElementTree.parse(path).getroot()  # well-formed XML, or this raises
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert float(root.get("width", "0pt").removesuffix("pt")) > 0
        texts[path.stem] = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    # Each chart shows skyward beside its peers, with the figures of the fixture, and says why one is missing.
    assert all(name in texts["tiny"] for name in ("skyward", "loky", "dask", "135,034", "194,536"))
    assert "timed out after 600s" in texts["tiny"]
    assert all(figure in texts["latency"] for figure in ("0.75", "0.64", "1.04", "2.05", "p99 ms"))
    assert "failed: ModuleNotFoundError" in texts["latency"]
    # MB sent is skyward's alone: nothing to compare, no panel.
    assert "wall s" in texts["bigargs"] and "MB sent" not in texts["bigargs"]
