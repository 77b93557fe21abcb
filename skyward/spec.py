"""Frozen specifications of a pool's nodes: their slots, how they run them, and what machine each needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from skyward.volumes.spec import S3Volume

ExecutorKind = Literal["thread", "process"]
Allocation = Literal["spot-if-available", "always-spot", "on-demand"]
ALLOCATIONS: tuple[str, ...] = ("spot-if-available", "always-spot", "on-demand")
DEFAULT_ALLOCATION = "spot-if-available"


@dataclass(frozen=True, slots=True)
class Worker:
    """How each node runs tasks.

    Attributes:
        concurrency: slots per node: how many tasks one node runs at the same time.
        executor: ``"thread"`` runs tasks in threads of the worker process (cheap, shares memory; best for I/O
            and for code that releases the GIL, like numpy and scikit-learn); ``"process"`` runs each slot in a
            process of its own (pure-Python CPU work).
    """

    concurrency: int = 1
    executor: ExecutorKind = "thread"

    def __post_init__(self) -> None:
        if (
            not isinstance(self.concurrency, int)
            or isinstance(self.concurrency, bool)
            or self.concurrency < 1
        ):
            raise ValueError(f"Worker.concurrency must be a positive int, got {self.concurrency!r}")
        if self.executor not in ("thread", "process"):
            raise ValueError(f"Worker.executor must be 'thread' or 'process', got {self.executor!r}")


@dataclass(frozen=True, slots=True)
class Resources:
    """What each node's machine must have: asked of the pool, honoured by providers that choose machines.

    Every field ``None`` means "the provider's default". A provider honours the parameters named in its
    ``resource_parameters`` attribute (`sky.AWS` honours them all; Local and SSH none): `check_honoured`
    refuses the others with a clear error rather than ignoring them.

    Attributes:
        cpu: at least this many vCPUs.
        memory: at least this much memory, e.g. ``"16GB"`` (GB and GiB both mean 2**30 bytes here).
        accelerator: an accelerator and optional count, e.g. ``"T4"``, ``"A100:8"``.
        machine: a machine type by name (e.g. ``"m5.xlarge"``) instead of one chosen from the above.
        allocation: ``"spot-if-available"`` (spot capacity where there is some, else on-demand),
            ``"always-spot"`` or ``"on-demand"``; ``None`` is ``"spot-if-available"``.
    """

    cpu: int | None = None
    memory: str | None = None
    accelerator: str | None = None
    machine: str | None = None
    allocation: str | None = None

    def requested(self) -> dict[str, object]:
        """The parameters that ask something of a machine, by name. ``"spot-if-available"`` asks nothing:
        every provider satisfies it (where there is no spot market, nodes are simply not spot)."""
        given = {name: getattr(self, name) for name in self.__slots__ if getattr(self, name) is not None}
        if given.get("allocation") == DEFAULT_ALLOCATION:
            del given["allocation"]
        return given

    def validate(self) -> None:
        """Raise `ValueError` for values no provider could take (the provider checks what it can honour)."""
        cpu = self.cpu
        if cpu is not None and (not isinstance(cpu, int) or isinstance(cpu, bool) or cpu < 1):
            raise ValueError(f"cpu must be a positive int (vCPUs), got {cpu!r}")
        memory = self.memory
        if memory is not None and (isinstance(memory, bool) or not isinstance(memory, str | int | float)):
            raise ValueError(f"memory must be a size like '16GB', got {memory!r}")
        for name in ("accelerator", "machine"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        if self.allocation is not None and self.allocation not in ALLOCATIONS:
            choices = ", ".join(map(repr, ALLOCATIONS))
            raise ValueError(f"allocation must be one of {choices}, got {self.allocation!r}")


def resource_spellings(
    owner: str,
    cpu: int | None,
    memory: str | None,
    vcpus: int | None = None,
    memory_gb: float | None = None,
) -> tuple[int | None, str | None]:
    """``(cpu, memory)`` from either spelling: ``vcpus=`` is ``cpu=``, ``memory_gb=16`` is ``memory="16GB"``.

    The older docs wrote ``vcpus`` and ``memory_gb``; both keep working. Giving both spellings of one parameter
    is a `ValueError` (which one was meant cannot be known).
    """
    if vcpus is not None:
        if cpu is not None:
            raise ValueError(
                f"{owner}(cpu={cpu!r}, vcpus={vcpus!r}): vcpus is another name for cpu; give one"
            )
        cpu = vcpus
    if memory_gb is not None:
        if memory is not None:
            raise ValueError(
                f"{owner}(memory={memory!r}, memory_gb={memory_gb!r}): memory_gb=N is memory='NGB'; give one"
            )
        if isinstance(memory_gb, bool) or not isinstance(memory_gb, int | float) or not memory_gb > 0:
            raise ValueError(f"memory_gb must be a positive number of GB, got {memory_gb!r}")
        memory = f"{memory_gb:g}GB"
    return cpu, memory


# Why a provider that does not choose machines cannot honour resource parameters, by provider name.
_CANNOT_CHOOSE: Mapping[str, str] = {
    "local": (
        "Local nodes are worker processes on this machine: they have its CPUs, memory and accelerators, "
        "and there is no instance type or spot market to choose"
    ),
    "ssh": (
        "SSH nodes are the hosts you listed: they have those machines' CPUs, memory and accelerators, "
        "and there is no instance type or spot market to choose"
    ),
}


def check_honoured(owner: str, provider: object, resources: Resources) -> None:
    """Raise `ValueError` naming every requested resource parameter that `provider` cannot honour.

    A provider honours the names in its ``resource_parameters`` attribute (none without that attribute).
    `owner` names the caller in the message (``"ComputePool"``, ``"JoblibPool"``).
    """
    honoured = frozenset(getattr(provider, "resource_parameters", ()))
    refused = {name: value for name, value in resources.requested().items() if name not in honoured}
    if not refused:
        return
    name = str(getattr(provider, "name", type(provider).__name__))
    why = _CANNOT_CHOOSE.get(name, f"the {name!r} provider does not choose machines")
    settings = ", ".join(f"{key}={value!r}" for key, value in refused.items())
    raise ValueError(
        f"{owner}({settings}) cannot be honoured: {why}. Remove them, or use a provider that chooses "
        "machines (sky.AWS)."
    )


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """What a pool asks its provider for; plugins receive it in their hooks.

    Attributes:
        pool_id: unique id of the pool, used in node names and cloud tags.
        nodes: how many nodes.
        worker: slots per node and how they run.
        provider: the provider's name (``"local"``, ``"ssh"``, ``"aws"``).
        resources: what each node's machine must have (`Resources`), for providers that choose machines.
        volumes: the `sky.S3Volume` each node mounts before its first task (the agent mounts them; providers
            pass them on in the agent configuration).
    """

    pool_id: str
    nodes: int
    worker: Worker
    provider: str
    resources: Resources = field(default_factory=Resources)
    volumes: tuple[S3Volume, ...] = ()
