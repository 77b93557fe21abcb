"""The built-in plugin that puts a pool's volumes into its nodes' image (a default plugin, as code shipping is).

Providers do nothing of their own for volumes: the image asks for s3fs (installed by the bootstrap like any
``Image.apt`` entry; `sky.Local` checks it is installed here), and the agent configuration each provider
already writes to the agent's stdin carries the volumes (`skyward.volumes.client.agent_entries`), which the
agent mounts before it announces itself (`skyward.volumes.mount`).
"""

from __future__ import annotations

from dataclasses import replace

from skyward.hooks import hookimpl
from skyward.image import Image
from skyward.spec import ClusterSpec
from skyward.volumes.client import require_client_credentials

#: The Debian package that provides the mount (s3fs-fuse, which depends on fuse3).
S3FS_PACKAGE = "s3fs"


class Volumes:
    """Adds s3fs to the image of a pool with volumes, after checking this client has what they need."""

    @hookimpl
    def image_transform(self, image: Image, cluster: ClusterSpec) -> Image | None:
        if not cluster.volumes:
            return None
        require_client_credentials(cluster.volumes)  # at pool entry, before any node starts
        if S3FS_PACKAGE in image.apt:
            return None
        return replace(image, apt=(*image.apt, S3FS_PACKAGE))
