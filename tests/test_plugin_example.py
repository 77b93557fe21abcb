"""The third-party plugin example (examples/plugin_example) installs like any package and works in a pool.

The package is built and installed with uv from its own pyproject.toml (its build backend, its entry point
table) into a fresh directory, then used from processes that have that directory on their path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import skyward as sky

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin_example"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the example package as `uv pip install` leaves it: the module and its dist-info."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail("uv is needed to build and install examples/plugin_example (`pip install uv`)")
    target = tmp_path_factory.mktemp("plugin-example")
    done = subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--no-deps",
            "--python",
            sys.executable,
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return target


@pytest.fixture
def on_path(installed: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The installed example importable, and its entry point visible, in this process for one test."""
    monkeypatch.syspath_prepend(str(installed))
    yield
    sys.modules.pop("skyward_threadlimits", None)


def test_the_entry_point_comes_from_the_packages_pyproject(installed: Path) -> None:
    (dist_info,) = installed.glob("skyward_threadlimits-*.dist-info")
    entry_points = (dist_info / "entry_points.txt").read_text()
    assert "[skyward.plugins]" in entry_points
    assert "threadlimits = skyward_threadlimits:plugin" in entry_points


def test_demo_runs_a_pool_with_the_plugin(installed: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_NUM_THREADS") and k != "VECLIB_MAXIMUM_THREADS"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(installed), env.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "demo.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    client = lines[0].rsplit("client pid ", 1)[1]
    assert lines[0].startswith("plugin: skyward.plugins.threadlimits(threads=1)")
    nodes = [line for line in lines if "-node-" in line]
    assert len(nodes) == 2, done.stdout
    for line in nodes:
        assert f"(pid {client})" not in line  # ran in a worker process
        assert "OMP_NUM_THREADS=1," in line
        assert line.endswith("BLAS threads in use: 1")  # numpy's BLAS on the node really uses one thread


def test_an_image_that_sets_a_limit_keeps_it(on_path: None) -> None:
    plugin = sky.plugins.threadlimits(threads=2)
    cluster = sky.ClusterSpec(pool_id="p", nodes=1, worker=sky.Worker(), provider="local")
    image = plugin.image_transform(sky.Image(env={"OMP_NUM_THREADS": "4", "OTHER": "x"}), cluster)
    assert image.env["OMP_NUM_THREADS"] == "4" and image.env["OTHER"] == "x"
    assert image.env["OPENBLAS_NUM_THREADS"] == "2" and image.env["MKL_NUM_THREADS"] == "2"


def test_the_check_fails_a_pool_whose_nodes_lack_the_limits(
    on_path: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    class DropEnvironment:
        """A plugin after threadlimits that throws the image's environment away."""

        @sky.hookimpl
        def image_transform(self, image: sky.Image, cluster: sky.ClusterSpec) -> sky.Image:
            return sky.Image(python=image.python, pip=image.pip, apt=image.apt)

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # Local nodes inherit this process's environment
    # More threads than this machine has CPUs: never skyward's own default, which the nodes then get.
    threads = (os.cpu_count() or 1) + 1
    plugins = [sky.plugins.threadlimits(threads), DropEnvironment()]
    with (
        pytest.raises(RuntimeError, match=f"OMP_NUM_THREADS is not {threads} on nodes"),
        sky.ComputePool(plugins=plugins),
    ):
        pass
