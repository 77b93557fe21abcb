"""Wheels downloaded for a node's platform, and the whole wheelhouse a node without index access needs.

``pip download --only-binary=:all: --platform ... --python-version ...`` fetches what the client's own copies
cannot give (another OS or CPU, or a package the client lacks); `offline_wheelhouse` takes the client's
installed copies wherever they fit the node (`skyward.bootstrap.wheels`) and downloads the rest. Downloads land
in the private cache (`wheel_cache`) and are reused by a later pool.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from skyward.bootstrap.client_tools import pip_command, run_tool, uv_version, wheel_lock
from skyward.bootstrap.facts import NodeFacts
from skyward.bootstrap.requirements import Pin
from skyward.bootstrap.wheel_cache import Wheel, private_dir, recorded, verified, write_private
from skyward.bootstrap.wheels import editable_source, installed_tags, wheel_of_installed
from skyward.errors import ProvisionError


def _cached_download(pin: str, facts: NodeFacts) -> Wheel | None:
    """A wheel fetched earlier for ``name==version`` that the node accepts."""
    name, _, version = pin.partition("==")
    folder = private_dir("downloads")
    for path in sorted(folder.glob("*.whl")):
        found_name, found_version, _, found_tags = parse_wheel_filename(path.name)
        if (
            found_name == canonicalize_name(name)
            and str(found_version) == version
            and facts.accepts(found_tags)
        ):
            cached = verified(path)
            if cached is not None:
                return cached
    return None


def download(
    requirements: Sequence[str], constraints: Sequence[str], facts: NodeFacts, *, no_deps: bool
) -> list[Wheel]:
    """``pip download`` binary wheels of `requirements` (and their dependencies unless `no_deps`) for the node."""
    if not requirements:
        return []
    with wheel_lock:
        if no_deps:
            cached = [_cached_download(r, facts) if "==" in r else None for r in requirements]
            if all(cached):
                return [w for w in cached if w is not None]
        folder = private_dir("downloads")
        scratch = Path(tempfile.mkdtemp(prefix=".download-", dir=folder))
        try:
            command = [*pip_command(), "download", "--only-binary=:all:", "--dest", str(scratch)]
            command += ["--python-version", facts.python_minor, "--implementation", "cp"]
            for abi in (facts.abi, "abi3", "none"):
                command += ["--abi", abi]
            for platform in facts.platforms:
                command += ["--platform", platform]
            command += ["--no-deps"] if no_deps else []
            if constraints:
                constraint_file = scratch / "constraints.txt"
                write_private(constraint_file, ("\n".join(constraints) + "\n").encode())
                command += ["--constraint", str(constraint_file)]
            command += list(requirements)
            run_tool(
                command,
                f"downloading wheels of {', '.join(requirements)} for the nodes ({facts.platform_key}, Python "
                f"{facts.python_minor})",
            )
            wheels = []
            for path in sorted(scratch.glob("*.whl")):
                kept = folder / path.name
                recorded(path)
                os.replace(path.with_name(path.name + ".sha256"), kept.with_name(kept.name + ".sha256"))
                os.replace(path, kept)
                wheels.append(Wheel.of(kept))
            return wheels
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def offline_wheelhouse(pins: Mapping[str, Pin], unresolved: Iterable[str], facts: NodeFacts) -> list[Wheel]:
    """Every wheel a node without index access needs to install `pins` and `unresolved` requirements.

    The client's own installed copies are used wherever they fit the node; the rest is downloaded.
    """
    wheels: list[Wheel] = []
    to_download: list[str] = []
    for pin in pins.values():
        tags = installed_tags(pin.dist)
        if editable_source(pin.dist) is not None or (tags is not None and facts.accepts(tags)):
            wheels.append(wheel_of_installed(pin.dist))
        else:
            to_download.append(str(pin))
    wheels += download(to_download, (), facts, no_deps=True)
    wheels += download(list(unresolved), [str(pin) for pin in pins.values()], facts, no_deps=False)
    return list({wheel.sha256: wheel for wheel in wheels}.values())


def uv_wheel(facts: NodeFacts) -> Wheel | None:
    """A uv wheel for the node (its binary is all the node takes from it), or ``None`` when none can be had."""
    version = uv_version()
    requirement = f"uv=={version}" if version else "uv"
    try:
        found = download([requirement], (), facts, no_deps=True)
    except ProvisionError:
        return None
    return next((w for w in found if w.filename.startswith("uv-")), None)
