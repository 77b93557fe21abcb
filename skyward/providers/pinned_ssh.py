"""The `sky.SSH` provider for machines a cloud provider has just started, with their host keys pinned.

AWS, Verda and VastAI each rent machines, learn (or pin at first use) their host keys, then hand them to
`sky.SSH` to bootstrap and start the nodes exactly as on any host. This is that hand-over, written once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from skyward.providers.aws.reach import known_hosts_lines, ssh_host
from skyward.providers.rented.keys import write_private
from skyward.providers.ssh import SSH


def pinned_ssh(
    user: str,
    machines: Iterable[tuple[str, int, list[str]]],
    *,
    key_file: Path,
    workdir: Path,
    ssh_options: Mapping[str, Any],
    quiet: bool,
    progress: Any,
    python: str | None,
) -> SSH:
    """A `sky.SSH` for `machines` (host, port, host keys), logging in as `user` with `key_file`, that trusts
    those keys only: they are written to ``workdir/known_hosts`` (a private directory; the file 0600)."""
    machines = list(machines)
    known_hosts = workdir / "known_hosts"
    write_private(
        known_hosts,
        "".join(f"{line}\n" for host, port, keys in machines for line in known_hosts_lines(host, port, keys)),
    )
    options: dict[str, Any] = {**ssh_options, "quiet": quiet, "progress": progress}
    if python is not None:
        options["python"] = python
    return SSH(
        hosts=[ssh_host(user, host, port) for host, port, _ in machines],
        key_file=str(key_file),
        known_hosts=str(known_hosts),
        verify_host_keys=True,
        **options,
    )
