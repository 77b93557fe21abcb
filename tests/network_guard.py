"""A guard for provider tests: every TCP connection to an address outside this machine fails at once, and is
recorded. Loopback and the sshd lab's veth links (10.231.0.0/16) are this machine."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

# The lab's isolated hosts live on veth links in 10.231.0.0/16; loopback is this machine.
_LOCAL_NETWORKS = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128", "10.231.0.0/16")]


# --- no connection leaves this machine ----------------------------------------------------------------------


@dataclass
class NetworkGuard:
    """Refuses (OSError) every TCP connection to an address outside this machine, and records it."""

    blocked: list[tuple[str, int]] = field(default_factory=list)

    def check(self, address: object) -> None:
        if not isinstance(address, tuple):
            return  # a Unix socket
        host = str(address[0])
        try:
            ip = ipaddress.ip_address(host.split("%")[0])
        except ValueError:  # a name: only localhost may be used by name here
            if host == "localhost":
                return
            self.blocked.append((host, int(address[1])))
            raise OSError(f"test network guard: no connections to {host}") from None
        if any(ip in network for network in _LOCAL_NETWORKS):
            return
        self.blocked.append((host, int(address[1])))
        raise OSError(f"test network guard: no connections to {host}:{address[1]}")


@contextlib.contextmanager
def guarded_network() -> Iterator[NetworkGuard]:
    """While active, connections to other machines fail at once (and are recorded): nothing leaves."""
    guard = NetworkGuard()
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(sock: socket.socket, address: Any) -> None:
        guard.check(address)
        return real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        guard.check(address)
        return real_connect_ex(sock, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        yield guard
