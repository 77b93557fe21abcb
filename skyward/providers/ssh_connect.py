"""Opening SSH connections to nodes: host specs, the host key policy, and errors that say what went wrong."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from skyward.errors import ProvisionError

if TYPE_CHECKING:
    import asyncssh

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


@dataclass(frozen=True)
class HostSpec:
    """One entry of ``SSH(hosts=...)``: ``[user@]host[:port]`` (IPv6 as ``[addr]:port``)."""

    text: str
    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> HostSpec:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"an SSH host must be a non-empty string like 'user@host:22', got {text!r}")
        rest = text.strip()
        user, at, host_port = rest.rpartition("@")
        if not at:
            user, host_port = "", rest
        port: str | None = None
        if host_port.startswith("["):
            host, bracket, tail = host_port[1:].partition("]")
            if not bracket or (tail and not tail.startswith(":")):
                raise ValueError(f"cannot read SSH host {text!r}: expected [address]:port")
            port = tail[1:] or None
        elif host_port.count(":") == 1:
            host, _, port = host_port.partition(":")
        else:
            host = host_port  # a bare IPv6 address, or a name without port
        if not host:
            raise ValueError(f"cannot read SSH host {text!r}: no host name")
        if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"cannot read SSH host {text!r}: port {port!r} is not a number in 1-65535")
        return cls(text=text, host=host, user=user or None, port=int(port) if port else None)


def _known_hosts_option(known_hosts: str | None, verify_host_keys: bool) -> object:
    import asyncssh

    if not verify_host_keys:
        return None  # asyncssh: no verification (the documented opt-out)
    path = os.path.expanduser(known_hosts or DEFAULT_KNOWN_HOSTS)
    if not os.path.exists(path):
        return asyncssh.import_known_hosts("")  # no file: no host is trusted, so every key is refused
    return path


async def connect(
    target: HostSpec,
    *,
    key_file: str | None = None,
    known_hosts: str | None = None,
    verify_host_keys: bool = True,
    timeout: float = 15.0,
    forward_agent: bool = False,
) -> asyncssh.SSHClientConnection:
    """Open an SSH connection to `target`, turning every failure into a `ProvisionError` that says why.

    `known_hosts` ``None`` is ``~/.ssh/known_hosts``; a missing file trusts no host. `key_file` ``None`` leaves
    the choice of keys to asyncssh (the SSH agent, then ``~/.ssh/id_*``). `timeout` covers TCP, key exchange
    and login. The SSH agent is forwarded only if `forward_agent`, whatever ``ForwardAgent`` in
    ``~/.ssh/config`` says: a forwarded agent lets anyone with root (or the login) on the node use its keys.
    """
    import asyncssh

    options: dict[str, object] = {
        "known_hosts": _known_hosts_option(known_hosts, verify_host_keys),
        "connect_timeout": timeout,
        # A node that vanishes (power, network) is noticed within ~30 s even when no task is running.
        "keepalive_interval": 10,
        "keepalive_count_max": 3,
        # Explicit, so that ~/.ssh/config's ForwardAgent (which asyncssh honours) does not decide it.
        "agent_forwarding": forward_agent,
    }
    if target.user:
        options["username"] = target.user
    if target.port:
        options["port"] = target.port
    if key_file:
        options["client_keys"] = [os.path.expanduser(key_file)]
    where = target.text
    try:
        return await asyncssh.connect(target.host, **options)
    except asyncssh.HostKeyNotVerifiable as exc:
        known = os.path.expanduser(known_hosts or DEFAULT_KNOWN_HOSTS)
        port = f"-p {target.port} " if target.port else ""
        raise ProvisionError(
            f"{where}: refusing to connect: its host key is not trusted ({exc.reason}). Known hosts file: {known}. "
            f"Check the key's fingerprint with the machine's owner, then add it (e.g. `ssh-keyscan {port}"
            f"{target.host} >> {known}`), or pass SSH(known_hosts=...) pointing at a file that has it. "
            "SSH(verify_host_keys=False) skips this check, insecurely."
        ) from None
    except asyncssh.PermissionDenied as exc:
        user = target.user or getpass.getuser()
        keys = key_file or "the SSH agent and ~/.ssh/id_*"
        raise ProvisionError(
            f"{where}: authentication failed for user {user!r} ({exc.reason}); keys tried: {keys}. "
            "Check the user name and SSH(key_file=...)."
        ) from None
    except TimeoutError:
        raise ProvisionError(
            f"{where}: no SSH answer within {timeout:.0f}s (host down, firewalled, or not an SSH "
            "server); see SSH(connect_timeout=...)"
        ) from None
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)  # asyncio's text hides "refused" & co.
        raise ProvisionError(f"{where}: cannot connect: {reason}") from None
    except asyncssh.Error as exc:
        raise ProvisionError(f"{where}: SSH connection failed: {exc.reason}") from None
