"""Sending wheels to a node over SFTP, into its content-addressed store ``<root>/wheels/<sha256>/<file>``.

Uploads are private from creation and atomic (written aside, then renamed), so hosts sharing one home can
upload the same wheel at once, and another account on the node cannot swap one before it is installed.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING

from skyward.bootstrap.wheel_cache import Wheel

if TYPE_CHECKING:
    import asyncssh


def remote_wheel(root: str, wheel: Wheel) -> str:
    """Where `wheel` lies on a node whose skyward root is `root`, once uploaded."""
    return f"{root}/wheels/{wheel.sha256}/{wheel.filename}"


async def upload_wheels(
    conn: asyncssh.SSHClientConnection, root: str, wheels: list[Wheel]
) -> tuple[int, int]:
    """Send the wheels the node does not have yet to ``<root>/wheels/<sha256>/``; returns (count, bytes)."""
    import asyncssh

    sent = size = 0
    if not wheels:
        return sent, size
    async with conn.start_sftp_client() as sftp:
        for wheel in {w.sha256: w for w in wheels}.values():
            folder = f"{root}/wheels/{wheel.sha256}"
            final = f"{folder}/{wheel.filename}"
            if await sftp.exists(final):
                continue
            # Private from creation (0700 folders, 0600 files): another account on the node must not swap a
            # wheel between its upload and its install (the node also checks each wheel's SHA-256).
            await sftp.makedirs(folder, attrs=asyncssh.SFTPAttrs(permissions=0o700), exist_ok=True)
            # A host sharing this home may upload the same file now: write aside, then rename atomically.
            partial = f"{folder}/.{wheel.filename}.{secrets.token_hex(4)}.part"
            await _put_private(sftp, wheel, partial)
            try:
                await sftp.posix_rename(partial, final)
            except asyncssh.SFTPOpUnsupported:  # a server without OpenSSH's extension
                try:
                    await sftp.rename(partial, final)
                except asyncssh.SFTPError:
                    if not await sftp.exists(final):
                        raise
                    await sftp.remove(partial)  # another host got there first, with the same bytes
            sent += 1
            size += wheel.path.stat().st_size
    return sent, size


async def _put_private(sftp: asyncssh.SFTPClient, wheel: Wheel, remote: str) -> None:
    """Upload `wheel` to `remote`, created with mode 0600 (``put`` would copy the local file's mode)."""
    import asyncssh

    attrs = asyncssh.SFTPAttrs(permissions=0o600)
    source = await asyncio.to_thread(open, wheel.path, "rb")
    try:
        async with sftp.open(remote, "wb", attrs=attrs, encoding=None) as out:
            while block := await asyncio.to_thread(source.read, 4 << 20):
                await out.write(block)
    finally:
        source.close()
