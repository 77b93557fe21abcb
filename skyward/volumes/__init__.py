"""Volumes: an object-store prefix that appears as a directory on every node (``volume=[sky.S3Volume(...)]``).

- `skyward.volumes.spec`: `S3Volume` and the checks of a pool's volumes;
- `skyward.volumes.plugin`: the default plugin that adds s3fs to the node image;
- `skyward.volumes.client`: what the agent configuration carries (credentials included);
- `skyward.volumes.mount`: the node's side, the s3fs mounts in the worker's own mount namespace;
- `skyward.volumes.sudo`: the same for a login that is not root, through passwordless sudo (mount as root, then
  serve as the login).
"""

from __future__ import annotations

from skyward.volumes.client import VolumeError, agent_entries
from skyward.volumes.spec import S3Volume, check_volumes

__all__ = ["S3Volume", "VolumeError", "agent_entries", "check_volumes"]
