"""The `sky.SSH` settings a renting provider passes on (``ssh_options=``), checked at construction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

# sky.SSH settings that a renting provider sets itself: they are not for `ssh_options`.
OWN_SSH_SETTINGS = frozenset(
    {"hosts", "key_file", "known_hosts", "verify_host_keys", "python", "quiet", "progress"}
)


def check_ssh_options(owner: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` as a dict, or `ValueError` naming those that are not `sky.SSH` settings left to the user."""
    from skyward.providers.ssh import SSH

    known = {f.name for f in fields(SSH) if f.init} - OWN_SSH_SETTINGS
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(
            f"{owner}(ssh_options=...) does not take {', '.join(unknown)}; it takes {', '.join(sorted(known))}"
        )
    return dict(options)
