"""The client's wheel cache: where wheels are kept, privately, and how a cached one is trusted again.

The cache is ``$SKYWARD_CACHE_DIR``, else ``$XDG_CACHE_HOME/skyward``, else ``~/.cache/skyward``. Its directories
are created 0700 and its files 0600 (from creation, not by a chmod afterwards). Each wheel's SHA-256 is recorded
beside it (``<wheel>.sha256``) when it is made (`recorded`); `verified` reuses a cached wheel only while its bytes,
hashed afresh, still have that hash.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import parse_wheel_filename


@dataclass(frozen=True)
class Wheel:
    """A wheel file on the client and the SHA-256 of its bytes (its identity on nodes)."""

    path: Path
    sha256: str

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def tags(self) -> frozenset[Tag]:
        return parse_wheel_filename(self.filename)[3]

    @classmethod
    def of(cls, path: Path) -> Wheel:
        return cls(path, _sha256(path))


def cache_dir() -> Path:
    """Where built, repacked and downloaded wheels are kept."""
    explicit = os.environ.get("SKYWARD_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "skyward"


def private_dir(*parts: str) -> Path:
    """``cache_dir()/<parts...>``, each level created with mode 0700 (an existing, wider cache root is narrowed:
    an older skyward made it with the default mode)."""
    root = cache_dir()
    root.parent.mkdir(parents=True, exist_ok=True)
    root.mkdir(mode=0o700, exist_ok=True)
    if root.stat().st_mode & 0o077:
        root.chmod(0o700)
    path = root
    for part in parts:
        path = path / part
        path.mkdir(mode=0o700, exist_ok=True)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to a new or truncated file created with mode 0600."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)


def hash_file(path: Path) -> str:
    """The SHA-256 of the file at `path`, read now (no cache)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded(path: Path) -> Wheel:
    """A wheel just made at `path`: its SHA-256 is recorded beside it, for `verified` to check on reuse."""
    digest = hash_file(path)
    write_private(path.with_name(path.name + ".sha256"), digest.encode())
    return Wheel(path, digest)


def verified(path: Path) -> Wheel | None:
    """The cached wheel at `path` if its bytes still have the SHA-256 recorded when it was made; otherwise it
    (tampered with, truncated, or from before hashes were recorded) is deleted and ``None`` returned."""
    record = path.with_name(path.name + ".sha256")
    try:
        expected = record.read_text().strip()
    except OSError:
        expected = ""
    digest = hash_file(path) if path.exists() else ""
    if expected and digest == expected:
        return Wheel(path, digest)
    for stale in (path, record):
        stale.unlink(missing_ok=True)
    return None


@cache
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return hash_file(Path(path))  # size and mtime only key the cache: a rewritten file is read again


def _sha256(path: Path) -> str:
    info = path.stat()
    return _sha256_cached(str(path), info.st_size, info.st_mtime_ns)
