"""Where nodes come from. Each provider turns a `ClusterSpec` + `Image` into running node agents."""

from skyward.providers.base import Deployment, NodeInfo, Provider, StartedNode
from skyward.providers.local import Local

__all__ = ["Deployment", "Local", "NodeInfo", "Provider", "StartedNode"]
