"""boto3, imported lazily: the session and clients of one pool, and AWS errors turned into clear ones.

boto3 is the optional extra ``skyward[aws]``: nothing outside this module imports it at module level, so
``import skyward`` works without it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from skyward.errors import ProvisionError

INSTALL_HINT = (
    "install boto3 (`uv sync --extra aws` in a clone of skyward, or `uv pip install boto3`; "
    "not `pip install skyward[aws]`: that name on PyPI is another project)"
)


class AwsRefused(ProvisionError):
    """AWS answered a call with an error: the call did nothing (unlike a timeout, whose outcome is unknown)."""


@dataclass(frozen=True)
class AwsClients:
    """The clients one pool uses, all of one session and region."""

    region: str
    ec2: Any
    ssm: Any
    pricing: Callable[[], Any] | None = None  # opens the Price List client (us-east-1) when first needed


def open_clients(profile: str | None, region: str | None) -> AwsClients:
    """Clients for `region` (else the profile's or environment's region) with `profile`'s credentials.

    The standard variables apply (``AWS_PROFILE``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``, ...).
    """
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError
    except ImportError:
        raise ProvisionError(f"sky.AWS needs boto3, which is not installed here: {INSTALL_HINT}") from None
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except BotoCoreError as exc:  # e.g. ProfileNotFound
        raise ProvisionError(f"cannot open an AWS session: {exc}") from None
    if not session.region_name:
        raise ProvisionError(
            "no AWS region: pass sky.AWS(region='us-east-1'), or set AWS_DEFAULT_REGION or a region in "
            "~/.aws/config"
        )
    # Standard retries (throttling, transient 5xx) with bounded waits: a pool should fail, not hang.
    config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=60)
    return AwsClients(
        region=session.region_name,
        ec2=session.client("ec2", config=config),
        ssm=session.client("ssm", config=config),
        pricing=lambda: session.client("pricing", region_name="us-east-1", config=config),
    )


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def aws_call(action: str, *, passthrough: Iterable[str] = ()) -> Iterator[None]:
    """Turn AWS failures of `action` into a `ProvisionError` that says what was being done and why it failed.

    ``ClientError``s whose code is in `passthrough` are left to the caller, which handles them.
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    keep = frozenset(passthrough)
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code in keep:
            raise
        hint = _HINTS.get(code, "")
        raise AwsRefused(f"AWS refused {action}: {error_message(exc)}{hint}") from None
    except (NoCredentialsError, PartialCredentialsError):
        raise ProvisionError(
            f"{action}: no AWS credentials found. Configure them (`aws configure`, AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an instance role), or pass sky.AWS(profile=...)"
        ) from None
    except EndpointConnectionError as exc:
        raise ProvisionError(f"{action}: cannot reach AWS: {exc}") from None
    except BotoCoreError as exc:
        raise ProvisionError(f"{action}: {type(exc).__name__}: {exc}") from None


_HINTS = {
    "UnauthorizedOperation": " (the credentials lack this EC2 permission)",
    "AuthFailure": " (check the credentials and the region)",
    "VcpuLimitExceeded": " (the account's vCPU quota for this family; ask AWS for more, or use fewer nodes)",
    "InstanceLimitExceeded": " (the account's instance quota; ask AWS for more, or use fewer nodes)",
    "MaxSpotInstanceCountExceeded": " (the account's spot quota; try allocation='on-demand')",
    "OptInRequired": " (the account must subscribe to this AMI or region first)",
    "Unsupported": " (this instance type is not offered in the chosen subnet's availability zone)",
}
