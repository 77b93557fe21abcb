"""The measuring tools of benchmarks/: they measure something real and write what they say. Never timed."""

from __future__ import annotations

import importlib.util
import os
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


def test_profile_call_times_every_stage_of_real_calls_on_another_process(tmp_path: Path) -> None:
    profile_call = load("profile_call")
    result = profile_call.main(
        ["--calls", "5", "--nodes", "1", "--concurrency", "1", "--json", str(tmp_path / "p")]
    )
    assert result["node_pids"] and os.getpid() not in result["node_pids"]
    tiny = result["tiny"]
    expected = [name for name, start, end in profile_call.STAGES if "upload" not in start + end]
    assert list(tiny) == [*expected, "total (call to result)"]  # every stamp was taken, client's and node's
    assert all(figures["median_us"] >= 0 for figures in tiny.values())
    assert tiny["total (call to result)"]["median_us"] > 0


def test_profile_call_stages_add_up_to_the_round_trip() -> None:
    profile_call = load("profile_call")
    stamps = {name: i * 10_000 for i, name in enumerate(
        ["call", "enc_start", "enc_end", "send", "node_in", "exec_start", "decode_end", "ok_start", "ok_end", "tell",
         "reply_in", "resolve_start", "resolve_end", "done"]
    )}  # fmt: skip
    spans = profile_call.spans(stamps)
    assert len(spans) == 13 and sum(spans.values()) == (stamps["done"] - stamps["call"]) / 1e3
    stamps |= {"upload_start": stamps["enc_end"] + 1000, "upload_end": stamps["send"] - 1000}
    spans = profile_call.spans(stamps)
    assert spans["upload (put_blob, all chunks)"] == 8.0
    assert sum(spans.values()) == (stamps["done"] - stamps["call"]) / 1e3


def test_bench_core_plots_skyward_beside_the_floor_from_its_json(tmp_path: Path) -> None:
    fixture = Path(__file__).parent / "fixtures" / "bench_core_small.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "bench_core.py"),
            "--from-json",
            str(fixture),
            "--plot",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    root = ElementTree.parse(tmp_path / "core.svg").getroot()
    text = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for label in (
        "casty floor",
        "skyward",
        "ProcessPoolExecutor",
        "0.44",
        "1.57",
        "6,105",
        "882.3",
        "not measured",
    ):
        assert label in text, label
