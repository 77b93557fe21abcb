"""skyward: run the Python you already write (joblib, scikit-learn, plain functions) on many machines.

    import skyward as sky

    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=4), plugins=[sky.plugins.joblib()]):
        results = Parallel(n_jobs=-1)(delayed(task)(i) for i in range(1000))

Names are imported when first used (PEP 562 `__getattr__`): `import skyward` stays cheap, and the transport
(casty), SSH (asyncssh), AWS (boto3) and TLS (cryptography) libraries load only when a pool starts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from skyward.errors import (
    NoActivePool,
    NodeLost,
    PayloadTooLarge,
    ProvisionError,
    RemoteError,
    SkywardError,
    WorkerCrashed,
)
from skyward.image import Image
from skyward.spec import ClusterSpec, Resources, Worker

if TYPE_CHECKING:
    from skyward import plugins
    from skyward.blobs import writable
    from skyward.compute import PendingCall, PendingGroup, compute, gather
    from skyward.hooks import hookimpl, hookspec
    from skyward.pool import Compute, ComputePool, current_pool
    from skyward.providers import AWS, SSH, Local, NodeInfo, Slurm, VastAI, Verda
    from skyward.volumes import S3Volume

__version__ = "0.1.0"

#: Public name -> the module that defines it, imported on first access.
_LAZY = {
    "writable": "skyward.blobs",
    "PendingCall": "skyward.compute",
    "PendingGroup": "skyward.compute",
    "compute": "skyward.compute",
    "gather": "skyward.compute",
    "hookimpl": "skyward.hooks",
    "hookspec": "skyward.hooks",
    "Compute": "skyward.pool",
    "ComputePool": "skyward.pool",
    "current_pool": "skyward.pool",
    "AWS": "skyward.providers",
    "SSH": "skyward.providers",
    "Slurm": "skyward.providers",
    "Local": "skyward.providers",
    "NodeInfo": "skyward.providers",
    "S3Volume": "skyward.volumes",
    "Verda": "skyward.providers",
    "VastAI": "skyward.providers",
}


def __getattr__(name: str) -> Any:
    if name == "plugins":
        return importlib.import_module("skyward.plugins")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'skyward' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AWS",
    "SSH",
    "ClusterSpec",
    "Compute",
    "ComputePool",
    "Image",
    "Local",
    "NoActivePool",
    "NodeInfo",
    "NodeLost",
    "PayloadTooLarge",
    "PendingCall",
    "PendingGroup",
    "ProvisionError",
    "RemoteError",
    "Resources",
    "S3Volume",
    "SkywardError",
    "Slurm",
    "VastAI",
    "Verda",
    "Worker",
    "WorkerCrashed",
    "compute",
    "current_pool",
    "gather",
    "hookimpl",
    "hookspec",
    "plugins",
    "writable",
]
