"""skyward: run the Python you already write (joblib, scikit-learn, plain functions) on many machines.

    import skyward as sky

    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=4), plugins=[sky.plugins.joblib()]):
        results = Parallel(n_jobs=-1)(delayed(task)(i) for i in range(1000))
"""

from skyward import plugins
from skyward.blobs import writable
from skyward.compute import PendingCall, PendingGroup, compute, gather
from skyward.errors import (
    NoActivePool,
    NodeLost,
    PayloadTooLarge,
    ProvisionError,
    RemoteError,
    SkywardError,
    WorkerCrashed,
)
from skyward.hooks import hookimpl, hookspec
from skyward.image import Image
from skyward.pool import Compute, ComputePool, current_pool
from skyward.providers import AWS, SSH, Local, NodeInfo
from skyward.spec import ClusterSpec, Resources, Worker

__version__ = "0.1.0"

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
    "SkywardError",
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
