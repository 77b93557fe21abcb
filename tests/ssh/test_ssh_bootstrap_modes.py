"""Bootstrap paths: online install on a host with index access, and one install shared by hosts on one home."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import urllib.request

import pytest
from sshd_lab import Lab

import skyward as sky


def identity() -> tuple[str, int, str]:
    return os.environ["HOME"], os.stat("/proc/self/ns/net").st_ino, sys.executable


def test_online_host_installs_from_the_index_and_uses_only_the_nodes_asked_for(
    lab: Lab, ssh_provider, events
) -> None:
    gamma = lab.hosts["gamma"]
    # Two hosts listed, one node wanted: the first host only. apt packages already present are accepted as is.
    provider = ssh_provider("gamma", "alpha")
    image = sky.Image(apt=["openssh-server"])
    started = time.monotonic()
    with sky.ComputePool(provider=provider, nodes=1, image=image) as pool:
        elapsed = time.monotonic() - started
        assert [n.host for n in pool.nodes] == [gamma.address]
        home, netns, executable = sky.compute(identity)() >> pool
    assert home == str(gamma.home) and netns == gamma.netns_inode()
    assert executable.startswith(f"{gamma.home}/.skyward/envs/")
    assert {e.host for e in events.events} == {gamma.spec}  # alpha was never contacted
    (upload,) = events.of("upload")
    assert upload.message.startswith("online"), upload
    print(f"\nSSH online bootstrap (uv, one host): pool ready in {elapsed:.1f}s", file=sys.__stderr__)


def test_hosts_sharing_a_home_install_an_image_once(lab: Lab, ssh_provider, events) -> None:
    """Two hosts, one home directory (NFS-like), the same image at the same moment: one installs, one waits."""
    shared = lab.hosts["alpha-nfs"].home
    assert lab.hosts["beta-nfs"].home == shared
    provider = ssh_provider("alpha-nfs", "beta-nfs", installer="pip")  # venv+pip: the other installer path
    with sky.ComputePool(provider=provider, nodes=2) as pool:
        results = sky.compute(identity)() @ pool
    assert [r[0] for r in results] == [str(shared), str(shared)]
    assert {r[1] for r in results} == {
        lab.hosts["alpha-nfs"].netns_inode(),
        lab.hosts["beta-nfs"].netns_inode(),
    }
    assert results[0][2] == results[1][2]  # one environment, used by both

    installed = events.of("installed")
    fresh = [e for e in installed if "installed in" in e.message]
    assert len(fresh) == 1, installed  # exactly one host ran the installation
    other = {e.host for e in events.events} - {fresh[0].host}
    assert len(other) == 1
    other_phases = events.phases(other.pop())
    # The other host found it installed, having waited on the lock (or, if it came late, from the cache).
    assert "wait" in other_phases or "cached" in other_phases, other_phases
    assert "installed" not in other_phases or any("meanwhile" in e.message for e in installed)
    envs = [
        p for p in (shared / ".skyward" / "envs").iterdir() if p.is_dir() and not p.name.endswith(".wheels")
    ]
    assert len(envs) == 1 and (envs[0] / ".skyward-ready").exists()


# Small pure-Python packages; the test takes the first one the client does not have.
FOREIGN_PACKAGES = [("tomli_w", "tomli-w==1.2.0", "1.2.0"), ("text_unidecode", "text-unidecode==1.3", "1.3")]


def module_origin(module: str) -> tuple[str, str]:
    import importlib
    from importlib.metadata import packages_distributions, version

    imported = importlib.import_module(module)
    return version(packages_distributions()[module][0]), str(imported.__file__)


def test_an_offline_node_gets_what_the_client_lacks_downloaded_for_its_platform(
    lab: Lab, ssh_provider, events
) -> None:
    missing = [p for p in FOREIGN_PACKAGES if importlib.util.find_spec(p[0]) is None]
    if not missing:
        pytest.skip("the client has every candidate package; this test needs one the client does not have")
    module, requirement, expected = missing[0]
    try:
        urllib.request.urlopen("https://pypi.org/simple/", timeout=10).close()
    except OSError as exc:
        pytest.skip(f"the client cannot reach PyPI to download for the node: {exc}")
    beta = lab.hosts["beta"]
    with sky.ComputePool(provider=ssh_provider("beta"), nodes=1, image=sky.Image(pip=[requirement])) as pool:
        found_version, found_file = sky.compute(module_origin)(module) >> pool
    assert found_version == expected and found_file.startswith(f"{beta.home}/.skyward/envs/")
    (upload,) = events.of("upload")
    assert "offline" in upload.message
