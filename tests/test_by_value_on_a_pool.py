"""A script's functions, pickled by value, run on a real pool with the globals of each call (never frozen)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

HELPERS = """\
FACTOR = 2

def double(x):
    return x * FACTOR
"""

SCRIPT = """\
import json
import os
import sys

import cloudpickle

import skyward as sky

sys.path.insert(0, sys.argv[1])
import shipped_helpers  # noqa: E402 - a module of the user's tree that the node cannot import: by value
from shipped_helpers import double  # noqa: E402

cloudpickle.register_pickle_by_value(shipped_helpers)
sys.path.remove(sys.argv[1])

SCALE = 1
SEEN = []


def scaled(x):
    return os.getpid(), x * SCALE, list(SEEN)


def version():
    return os.getpid(), 1


def make_adder():
    k = 1

    def add(x):
        return os.getpid(), x + k

    def set_k(value):
        nonlocal k
        k = value

    return add, set_k


add, set_k = make_adder()


def uses_helper(x):
    return os.getpid(), double(x)


out = {"client": os.getpid()}
with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=1)) as pool:
    def run(fn, *args):
        return pool.submit(fn, *args).result(timeout=60)

    out["global"] = [run(scaled, 3)]
    SCALE = 10
    out["global"].append(run(scaled, 3))
    SEEN.append("mutated")
    out["mutable"] = run(scaled, 3)
    out["redefined"] = [run(version)]

    def version():
        return os.getpid(), 2

    out["redefined"].append(run(version))
    out["closure"] = [run(add, 1)]
    set_k(100)
    out["closure"].append(run(add, 1))
    out["helper"] = [run(uses_helper, 5)]
    shipped_helpers.FACTOR = 3
    out["helper"].append(run(uses_helper, 5))
print("RESULT " + json.dumps(out))
"""


def test_a_scripts_functions_see_each_calls_globals_on_a_pool(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "shipped_helpers.py").write_text(HELPERS)
    (tmp_path / "script.py").write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "script.py"), str(tmp_path / "lib")],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,  # not the lib folder: the node cannot import shipped_helpers by name
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, textwrap.shorten(done.stderr, 3000)
    out = json.loads(lines[-1].removeprefix("RESULT "))
    client = out.pop("client")
    results = [out["global"], [out["mutable"]], out["redefined"], out["closure"], out["helper"]]
    pids = {pid for group in results for pid, *_ in group}
    assert len(pids) == 1 and client not in pids  # all ran on the node, none in the script's process
    assert [value for _, *value in out["global"]] == [[3, []], [30, []]]  # SCALE rebound between calls
    assert out["mutable"][1:] == [30, ["mutated"]]  # SEEN mutated in place
    assert [value for _, value in out["redefined"]] == [1, 2]  # same name, new body
    assert [value for _, value in out["closure"]] == [2, 101]  # the closure's cell set between calls
    assert [value for _, value in out["helper"]] == [10, 15]  # a shipped module's global rebound
