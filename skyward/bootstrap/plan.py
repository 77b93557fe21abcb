"""The install plan of one image on one kind of node, and the key that names its environment."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from skyward.bootstrap.facts import NodeFacts
from skyward.bootstrap.requirements import Resolution, pin_to_client, project_names, runtime_requirements
from skyward.bootstrap.wheels import Wheel
from skyward.image import Image

#: Bump when the layout or the meaning of an environment changes: old environments are then left alone.
LAYOUT_VERSION = 1


@dataclass(frozen=True)
class InstallPlan:
    """What an environment for `image` on nodes like `facts` contains.

    Attributes:
        python: the node interpreter the environment is created from.
        python_version: its full version.
        platform_key: the node's platform (decides which binary wheels are installed).
        requirements: what is installed with dependency resolution: the worker's runtime packages pinned to the
            client's versions, then ``image.pip`` as written.
        constraints: every package the client could pin (runtime and image closure), at the client's version.
        resolution: the pins and the requirements the client could not pin (offline, ``pip download`` gets those).
        project_wheels: skyward and its plugins, built on the client; installed last without dependencies.
        apt: ``image.apt``.
    """

    python: str
    python_version: str
    platform_key: str
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    resolution: Resolution = field(compare=False, repr=False)
    project_wheels: tuple[Wheel, ...]
    apt: tuple[str, ...]

    @cached_property
    def key(self) -> str:
        """The environment's name: a hash of everything that decides what gets installed."""
        material = {
            "layout": LAYOUT_VERSION,
            "python": self.python,
            "python_version": self.python_version,
            "platform": self.platform_key,
            "requirements": list(self.requirements),
            "constraints": list(self.constraints),
            "wheels": sorted(wheel.sha256 for wheel in self.project_wheels),
            "apt": sorted(self.apt),
        }
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:24]


def make_plan(image: Image, facts: NodeFacts, project_wheels: tuple[Wheel, ...]) -> InstallPlan:
    """Plan `image` for nodes like `facts`; `project_wheels` are skyward's and its plugins' built wheels."""
    shipped = project_names()
    runtime = runtime_requirements()
    image_requirements = [spec for spec in image.pip if _name(spec) not in shipped]
    resolution = pin_to_client([*runtime, *image_requirements], facts.markers, skip=shipped)
    runtime_pins = [
        str(resolution.pins[name])
        for name in (canonicalize_name(r.name) for r in runtime)
        if name in resolution.pins
    ]
    runtime_unpinned = [str(r) for r in runtime if canonicalize_name(r.name) not in resolution.pins]
    return InstallPlan(
        python=facts.python,
        python_version=facts.python_version,
        platform_key=facts.platform_key,
        requirements=tuple(dict.fromkeys([*runtime_pins, *runtime_unpinned, *image_requirements])),
        constraints=tuple(str(pin) for pin in resolution.pins.values()),
        resolution=resolution,
        project_wheels=project_wheels,
        apt=tuple(image.apt),
    )


def _name(spec: str) -> str | None:
    try:
        return canonicalize_name(Requirement(spec).name)
    except InvalidRequirement:
        return None
