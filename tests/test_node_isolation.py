"""Local nodes start isolated: a ``json.py`` in the working directory cannot shadow the stdlib in the worker,
while the client's own modules (on its ``sys.path``, pickled by reference) still import there."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import skyward as sky

SHADOW = "raise SystemExit('a json.py in the working directory shadowed the stdlib json module')\n"


def where_json() -> dict[str, object]:
    import json

    return {
        "pid": os.getpid(),
        "json": json.__file__,
        "isolated": sys.flags.isolated,
        "pythonpath": os.environ.get("PYTHONPATH"),
    }


def test_a_json_py_in_the_working_directory_does_not_reach_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "json.py").write_text(SHADOW)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    with sky.ComputePool(nodes=1) as pool:
        (node,) = sky.compute(where_json)() @ pool
    assert node["pid"] != os.getpid()
    assert not str(node["json"]).startswith(str(tmp_path)), node["json"]
    assert node["isolated"] == 1
    assert node["pythonpath"] is None  # the client's path reached the node as an argument, not in PYTHONPATH


def test_the_clients_own_modules_still_import_on_local_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "project"
    package.mkdir()
    (package / "isolation_user_module.py").write_text(
        "import os\n\ndef whoami(x):\n    return os.getpid(), __file__, x * 2\n"
    )
    monkeypatch.syspath_prepend(str(package))
    import isolation_user_module

    with sky.ComputePool(nodes=1) as pool:
        pid, where, doubled = sky.compute(isolation_user_module.whoami)(21) >> pool
    assert pid != os.getpid()
    assert doubled == 42
    assert where == str(package / "isolation_user_module.py")
