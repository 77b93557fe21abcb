"""Which client modules travel by value to nodes that do not share the client's files."""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from pathlib import Path

import cloudpickle
import pytest

import skyward
from skyward.code_shipping import is_local_source, ship_local_modules_by_value


def test_installed_stdlib_and_skyward_modules_are_not_shipped() -> None:
    assert not is_local_source("json", json)
    assert not is_local_source("cloudpickle", cloudpickle)  # site-packages
    assert not is_local_source("pytest", pytest)
    assert not is_local_source("skyward", skyward)  # the nodes install skyward's own wheel


def test_a_module_of_the_users_source_tree_is_shipped_by_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_tasks_for_shipping.py").write_text("def double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("my_tasks_for_shipping")
    try:
        assert is_local_source("my_tasks_for_shipping", module)
        by_reference = cloudpickle.dumps(module.double)
        ship_local_modules_by_value()
        by_value = cloudpickle.dumps(module.double)
        assert b"my_tasks_for_shipping" in by_reference and len(by_value) > len(by_reference)
        # A process that cannot import the module still rebuilds the function.
        del sys.modules["my_tasks_for_shipping"]
        sys.path.remove(str(tmp_path))
        assert cloudpickle.loads(by_value)(21) == 42
    finally:
        with contextlib.suppress(ValueError):  # not registered if the test failed before shipping
            cloudpickle.unregister_pickle_by_value(module)
        sys.modules.pop("my_tasks_for_shipping", None)
