"""Reaching a pool's instances: who may connect (the client's address), whether sshd answers, and which host
keys to trust.

Host keys come from the instance's console output, where cloud-init prints them between ``-----BEGIN SSH HOST
KEY KEYS-----`` and ``-----END SSH HOST KEY KEYS-----`` at first boot. Only this account can read that output,
so the keys there are the instance's own. Where they never appear, the documented fallback of
``AWS(host_keys="console-or-first-use")`` is to pin the key the instance presents at the first connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import urllib.request

from skyward.errors import ProvisionError

# Answers with the caller's public IPv4 address; run by AWS.
CHECKIP_URL = "https://checkip.amazonaws.com"

_KEYS_BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
_KEYS_END = "-----END SSH HOST KEY KEYS-----"
_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
    }
)


def normalise_cidr(text: str) -> str:
    """``"203.0.113.7"`` -> ``"203.0.113.7/32"``; a CIDR stays itself (host bits cleared)."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ValueError(
            f"ssh_cidr must be an address or a CIDR like '203.0.113.7/32', got {text!r}"
        ) from None


def client_cidr(ssh_cidr: str | None, *, timeout: float = 5.0) -> str:
    """The CIDR that the security group lets SSH in from: `ssh_cidr`, else this machine's public address.

    The public address is what ``CHECKIP_URL`` sees; where it cannot be reached (no internet, a proxy that
    refuses) the error asks for ``ssh_cidr``, which is also the answer behind NAT pools with several exits.
    """
    if ssh_cidr is not None:
        return normalise_cidr(ssh_cidr)
    try:
        with urllib.request.urlopen(CHECKIP_URL, timeout=timeout) as response:
            answer = response.read(64).decode("ascii", "replace").strip()
        address = ipaddress.ip_address(answer)
    except (OSError, ValueError) as exc:
        raise ProvisionError(
            f"cannot find this machine's public address (asked {CHECKIP_URL}: {exc}), which the security group "
            "must let SSH in from. Pass sky.AWS(ssh_cidr='<your address>/32') with the address your instances "
            "will see connections from."
        ) from None
    return f"{address}/{address.max_prefixlen}"


async def ssh_answers(host: str, port: int, timeout: float) -> bool:
    """Whether an SSH server answers at host:port: it accepts a connection and sends its ``SSH-`` banner."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            banner = await reader.readline()
        return banner.startswith(b"SSH-")
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def presented_host_key(host: str, port: int, timeout: float) -> str | None:
    """The host key the server at host:port presents (``"<type> <base64>"``), or ``None`` if none came."""
    import asyncssh

    try:
        async with asyncio.timeout(timeout):
            key = await asyncssh.get_server_host_key(host, port)
    except (OSError, TimeoutError, asyncssh.Error):
        return None
    if key is None:
        return None
    key_type, blob = key.export_public_key("openssh").decode().split()[:2]
    return f"{key_type} {blob}"


def host_keys_from_console(output: str) -> list[str]:
    """The host keys (``"<type> <base64>"``) cloud-init printed to the console, from its last such block.

    Kernel messages may interleave with the block, so only lines that hold a well-formed key count.
    """
    end = output.rfind(_KEYS_END)
    begin = output.rfind(_KEYS_BEGIN, 0, end if end >= 0 else None)
    if begin < 0 or end < 0:
        return []
    keys = []
    for line in output[begin + len(_KEYS_BEGIN) : end].splitlines():
        fields = line.replace("\r", "").split()
        for i, word in enumerate(fields[:-1]):  # the key may follow a prefix such as "ec2:" or a timestamp
            if word in _KEY_TYPES and _well_formed(word, fields[i + 1]):
                keys.append(f"{word} {fields[i + 1]}")
                break
    return keys


def _well_formed(key_type: str, blob: str) -> bool:
    """Whether `blob` is base64 of an SSH public key of `key_type` (it starts with its own type name)."""
    try:
        raw = base64.b64decode(blob, validate=True)
    except ValueError:
        return False
    name = key_type.encode()
    return raw[:4] == len(name).to_bytes(4, "big") and raw[4 : 4 + len(name)] == name


def known_hosts_lines(host: str, port: int, keys: list[str]) -> list[str]:
    """``known_hosts`` lines that trust `keys` for host:port (``[host]:port`` unless the port is 22)."""
    where = host if port == 22 else f"[{host}]:{port}"
    return [f"{where} {key}" for key in keys]


def ssh_host(user: str, host: str, port: int) -> str:
    """``user@host:port`` as `sky.SSH` takes it (an IPv6 address in brackets)."""
    address = f"[{host}]" if ":" in host else host
    return f"{user}@{address}:{port}"
