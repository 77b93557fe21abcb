"""The client's side of volumes: what each node's agent receives, credentials included, on its stdin.

The entries travel inside `skyward.agent_config.AgentConfig` (the line on the agent's stdin, never a command
line nor a file); the agent hands the credentials to its s3fs process in that process's environment only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from skyward.errors import SkywardError
from skyward.volumes.spec import S3Volume


class VolumeError(SkywardError):
    """A volume cannot be set up: missing credentials here, or the node could not mount it."""


def client_credentials() -> dict[str, str] | None:
    """This machine's AWS credentials through boto3's chain (``None`` when boto3 finds none or is missing)."""
    try:
        import boto3
    except ImportError:
        return None
    found = boto3.Session().get_credentials()
    if found is None:
        return None
    frozen = found.get_frozen_credentials()  # refreshable ones (SSO, assumed roles): their value now
    if not frozen.access_key or not frozen.secret_key:
        return None
    entry = {"access_key": frozen.access_key, "secret_key": frozen.secret_key}
    if frozen.token:
        entry["session_token"] = frozen.token
    return entry


def require_client_credentials(volumes: Sequence[S3Volume]) -> None:
    """Raise `VolumeError` at pool entry, before any node starts, when a volume needs credentials this client
    has not got."""
    if any(v.credentials == "client" for v in volumes) and client_credentials() is None:
        sources = [v.source for v in volumes if v.credentials == "client"]
        raise VolumeError(
            f"S3Volume {', '.join(sources)} sends this machine's AWS credentials to the nodes "
            "(credentials='client'), but boto3 finds none here (is boto3 installed? AWS_ACCESS_KEY_ID, "
            "~/.aws/credentials, AWS_PROFILE...). Configure them, or use credentials='instance-profile' (the "
            "nodes' own) or 'anonymous' (a public bucket)."
        )


def client_endpoint() -> str | None:
    """The S3 endpoint boto3 would use here: ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL`` (``None``: AWS)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def agent_entries(volumes: Sequence[S3Volume]) -> tuple[dict[str, Any], ...]:
    """One JSON-ready entry per volume for the agent's configuration line, with the client's credentials where
    the volume asks for them (read once per call: a pool's nodes all get the same)."""
    if not volumes:
        return ()
    credentials = client_credentials() if any(v.credentials == "client" for v in volumes) else None
    entries = []
    for volume in volumes:
        entry = asdict(volume)
        if (
            volume.endpoint_url is None
        ):  # as boto3 here would: the same bucket the user sees from this machine
            entry["endpoint_url"] = client_endpoint()
            S3Volume(**entry)  # the variable's value is checked here, as an endpoint_url= given would be
        if volume.credentials == "client":
            if credentials is None:
                raise VolumeError(
                    f"no AWS credentials on this machine for {volume.source} (credentials='client')"
                )
            entry["keys"] = credentials
        entries.append(entry)
    return tuple(entries)
