"""Who may talk to whom: a pool's TLS certificates, derived from its secret on the client.

Every client-node connection is mutual TLS (see `skyward.transport`). From the pool's 32-byte secret, which never
leaves the client, come deterministically (so a relaunched node gets the same identity):

- the client's key and certificate, signed by a *client CA* that signs nothing else;
- for each node, a CA of its own and the node's key and certificate, signed by it.

A node is handed its own key and certificate and the client CA's certificate (public): it accepts connections
only from the client. The client's link to node *i* trusts only node *i*'s CA, so a process that took over a dead
node's port cannot pass for it, and neither can another node of the pool. A node never holds what would let it
pose as the client or as another node.

The certificates are made on the client (`skyward.certificates`, which needs `cryptography`); a node only reads
its PEM text from its configuration and hands casty paths to it (`KeyFiles`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TLSMaterial:
    """PEM text of one side's certificate and private key, and of the CA it verifies its peer against."""

    cert: str
    key: str = field(repr=False)
    ca: str


def node_material(secret: bytes, node_name: str) -> TLSMaterial:
    """What node `node_name` presents (its own certificate) and verifies the client against (the client CA)."""
    from skyward import certificates  # client side only: nodes need not import `cryptography`

    cert, key = certificates.node_leaf(secret, node_name)
    return TLSMaterial(cert, key, certificates.client_ca(secret))


def client_material(secret: bytes, node_name: str) -> TLSMaterial:
    """What the client presents on its link to `node_name`, and the one CA it accepts that node's certificate from."""
    from skyward import certificates

    cert, key = certificates.client_leaf(secret)
    return TLSMaterial(cert, key, certificates.node_ca(secret, node_name))


class KeyFiles:
    """Paths to `material` for casty, which reads certificates and keys from paths that no other account can open.

    On Linux the PEM text lives in anonymous memory files (``memfd``), reached as ``/proc/self/fd/N``: nothing on
    disk, and ``/proc/<pid>/fd`` is closed to other accounts. Elsewhere, files in a fresh 0700 directory, removed
    on `close`. Kept open while the system or client that read them runs (casty may read them again to reconnect).
    """

    def __init__(self, material: TLSMaterial) -> None:
        self._fds: list[int] = []
        self._dir: str | None = None
        self.cert = self._path("cert", material.cert)
        self.key = self._path("key", material.key)
        self.ca = self._path("ca", material.ca)

    def _path(self, name: str, text: str) -> str:
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create(f"skyward-{name}", os.MFD_CLOEXEC)
            self._fds.append(fd)
            os.write(fd, text.encode())
            return f"/proc/self/fd/{fd}"
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="skyward-tls-")  # mode 0700
        path = os.path.join(self._dir, name + ".pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
