"""boto3 is the optional extra ``skyward[aws]``: skyward imports, and AWS pools are configured, without it; a
launch then says how to install it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

WITHOUT_BOTO3 = textwrap.dedent(
    """
    import sys

    class HideBoto:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("boto3", "botocore"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, HideBoto())

    import skyward as sky
    import skyward.integrations

    assert not {"boto3", "botocore"} & set(sys.modules), "imported by import skyward"
    provider = sky.AWS(region="us-east-1", ssh_cidr="198.51.100.7")
    pool = sky.ComputePool(provider=provider, nodes=2, cpu=4, memory="16GB")
    try:
        with pool:
            pass
    except sky.ProvisionError as error:
        print("LAUNCH:", error)
    assert not {"boto3", "botocore"} & set(sys.modules)
    """
)


def test_skyward_imports_and_configures_aws_without_boto3() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_BOTO3], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert (
        "LAUNCH: sky.AWS needs boto3, which is not installed here: install boto3 (`uv sync --extra aws`"
        in (result.stdout)
    )


def test_the_hiding_works() -> None:
    # The check above must be able to fail: with boto3 hidden, importing it fails.
    probe = WITHOUT_BOTO3.split("import skyward as sky")[0] + "import boto3\n"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0 and "No module named 'boto3'" in result.stderr
