"""A pool's own SSH key: made on the client for one pool, registered with the cloud, deleted at teardown."""

from __future__ import annotations

import os
from pathlib import Path


def new_key(path: Path, comment: str) -> str:
    """Write a fresh ed25519 private key to `path` (mode 0600); returns its public key in OpenSSH format."""
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(key.export_private_key("openssh"))
    return key.export_public_key("openssh").decode().strip()


def write_private(path: Path, text: str) -> None:
    """Write `text` to a new file at `path`, readable by this user only (0600)."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)
