"""Which packages, at which versions, a node's environment gets: the client's own versions wherever it can.

Pickles are not portable across versions of the libraries they reference (cloudpickle, joblib, numpy, ...), so
a node mirrors the client: every package the worker needs, and every package the image asks for that the client
has installed (with its dependencies), is pinned to the version installed here. Requirements are evaluated with
the *node's* environment markers, so a macOS client still computes what a Linux node needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import Distribution, PackageNotFoundError, distribution, entry_points

from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

#: The distribution whose dependencies the worker agent needs.
RUNTIME_ROOT = "skyward"
#: skyward's dependencies that only the client uses: nodes never open SSH connections.
CLIENT_ONLY = frozenset({"asyncssh"})
#: The plugin entry point group; plugin distributions are shipped like skyward itself.
PLUGIN_GROUP = "skyward.plugins"


@dataclass(frozen=True)
class Pin:
    """One package at the exact version installed on the client."""

    name: str
    version: str
    dist: Distribution

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Resolution:
    """The outcome of pinning requirements to the client's installed versions.

    Attributes:
        pins: every package pinned, by canonical name (the requirements and their dependencies).
        unresolved: requirements the client cannot pin (not installed here, or installed at a version they
            exclude); a resolver on the node (online) or ``pip download`` on the client (offline) handles them.
    """

    pins: Mapping[str, Pin]
    unresolved: tuple[str, ...]


def project_distributions() -> list[Distribution]:
    """skyward and every installed distribution that provides a skyward plugin: built here and shipped."""
    found: dict[str, Distribution] = {canonicalize_name(RUNTIME_ROOT): distribution(RUNTIME_ROOT)}
    for entry_point in entry_points(group=PLUGIN_GROUP):
        dist = entry_point.dist
        if dist is not None:
            found.setdefault(canonicalize_name(dist.metadata["Name"]), dist)
    return list(found.values())


def project_names() -> frozenset[str]:
    return frozenset(canonicalize_name(dist.metadata["Name"]) for dist in project_distributions())


def runtime_requirements() -> list[Requirement]:
    """skyward's own dependencies that the worker needs (no extras, no client-only packages)."""
    requirements = []
    for text in distribution(RUNTIME_ROOT).requires or []:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) in CLIENT_ONLY:
            continue
        if requirement.marker is not None and "extra" in str(requirement.marker):
            continue
        requirements.append(requirement)
    return requirements


def pin_to_client(
    requirements: Iterable[Requirement | str], markers: Mapping[str, str], skip: frozenset[str] = frozenset()
) -> Resolution:
    """Pin `requirements` and their dependency closure to the client's installed versions.

    `markers` is the node's marker environment. Names in `skip` (skyward and its plugins, shipped as wheels) are
    treated as satisfied.
    """
    pins: dict[str, Pin] = {}
    unresolved: list[str] = []
    pending: list[tuple[Requirement, str]] = []
    for item in requirements:
        try:
            requirement = item if isinstance(item, Requirement) else Requirement(item)
        except InvalidRequirement:
            unresolved.append(str(item))  # a path or URL: the installer on the other side decides
            continue
        pending.append((requirement, str(item)))
    extras_seen: dict[str, set[str]] = {}
    while pending:
        requirement, original = pending.pop()
        if not _applies(requirement, markers, extras=("",)):
            continue
        name = canonicalize_name(requirement.name)
        if name in skip:
            continue
        if requirement.url:
            unresolved.append(original)
            continue
        try:
            dist = distribution(requirement.name)
        except PackageNotFoundError:
            unresolved.append(original)
            continue
        version = dist.version
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            unresolved.append(original)
            continue
        new_extras = set(requirement.extras) - extras_seen.get(name, set())
        if name in pins and not new_extras:
            continue
        pins[name] = Pin(name, version, dist)
        extras_seen.setdefault(name, set()).update(requirement.extras)
        active_extras = ("", *sorted(extras_seen[name]))
        for text in dist.requires or []:
            dependency = Requirement(text)
            if _applies(dependency, markers, extras=active_extras):
                pending.append((dependency, _without_marker(dependency)))
    return Resolution(pins=dict(sorted(pins.items())), unresolved=tuple(dict.fromkeys(unresolved)))


def _applies(requirement: Requirement, markers: Mapping[str, str], extras: Iterable[str]) -> bool:
    if requirement.marker is None:
        return True
    for extra in extras:
        try:
            if requirement.marker.evaluate({**markers, "extra": extra}):
                return True
        except UndefinedEnvironmentName:
            return True  # a marker we cannot judge: keep the requirement, the installer will judge it
    return False


def _without_marker(requirement: Requirement) -> str:
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return f"{requirement.name}{extras}{requirement.specifier}"
