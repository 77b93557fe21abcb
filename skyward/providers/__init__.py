"""Where nodes come from. Each provider turns a `ClusterSpec` + `Image` into running node agents."""

from skyward.providers.base import Deployment, NodeInfo, Provider, StartedNode
from skyward.providers.local import Local
from skyward.providers.ssh import SSH

__all__ = ["SSH", "Deployment", "Local", "NodeInfo", "Provider", "StartedNode"]
