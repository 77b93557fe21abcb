"""`sky.Slurm(...)`: a pool's nodes as one job on a Slurm cluster.

Example::

    provider = sky.Slurm(partition="cpu", time="2:00:00")
    with sky.ComputePool(provider=provider, nodes=8, cpu=16, memory="32GB") as pool:
        ...

Modules: `provider` (the configuration and `launch`), `allocation` (the job: ``salloc``, its state,
``scancel``), `deployment` (one ``srun`` step per node), `node_launch` (what that step runs on the node),
`shell` (where the Slurm commands run).
"""

from skyward.providers.slurm.deployment import SlurmDeployment
from skyward.providers.slurm.provider import Slurm

__all__ = ["Slurm", "SlurmDeployment"]
