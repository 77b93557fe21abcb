"""The agent's launch configuration: one codec, the same line from every provider, clear errors on the node."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from skyward.agent_config import VERSION, AgentConfig, AgentConfigError
from skyward.credentials import node_material

SECRET = bytes(range(32))


def test_round_trip_keeps_every_field() -> None:
    config = AgentConfig.for_node(
        SECRET, "node-7", concurrency=3, executor="process", lease=12.5, nodes_on_machine=4,
        reply_cache_bytes=1 << 20, blob_cache_bytes=2 << 20, bind="10.0.0.7",
    )  # fmt: skip
    line = config.encode()
    assert line.endswith("\n") and line.count("\n") == 1  # one line on stdin
    assert AgentConfig.decode(line) == config
    assert config.tls == node_material(SECRET, "node-7")
    assert SECRET.hex() not in line


def test_defaults_round_trip() -> None:
    config = AgentConfig.for_node(SECRET, "n")
    assert AgentConfig.decode(config.encode()) == config
    assert config.bind == "127.0.0.1"  # Local, SSH and AWS agents stay on loopback


@pytest.mark.parametrize("field", ["tls_cert", "tls_key", "tls_ca", "node"])
def test_a_missing_field_is_named(field: str) -> None:
    data = json.loads(AgentConfig.for_node(SECRET, "n").encode())
    del data[field]
    with pytest.raises(AgentConfigError, match=f"lacks '{field}'"):
        AgentConfig.decode(json.dumps(data))


@pytest.mark.parametrize("version", [None, 0, VERSION + 1, "1"])
def test_another_version_is_refused(version: object) -> None:
    data = json.loads(AgentConfig.for_node(SECRET, "n").encode())
    if version is None:
        del data["version"]
    else:
        data["version"] = version
    with pytest.raises(AgentConfigError, match="client and node versions of skyward differ"):
        AgentConfig.decode(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"executor": "fork"}, "executor must be"),
        ({"concurrency": "many"}, "unusable field"),
        ({"bind": ""}, "bind must be"),
        ({"bind": 7}, "bind must be"),
    ],
)
def test_an_unusable_field_is_refused(change: dict[str, object], match: str) -> None:
    data = {**json.loads(AgentConfig.for_node(SECRET, "n").encode()), **change}
    with pytest.raises(AgentConfigError, match=match):
        AgentConfig.decode(json.dumps(data))


def test_not_json_is_refused() -> None:
    with pytest.raises(AgentConfigError, match="not JSON"):
        AgentConfig.decode("{nope")
    with pytest.raises(AgentConfigError, match="not a JSON object"):
        AgentConfig.decode("[1]")


def test_the_agent_exits_with_the_reason_on_a_bad_line() -> None:
    data = json.loads(AgentConfig.for_node(SECRET, "n").encode())
    del data["tls_key"]
    result = subprocess.run(
        [sys.executable, "-m", "skyward.worker"], input=json.dumps(data) + "\n", capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "skyward worker: the agent configuration lacks 'tls_key'" in result.stderr
