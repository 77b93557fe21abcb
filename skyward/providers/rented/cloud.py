"""The seam between `RentedDeployment` and one cloud's API: what each adapter (Verda, VastAI) does."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from skyward.bootstrap.progress import ProgressCallback

Say = Callable[[str], None]


@dataclass(frozen=True)
class MachineState:
    """One instance as the cloud describes it now.

    Attributes:
        id: the cloud's id of the instance.
        status: ``"pending"`` (ordered, booting), ``"running"`` or ``"gone"`` (failed, deleted, stopped: it
            will not become usable).
        host, port: where its sshd is reached, once the cloud says.
        detail: the cloud's own words for its state (for messages).
    """

    id: str
    status: Literal["pending", "running", "gone"]
    host: str | None = None
    port: int = 22
    detail: str = ""


class MachineCloud(Protocol):
    """One pool's dealings with a cloud. Every method may raise; `forget` and `delete` must be safe to call
    when nothing (or only part) was created."""

    label: str  # "verda", "vastai": for messages

    def describe_plan(self, nodes: int) -> str:
        """What will be launched, for the progress line (``"2 x CPU.4V.16G in FIN-01 at $0.12/h each"``)."""
        ...

    def prepare(self, pool_id: str, public_key: str) -> None:
        """Register the pool's SSH key (and whatever else its instances need) with the account."""
        ...

    def launch(self, nodes: int, pool_id: str, record: Callable[[str], None], say: Say) -> None:
        """Create `nodes` instances, calling `record(id)` as soon as each one exists."""
        ...

    def describe(self, ids: Sequence[str]) -> list[MachineState]:
        """The state of each of `ids`, in that order."""
        ...

    def pool_instances(self, pool_id: str) -> list[str]:
        """Ids of the instances of the pool that still exist (a launch interrupted between the cloud creating
        one and `record` hearing of it leaves one that only the cloud knows)."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Delete these instances (and their disks)."""
        ...

    def forget(self) -> None:
        """Delete what `prepare` registered."""
        ...


class RentedSettings(Protocol):
    """The settings of a provider that rents machines, read by `RentedDeployment`."""

    @property
    def user(self) -> str: ...
    @property
    def python(self) -> str | None: ...
    @property
    def ssh_timeout(self) -> float: ...
    @property
    def quiet(self) -> bool: ...
    @property
    def progress(self) -> ProgressCallback | None: ...
    @property
    def ssh_options(self) -> Mapping[str, Any]: ...
