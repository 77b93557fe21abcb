"""Wheels made or fetched on the client, to be uploaded to nodes.

Three sources, cheapest first:

- *built*: skyward, its plugins and any editable install are built from their source trees (``uv build`` or
  ``pip wheel``), so the code on a node is the code on the client;
- *repacked*: a regular installed distribution is zipped back into a wheel from its ``RECORD`` (with the tags
  of the wheel it was installed from), which needs no network at all;
- *downloaded*: ``pip download --only-binary=:all: --platform ... --python-version ...`` for the node's platform
  when the client's copy does not fit the node (another OS or CPU) or the client does not have the package
  (`skyward.bootstrap.wheel_download`, with the wheelhouse of an offline node).

This module makes the first two. Everything lands in a cache directory (``$SKYWARD_CACHE_DIR``, else
``$XDG_CACHE_HOME/skyward``, else ``~/.cache/skyward``) keyed by content, so a second pool reuses it. The cache is
private (directories 0700, files 0600 from their creation), and each wheel's SHA-256 is recorded beside it
(``<wheel>.sha256``) when it is made: a cached wheel is reused only if its bytes still have that hash, and made
again otherwise (`wheel_cache`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import stat
import sys
import tempfile
import zipfile
from base64 import urlsafe_b64encode
from email.parser import HeaderParser
from importlib.metadata import Distribution
from pathlib import Path
from urllib.parse import unquote, urlparse

from packaging.tags import Tag, parse_tag
from packaging.utils import canonicalize_name

from skyward.bootstrap.client_tools import client_uv, run_tool, wheel_lock
from skyward.bootstrap.wheel_cache import Wheel, private_dir, recorded, verified
from skyward.errors import ProvisionError

__all__ = [
    "Wheel",
    "build_from_source",
    "editable_source",
    "installed_tags",
    "repack",
    "wheel_of_installed",
]

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same files always give the same bytes
_SKIP_DIST_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


# --- built from source -----------------------------------------------------------------------------------------


def editable_source(dist: Distribution) -> Path | None:
    """The source tree of an editable install (PEP 660 / PEP 610), or ``None``."""
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    info = json.loads(text)
    if not info.get("dir_info", {}).get("editable"):
        return None
    url = urlparse(info["url"])
    return Path(unquote(url.path)) if url.scheme == "file" else None


def _fingerprint(source: Path) -> str:
    """Changes whenever a file of the project may have changed (names, sizes, mtimes; nested projects skipped)."""
    digest = hashlib.sha256()
    for directory, subdirs, files in os.walk(source):
        here = Path(directory)
        subdirs[:] = sorted(
            d
            for d in subdirs
            if not d.startswith(".")
            and d not in ("__pycache__", "build", "dist", "node_modules")
            and not d.endswith(".egg-info")
            and not (here / d / "pyproject.toml").exists()  # another project (a workspace member)
        )
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            info = (here / name).stat()
            digest.update(
                f"{(here / name).relative_to(source)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode()
            )
    return digest.hexdigest()[:16]


def build_from_source(name: str, source: Path) -> Wheel:
    """Build (or take from the cache) the wheel of the project at `source`."""
    with wheel_lock:
        target = private_dir("built") / f"{canonicalize_name(name)}-{_fingerprint(source)}"
        existing = sorted(target.glob("*.whl"))
        if existing:
            cached = verified(existing[0])
            if cached is not None:
                return cached
            shutil.rmtree(target, ignore_errors=True)  # changed since it was built: build it again
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            uv = client_uv()
            if uv:
                # --python: build with this interpreter; uv must not go looking for (or download) another.
                command = [
                    uv,
                    "build",
                    "--wheel",
                    "--quiet",
                    "--python",
                    sys.executable,
                    "--out-dir",
                    str(scratch),
                    str(source),
                ]
            elif importlib.util.find_spec("pip"):
                command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(scratch), str(source)]
            else:
                raise ProvisionError(
                    f"cannot build a wheel of {name} (an editable install at {source}) to ship to the nodes: "
                    "neither uv nor pip is available here"
                )
            run_tool(command, f"building a wheel of {name} from {source}")
            built = sorted(scratch.glob("*.whl"))
            if len(built) != 1:
                raise ProvisionError(
                    f"building {name} from {source} produced {len(built)} wheels, expected one"
                )
            recorded(built[0])
            try:
                scratch.rename(target)
            except OSError:  # another process of this client built it meanwhile
                shutil.rmtree(scratch, ignore_errors=True)
            wheel = verified(next(target.glob("*.whl")))
            if wheel is None:
                raise ProvisionError(
                    f"the wheel of {name} built at {target} changed while it was being cached"
                )
            return wheel
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


# --- repacked from an installed distribution -------------------------------------------------------------------


def installed_tags(dist: Distribution) -> frozenset[Tag] | None:
    """The tags of the wheel `dist` was installed from (its ``WHEEL`` file), or ``None`` if it has none."""
    text = dist.read_text("WHEEL")
    if not text:
        return None
    tags: set[Tag] = set()
    for value in HeaderParser().parsestr(text).get_all("Tag") or []:
        tags |= parse_tag(value.strip())
    return frozenset(tags) or None


def repack(dist: Distribution) -> Wheel:
    """Zip an installed distribution back into a wheel, from the files its ``RECORD`` lists.

    Files installed outside the package directory (console scripts, data files) are left out: the worker imports
    packages and runs no scripts. The result is byte-for-byte reproducible, so nodes cache it by hash.
    """
    tags = installed_tags(dist)
    files = dist.files
    record = dist.read_text("RECORD")
    if tags is None or files is None or record is None:
        raise ProvisionError(f"{dist.metadata['Name']} was not installed from a wheel; it cannot be repacked")
    dist_info = next((f.parts[0] for f in files if f.parts[0].endswith(".dist-info")), None)
    if dist_info is None:
        raise ProvisionError(f"{dist.metadata['Name']}: no .dist-info directory among its installed files")
    project, version = dist_info[: -len(".dist-info")].rsplit("-", 1)
    interpreters, abis, platforms = (
        sorted({getattr(t, part) for t in tags}) for part in ("interpreter", "abi", "platform")
    )
    filename = f"{project}-{version}-{'.'.join(interpreters)}-{'.'.join(abis)}-{'.'.join(platforms)}.whl"
    key = hashlib.sha256(record.encode()).hexdigest()[:16]
    with wheel_lock:
        target = private_dir("repacked", key) / filename
        if target.exists():
            cached = verified(target)
            if cached is not None:
                return cached
        partial = target.with_name(f".{filename}.{os.getpid()}.part")
        entries: list[str] = []
        output = os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
        with (
            output,
            zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive,
        ):
            for member in sorted(files, key=str):
                parts = member.parts
                if parts[0] == ".." or "__pycache__" in parts or member.suffix in (".pyc", ".pyo"):
                    continue
                if parts[0] == dist_info and len(parts) == 2 and parts[1] in _SKIP_DIST_INFO:
                    continue
                source = Path(str(dist.locate_file(member)))
                if not source.is_file():
                    raise ProvisionError(
                        f"{dist.metadata['Name']} {version} is missing an installed file ({member}); reinstall it"
                    )
                data = source.read_bytes()
                info = zipfile.ZipInfo(member.as_posix(), _ZIP_EPOCH)
                info.external_attr = (stat.S_IMODE(source.stat().st_mode) | stat.S_IFREG) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data)
                digest = urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                entries.append(f"{member.as_posix()},sha256={digest},{len(data)}")
            entries.append(f"{dist_info}/RECORD,,")
            info = zipfile.ZipInfo(f"{dist_info}/RECORD", _ZIP_EPOCH)
            info.external_attr = (0o644 | stat.S_IFREG) << 16
            archive.writestr(info, "\n".join(entries) + "\n", compress_type=zipfile.ZIP_DEFLATED)
        wheel = recorded(partial)
        os.replace(partial.with_name(partial.name + ".sha256"), target.with_name(target.name + ".sha256"))
        os.replace(partial, target)
        return Wheel(target, wheel.sha256)


def wheel_of_installed(dist: Distribution) -> Wheel:
    """The wheel of an installed distribution: built from source when editable, else repacked."""
    source = editable_source(dist)
    if source is not None:
        return build_from_source(dist.metadata["Name"], source)
    return repack(dist)
