"""The client's wheel cache is private and trusted only while each wheel still has its recorded SHA-256."""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from importlib.metadata import distribution
from pathlib import Path

import pytest

from skyward.bootstrap import wheel_cache, wheel_download
from skyward.bootstrap.wheels import repack


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "skyward-cache"
    monkeypatch.setenv("SKYWARD_CACHE_DIR", str(root))
    return root


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_repacked_wheel_changed_in_the_cache_is_made_again(cache: Path) -> None:
    first = repack(distribution("pluggy"))
    original = sha256(first.path)
    assert first.sha256 == original
    assert (first.path.parent / (first.path.name + ".sha256")).read_text() == original
    # Still a valid wheel, with the same size-independent name: only its content says it is not ours.
    info = first.path.stat()
    with zipfile.ZipFile(first.path, "a") as archive:
        archive.writestr("pluggy/_planted.py", "print('not what was installed here')\n")
    os.utime(first.path, ns=(info.st_atime_ns, info.st_mtime_ns))  # the same mtime: no shortcut may trust it
    assert sha256(first.path) != original

    again = repack(distribution("pluggy"))
    assert again.path == first.path
    assert again.sha256 == original == sha256(again.path)
    with zipfile.ZipFile(again.path) as archive:
        assert "pluggy/_planted.py" not in archive.namelist()


def test_a_cached_wheel_without_its_recorded_hash_is_not_trusted(cache: Path) -> None:
    first = repack(distribution("pluggy"))
    (first.path.parent / (first.path.name + ".sha256")).unlink()
    first.path.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip in its place
    again = repack(distribution("pluggy"))
    assert sha256(again.path) == first.sha256


def test_a_downloaded_wheel_changed_in_the_cache_is_not_reused(cache: Path) -> None:
    folder = wheel_cache.private_dir("downloads")
    good = folder / "demo_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(good, "w") as archive:
        archive.writestr("demo_pkg/__init__.py", "")
    wheel_cache.recorded(good)
    facts = _facts()
    assert wheel_download._cached_download("demo-pkg==1.0", facts) is not None
    with open(good, "ab") as f:
        f.write(b"changed")
    assert wheel_download._cached_download("demo-pkg==1.0", facts) is None
    assert not good.exists()  # removed, so that it is downloaded again


def test_the_cache_is_private_from_creation(cache: Path) -> None:
    repack(distribution("pluggy"))
    loose = [
        f"{oct(stat.S_IMODE(p.lstat().st_mode))} {p.relative_to(cache)}"
        for p in [cache, *cache.rglob("*")]
        if p.lstat().st_mode & 0o077
    ]
    assert not loose, loose
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def test_an_older_wider_cache_root_is_narrowed(cache: Path) -> None:
    cache.mkdir(mode=0o755)
    cache.chmod(0o755)
    wheel_cache.private_dir("downloads")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def _facts():  # type: ignore[no-untyped-def]
    import sys

    from packaging.markers import default_environment

    from skyward.bootstrap.facts import NodeFacts

    return NodeFacts(
        home="/home/me",
        root="/home/me/.skyward",
        hostname="node",
        python="/usr/bin/python3",
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}.1",
        implementation="cpython",
        abi=f"cp{sys.version_info.major}{sys.version_info.minor}",
        machine="x86_64",
        system="Linux",
        libc=("glibc", "2.36"),
        markers=default_environment(),
        uid=1000,
        sudo=False,
        uv=None,
        has_venv=True,
        has_apt=True,
    )
