"""The software environment of a node."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Image:
    """What each node has installed before the first task runs.

    Plugins extend it through the ``image_transform`` hook (``dataclasses.replace`` or `Image.with_pip`).

    Attributes:
        python: the Python version for the nodes (``"3.12"``); ``None`` means the client's.
        pip: pip requirement strings (``"numpy>=2"``).
        apt: Debian packages (remote providers only).
        env: environment variables set for the worker.
    """

    python: str | None = None
    pip: tuple[str, ...] = ()
    apt: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Accept lists from users, store tuples and a read-only mapping so the image stays hashable in spirit.
        for name in ("pip", "apt"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"Image.{name} takes a sequence of strings, not one string: {value!r}")
            object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))

    def __hash__(self) -> int:
        return hash((self.python, self.pip, self.apt, tuple(sorted(self.env.items()))))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Image):
            return NotImplemented
        return (self.python, self.pip, self.apt, dict(self.env)) == (
            other.python,
            other.pip,
            other.apt,
            dict(other.env),
        )

    def with_pip(self, *requirements: str) -> Image:
        """A copy with `requirements` appended to ``pip`` (those already present are not repeated)."""
        merged = self.pip + tuple(r for r in requirements if r not in self.pip)
        return Image(python=self.python, pip=merged, apt=self.apt, env=dict(self.env))
