"""What the client knows about a node after probing it, and which wheels that node can install."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from packaging import tags


@dataclass(frozen=True)
class NodeFacts:
    """The answer of the node script's ``probe``.

    Attributes:
        home: the login's home directory (``$HOME``) on the node.
        root: ``<home>/.skyward``, where environments and uploaded wheels live.
        hostname: the node's own host name.
        python: absolute path of the interpreter that environments are created from.
        python_version: its full version (``"3.12.1"``).
        implementation: ``sys.implementation.name`` (``"cpython"``).
        abi: the CPython ABI tag (``"cp312"``).
        machine: ``platform.machine()`` (``"x86_64"``).
        system: ``platform.system()`` (``"Linux"``).
        libc: ``("glibc", "2.36")``, ``("musl", "")`` or ``("", "")``.
        markers: the environment markers of that interpreter, to evaluate requirements for the node.
        uid: the login's user id (0: root, may install apt packages).
        sudo: whether passwordless ``sudo`` works (an alternative to root for apt packages).
        uv: the path of a usable ``uv``, or ``None``.
        has_venv: whether ``python -m venv`` can create an environment with pip.
        has_apt: whether the node has ``apt-get``.
    """

    home: str
    root: str
    hostname: str
    python: str
    python_version: str
    implementation: str
    abi: str
    machine: str
    system: str
    libc: tuple[str, str]
    markers: Mapping[str, str] = field(hash=False)
    uid: int
    sudo: bool
    uv: str | None
    has_venv: bool
    has_apt: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeFacts:
        values = dict(data)
        values["libc"] = tuple(values.get("libc") or ("", ""))
        values["markers"] = dict(values["markers"])
        return cls(**{name: values[name] for name in cls.__dataclass_fields__})

    @property
    def python_minor(self) -> str:
        """``"3.12"``."""
        return ".".join(self.python_version.split(".")[:2])

    @property
    def platform_key(self) -> str:
        """What decides which binary wheels fit: equal keys can share one set of wheels."""
        libc = "-".join(part for part in self.libc if part)
        return f"{self.implementation}-{self.abi}-{self.system}-{self.machine}-{libc}".lower()

    @cached_property
    def platforms(self) -> list[str]:
        """Platform tags this node accepts, most specific first (what ``pip download --platform`` takes)."""
        arch = self.machine.lower()
        system = self.system.lower()
        if system == "linux":
            if arch == "amd64":
                arch = "x86_64"
            elif arch == "arm64":
                arch = "aarch64"
            found: list[str] = []
            kind, version = self.libc
            if kind == "glibc" and version:
                major, minor = (int(part) for part in version.split(".")[:2])
                # manylinux_2_5 .. manylinux_2_<minor>, plus the legacy aliases of the same glibc versions.
                legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
                floor = 5 if arch in ("x86_64", "i686") else 17
                for glibc_minor in range(minor, floor - 1, -1):
                    found.append(f"manylinux_{major}_{glibc_minor}_{arch}")
                    if glibc_minor in legacy:
                        found.append(f"{legacy[glibc_minor]}_{arch}")
            elif kind == "musl":
                found += [f"musllinux_1_{minor}_{arch}" for minor in range(2, -1, -1)]
            found.append(f"linux_{arch}")
            return found
        if system == "darwin":
            mac_arch = "arm64" if arch in ("arm64", "aarch64") else "x86_64"
            return list(tags.mac_platforms((11, 0) if mac_arch == "arm64" else (10, 9), mac_arch))
        return [f"{system}_{arch}"]

    @cached_property
    def wheel_tags(self) -> frozenset[tags.Tag]:
        """Every wheel tag this node's interpreter accepts."""
        if self.implementation != "cpython":
            return frozenset()
        version = tuple(int(part) for part in self.python_version.split(".")[:2])
        interpreter = f"cp{version[0]}{version[1]}"
        return frozenset(
            [
                *tags.cpython_tags(version, abis=[self.abi], platforms=self.platforms),
                *tags.compatible_tags(version, interpreter, platforms=self.platforms),
            ]
        )

    def accepts(self, wheel_tags: frozenset[tags.Tag] | set[tags.Tag]) -> bool:
        """Whether a wheel with these tags installs on this node."""
        return not self.wheel_tags.isdisjoint(wheel_tags)
