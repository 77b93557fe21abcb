"""Which mechanism each volume gets on this node: an s3fs-fuse mount where the node can mount, else (with
``mode="auto"`` or ``"copy"``) a read-only copy taken at start (`skyward.volumes.copy`).

FUSE is usable here when ``/dev/fuse`` opens, an s3fs binary runs, and the agent is root or has passwordless
sudo (the mount needs a mount namespace of its own). ``SKYWARD_VOLUMES_NO_FUSE=1`` in the agent's environment
makes it unusable on purpose (tests; nodes where FUSE exists but should not be used).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skyward.volumes.client import VolumeError
from skyward.volumes.spec import S3Volume

NO_FUSE_VARIABLE = "SKYWARD_VOLUMES_NO_FUSE"


@dataclass(frozen=True)
class Planned:
    """A volume of the agent configuration with its credentials and, for a copy, why (``None``: mount it)."""

    volume: S3Volume
    keys: dict[str, str] | None
    copy_reason: str | None


def fuse_unusable_reason() -> str | None:
    """Why this node cannot mount with s3fs-fuse, in a few words, or ``None`` when it can."""
    if os.environ.get(NO_FUSE_VARIABLE, "") not in ("", "0"):
        return f"{NO_FUSE_VARIABLE} is set"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except FileNotFoundError:
        return "/dev/fuse missing"
    except OSError as exc:
        return f"/dev/fuse cannot be opened: {exc.strerror}"
    s3fs = shutil.which("s3fs")
    if s3fs is None:
        return "no s3fs"
    if subprocess.run([s3fs, "--version"], capture_output=True, check=False).returncode != 0:
        return "s3fs does not run"
    if os.geteuid() != 0 and not _passwordless_sudo():
        return "not root and no passwordless sudo"
    return None


def _passwordless_sudo() -> bool:
    if shutil.which("sudo") is None:
        return False
    check = subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False, stdin=subprocess.DEVNULL)
    return check.returncode == 0


def plan(volumes: Sequence[tuple[S3Volume, dict[str, str] | None]]) -> list[Planned]:
    """Each volume's mechanism on this node; `VolumeError` for a writable volume that would have to be copied
    (a copy does not upload: writes would be lost)."""
    reason = fuse_unusable_reason() if any(v.mode == "auto" for v, _ in volumes) else None
    planned = []
    for volume, keys in volumes:
        if volume.mode == "copy":
            planned.append(Planned(volume, keys, "mode='copy'"))
        elif volume.mode == "auto" and reason is not None:
            if not volume.read_only:
                raise VolumeError(
                    f"cannot mount {volume.source} at {volume.mount_path} writable: this node has no usable "
                    f"FUSE ({reason}), and the read-only copy used instead would not upload what tasks write. "
                    "Give the node /dev/fuse and s3fs (a container: --device /dev/fuse --cap-add SYS_ADMIN), "
                    "or use read_only=True"
                )
            planned.append(Planned(volume, keys, f"no FUSE here: {reason}"))
        else:
            planned.append(Planned(volume, keys, None))
    return planned


def needs_mount(entries: Sequence[Mapping[str, Any]]) -> bool:
    """Whether some volume of the agent configuration's `entries` will be mounted here (which needs root:
    a non-root agent relays itself through sudo then). ``False`` for entries that cannot be planned: the agent
    then fails on its own with that error (not with sudo's)."""
    from skyward.volumes.mount import parse_entries

    try:
        return any(p.copy_reason is None for p in plan(parse_entries(entries)))
    except VolumeError:
        return False
