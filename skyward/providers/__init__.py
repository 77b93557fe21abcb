"""Where nodes come from. Each provider turns a `ClusterSpec` + `Image` into running node agents.

Provider classes are imported on first use, so that naming one does not load another's SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from skyward.providers.base import Deployment, NodeInfo, Provider, StartedNode

if TYPE_CHECKING:
    from skyward.providers.aws import AWS, AWSDeployment
    from skyward.providers.local import Local, LocalDeployment
    from skyward.providers.rented.deployment import RentedDeployment
    from skyward.providers.slurm import Slurm, SlurmDeployment
    from skyward.providers.ssh import SSH, SSHDeployment
    from skyward.providers.vastai import VastAI
    from skyward.providers.verda import Verda

    def _conforms(
        providers: tuple[Local, SSH, AWS, Slurm, Verda, VastAI],
        deployments: tuple[LocalDeployment, SSHDeployment, AWSDeployment, SlurmDeployment, RentedDeployment],
    ) -> tuple[list[Provider], list[Deployment]]:
        """Checked by mypy, never run: each built-in provider and deployment satisfies its protocol."""
        return list(providers), list(deployments)


_LAZY = {
    "AWS": "skyward.providers.aws",
    "SSH": "skyward.providers.ssh",
    "Local": "skyward.providers.local",
    "Slurm": "skyward.providers.slurm",
    "Verda": "skyward.providers.verda",
    "VastAI": "skyward.providers.vastai",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'skyward.providers' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "AWS",
    "SSH",
    "Deployment",
    "Local",
    "NodeInfo",
    "Provider",
    "Slurm",
    "StartedNode",
    "VastAI",
    "Verda",
]
