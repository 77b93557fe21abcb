"""``Slurm(python=None)`` without ``login=``: when this interpreter lacks what the image asks for, the image's
environment is built here, once, under the home the compute nodes share, and every node runs it. Ctrl-C during
that build leaves nothing running, no lock held and nothing a later pool trusts."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from build_watch import interrupt_build, lock_is_free
from slurm_lab import SlurmLab

import skyward as sky

PACKAGE = "skyward_lab_extra"

CLIENT = textwrap.dedent(
    """
    import sys
    import skyward as sky

    image = sky.Image(pip=[f"skyward-lab-extra @ {sys.argv[1]}"])
    slurm = sky.Slurm(offline=True, time="10:00")
    with sky.ComputePool(provider=slurm, nodes=2, image=image) as pool:
        print("POOL READY", flush=True)
    """
)


def make_wheel(folder: Path) -> Path:
    """A one-module wheel (no index in the lab): what the client's interpreter does not have."""
    dist = f"{PACKAGE}-0.1.dist-info"
    files = {
        f"{PACKAGE}/__init__.py": "WHERE = 'the shared home'\n",
        f"{dist}/METADATA": "Metadata-Version: 2.1\nName: skyward-lab-extra\nVersion: 0.1\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: skyward-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    path = folder / f"{PACKAGE}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return path


def where() -> tuple[str, str, str]:
    import skyward_lab_extra  # type: ignore[import-not-found]

    return socket.gethostname(), sys.executable, skyward_lab_extra.WHERE


@pytest.mark.slow
def test_without_login_the_environment_is_built_here_on_the_shared_home(
    lab: SlurmLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ImportError):  # the client's own interpreter cannot run the tasks
        __import__(PACKAGE)
    wheel = make_wheel(tmp_path)
    home = tmp_path / "home"  # the shared home: the lab's compute nodes see this machine's files
    home.mkdir()
    monkeypatch.setenv(
        "SKYWARD_CACHE_DIR", os.environ.get("SKYWARD_CACHE_DIR", str(Path.home() / ".cache/skyward"))
    )
    monkeypatch.setenv("HOME", str(home))
    # Ctrl-C while it builds, in a client of its own.
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, wheel.as_uri()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ),
    )
    folder, _ = interrupt_build(client, home / ".skyward" / "envs", str(home))
    assert lab.jobs_after_close() == []
    assert lock_is_free(folder.with_name(folder.name + ".lock"))
    assert not (folder / ".skyward-ready").exists()

    image = sky.Image(pip=[f"skyward-lab-extra @ {wheel.as_uri()}"])
    for build in ("installed", "cached"):
        events: list[str] = []
        slurm = sky.Slurm(offline=True, time="10:00", start_timeout=60.0, progress=events.append)
        with sky.ComputePool(provider=slurm, nodes=2, image=image) as pool:
            seen = set(pool.broadcast(where))
        assert {host for host, _, _ in seen} == set(lab.nodes)
        [python] = {python for _, python, _ in seen}
        assert python == str(folder / "bin" / "python"), python
        assert {found for _, _, found in seen} == {"the shared home"}
        phases = [
            line.split("]")[1].split(":")[0].strip() for line in events if line.startswith("[environment")
        ]
        assert build in phases, events
    assert lab.jobs_after_close() == []
