"""Where nodes come from. Each provider turns a `ClusterSpec` + `Image` into running node agents."""

from skyward.providers.aws import AWS
from skyward.providers.base import Deployment, NodeInfo, Provider, StartedNode
from skyward.providers.local import Local
from skyward.providers.ssh import SSH

__all__ = ["AWS", "SSH", "Deployment", "Local", "NodeInfo", "Provider", "StartedNode"]
