"""`import skyward` stays cheap: provider SDKs, the transport and TLS load only when a pool starts."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("casty", "asyncssh", "boto3", "botocore", "cryptography", "verda", "vastai", "requests")

PROBE = """
import json, sys
before = set(sys.modules)
import skyward as sky
count = len(set(sys.modules) - before)
sky.SSH(hosts=["127.0.0.1"]); sky.AWS(); sky.Local(); sky.Worker(concurrency=2)  # configuration only
sky.Verda(); sky.VastAI()
loaded = set(sys.modules) - before
print(json.dumps({"count": count, "heavy": sorted(m for m in loaded if m.split(".")[0] in sys.argv[1:])}))
"""


def test_import_skyward_and_constructing_providers_loads_no_sdk() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *HEAVY], capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["count"] <= 120, result["count"]


def test_lazy_names_resolve_to_their_modules() -> None:
    import skyward as sky
    from skyward.pool import ComputePool
    from skyward.providers.aws import AWS

    assert sky.ComputePool is ComputePool and sky.AWS is AWS
    assert sky.plugins.__name__ == "skyward.plugins"
    try:
        sky.no_such_name  # noqa: B018
    except AttributeError as error:
        assert "no_such_name" in str(error)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
