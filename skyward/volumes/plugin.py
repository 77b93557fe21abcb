"""The built-in plugin that puts a pool's volumes into its nodes' image (a default plugin, as code shipping is).

Providers do nothing of their own for volumes: the image asks for s3fs (and boto3, for nodes that copy) (installed by the bootstrap like any
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
#: What a node copies with when it cannot mount (`skyward.volumes.copy`): as the ``aws`` extra asks.
BOTO3_REQUIREMENT = "boto3>=1.34"


class Volumes:
    """Adds s3fs and boto3 to the image of a pool with volumes, after checking this client has what they need."""

    @hookimpl
    def image_transform(self, image: Image, cluster: ClusterSpec) -> Image | None:
        if not cluster.volumes:
            return None
        require_client_credentials(cluster.volumes)  # at pool entry, before any node starts
        modes = {volume.mode for volume in cluster.volumes}
        if modes & {"auto", "copy"}:  # a node that cannot mount copies with boto3
            image = image.with_pip(BOTO3_REQUIREMENT)
        if modes & {"auto", "mount"} and S3FS_PACKAGE not in image.apt:
            image = replace(image, apt=(*image.apt, S3FS_PACKAGE))
        return image
