"""The software environment of a node."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from packaging.requirements import InvalidRequirement, Requirement

from skyward.redact import redacted_repr

# Debian policy: a package name is lower case letters, digits, + - . (two characters at least), starting with a
# letter or digit; apt-get also takes ``name=version`` and ``name:arch``. Anything else (``-o...``) is an option.
_APT_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9][a-z0-9-]*)?(=[0-9][A-Za-z0-9.+~:-]*)?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Image:
    """What each node has installed before the first task runs.

    Plugins extend it through the ``image_transform`` hook (``dataclasses.replace`` or `Image.with_pip`).

    Every entry is checked when the image is made (``ValueError`` naming the entry): ``pip`` entries must be
    PEP 508 requirements, ``apt`` entries Debian package names, ``env`` names and values strings. Nothing else
    (an installer option, a second line) can reach the nodes' install commands.

    Attributes:
        python: the Python version for the nodes (``"3.12"``); ``None`` means the client's.
        pip: PEP 508 requirement strings (``"numpy>=2"``, ``"pkg[extra]==1.0; python_version>='3.12'"``,
            ``"pkg @ https://host/pkg-1.0-py3-none-any.whl"``). Installer options (``--index-url``) are not
            requirements: use the provider's ``index_url``.
        apt: Debian package names, optionally ``name=version`` (remote providers only).
        env: environment variables set for the worker, names and values strings.
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
        for spec in self.pip:
            _check_pip(spec)
        for package in self.apt:
            _check_apt(package)
        if not isinstance(self.env, Mapping):
            raise TypeError(f"Image.env takes a mapping of names to strings, got {type(self.env).__name__}")
        for key, value in self.env.items():
            _check_env(key, value)
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))

    __repr__ = redacted_repr  # index URLs with tokens, secret-named env values: ***

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


def _has_control(text: str) -> bool:
    return any(ord(char) < 32 or ord(char) == 127 for char in text)


def _check_pip(spec: object) -> None:
    """A PEP 508 requirement on one line, or `ValueError` naming it."""
    if not isinstance(spec, str):
        raise TypeError(f"Image.pip entries are requirement strings, got {spec!r}")
    if _has_control(spec) or spec.lstrip().startswith("-"):
        raise ValueError(
            f"Image.pip entry {spec!r} is not a requirement: entries may not hold line breaks or control "
            "characters, nor be installer options (for another index, use the provider's index_url)"
        )
    try:
        Requirement(spec)
    except InvalidRequirement as exc:
        raise ValueError(f"Image.pip entry {spec!r} is not a PEP 508 requirement: {exc}") from None


def _check_apt(package: object) -> None:
    if not isinstance(package, str) or not _APT_NAME.fullmatch(package):
        raise ValueError(
            f"Image.apt entry {package!r} is not a Debian package name (lower case letters, digits, '+', '-', "
            "'.', starting with a letter or digit; optionally '=version')"
        )


def _check_env(key: object, value: object) -> None:
    if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
        raise ValueError(f"Image.env name {key!r} is not a variable name (letters, digits, '_')")
    if not isinstance(value, str):
        raise TypeError(
            f"Image.env[{key!r}] must be a string, got {type(value).__name__} {value!r}: "
            f"write env={{{key!r}: {str(value)!r}}}"
        )
    if "\0" in value:
        raise ValueError(f"Image.env[{key!r}] holds a NUL character, which no environment can carry")
