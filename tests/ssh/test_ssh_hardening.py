"""A hostile or merely untidy node home: a ``~/json.py``, a pyenv shim of uv that does not run, a swapped wheel;
and a client whose ``~/.ssh/config`` forwards the SSH agent.

The host ``pyenv-like`` is made for this module: offline (a network namespace), with a fresh home whose
``json.py`` raises on import, and whose login ``PATH`` starts with a ``uv`` that only answers like an unset pyenv
shim does (``pyenv: uv: command not found``, exit 127).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd_lab import Host, Lab

import skyward as sky
from skyward.errors import ProvisionError

SHIM = """#!/bin/sh
echo "pyenv: uv: command not found" >&2
exit 127
"""
SHADOW = "raise SystemExit('a ~/json.py shadowed the stdlib json module')\n"


@pytest.fixture(scope="module")
def pyenv_host(lab: Lab) -> Iterator[Host]:
    home = lab.root / "pyenv-like-home"
    shims = home / ".pyenv" / "shims"
    shims.mkdir(parents=True)
    (shims / "uv").write_text(SHIM)
    (shims / "uv").chmod(0o755)
    (home / "json.py").write_text(SHADOW)
    path = f"{shims}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    yield lab.add_isolated_host("pyenv-like", home=home, env={"PATH": path})


def where_and_json() -> dict[str, object]:
    import json

    return {
        "pid": os.getpid(),
        "netns": os.stat("/proc/self/ns/net").st_ino,
        "json": json.__file__,
        "executable": sys.executable,
        "flags_isolated": sys.flags.isolated,
        "agent": os.environ.get("SSH_AUTH_SOCK"),
    }


probe_node = sky.compute(where_and_json)


def test_a_broken_uv_shim_and_a_home_json_py_do_not_break_the_node(
    pyenv_host: Host, ssh_provider, events
) -> None:
    # The shim really is first on the login's PATH and fails as pyenv's does (the premise of this test).
    with sky.ComputePool(provider=ssh_provider("pyenv-like"), nodes=1) as pool:
        result = probe_node() @ pool
    (node,) = result
    assert node["netns"] == pyenv_host.netns_inode() and node["pid"] != os.getpid()
    assert str(node["executable"]).startswith(f"{pyenv_host.home}/.skyward/envs/")
    # The worker's json is the stdlib's, not ~/json.py (which would have ended the worker at its start).
    assert not str(node["json"]).startswith(str(pyenv_host.home)), node["json"]
    assert node["flags_isolated"] == 1
    # A fresh home: the environment was installed, with the uv the client shipped (the shim was refused).
    installs = [e.message for e in events.of("install") if e.host == pyenv_host.spec]
    assert any(m.startswith("uv,") for m in installs), installs
    assert list((pyenv_host.home / ".skyward" / "bin").glob("uv-*")), "the shipped uv was not unpacked"


def test_everything_under_the_nodes_skyward_directory_is_private(pyenv_host: Host, ssh_provider) -> None:
    with sky.ComputePool(provider=ssh_provider("pyenv-like"), nodes=1) as pool:
        probe_node() @ pool
    root = pyenv_host.home / ".skyward"
    loose = []
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            continue  # a link's own mode means nothing; what it points to is checked where it lives
        if info.st_mode & 0o077:
            loose.append(f"{oct(stat.S_IMODE(info.st_mode))} {path.relative_to(root)}")
        if stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) != 0o700:
            loose.append(f"dir {oct(stat.S_IMODE(info.st_mode))} {path.relative_to(root)}")
    assert not loose, "readable by others:\n" + "\n".join(loose[:20])


def test_a_wheel_changed_on_the_node_after_upload_is_refused_then_sent_again(
    pyenv_host: Host, ssh_provider
) -> None:
    wheels = pyenv_host.home / ".skyward" / "wheels"
    skyward_wheels = list(wheels.glob("*/skyward-*.whl"))
    assert skyward_wheels, "run after a pool uploaded skyward's wheel"
    for wheel in skyward_wheels:
        # Still a valid wheel, found by its folder's name, that an installer takes; no longer the client's bytes.
        with zipfile.ZipFile(wheel, "a") as archive:
            archive.writestr("skyward/_planted.py", "print('not the client code')\n")
    # Another image: another environment to install, from the uploaded wheels.
    image = sky.Image(pip=["packaging"])
    refused = pytest.raises(ProvisionError, match="do not match their SHA-256")
    with refused, sky.ComputePool(provider=ssh_provider("pyenv-like"), nodes=1, image=image):
        pass
    assert not any(w.exists() for w in skyward_wheels), "the changed wheel was left in place"
    with sky.ComputePool(provider=ssh_provider("pyenv-like"), nodes=1, image=image) as pool:
        (node,) = probe_node() @ pool
    assert node["netns"] == pyenv_host.netns_inode()


@pytest.fixture
def agent_and_forwarding_config(
    client_home: Path, lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """An ssh-agent holding the lab's key, and a client ``~/.ssh/config`` with ``ForwardAgent yes``."""
    (client_home / ".ssh").mkdir(mode=0o700)
    (client_home / ".ssh" / "config").write_text("Host *\n    ForwardAgent yes\n")
    socket_path = str(client_home / "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", socket_path], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(socket_path):
                break
            subprocess.run(["sleep", "0.05"], check=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", socket_path)
        subprocess.run(["ssh-add", "-q", str(lab.client_key)], check=True, env={**os.environ})
        yield socket_path
    finally:
        agent.kill()
        agent.wait()


def test_the_ssh_agent_is_not_forwarded_even_when_the_ssh_config_asks(
    agent_and_forwarding_config: str, pyenv_host: Host, ssh_provider
) -> None:
    with sky.ComputePool(provider=ssh_provider("pyenv-like"), nodes=1) as pool:
        (node,) = probe_node() @ pool
    assert node["netns"] == pyenv_host.netns_inode()
    assert node["agent"] is None
    # The opt-in forwards it: the check above would have seen a forwarded agent.
    with sky.ComputePool(provider=ssh_provider("pyenv-like", forward_agent=True), nodes=1) as pool:
        (node,) = probe_node() @ pool
    assert node["agent"] is not None
