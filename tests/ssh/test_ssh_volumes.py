"""S3 volumes on sshd lab hosts, against moto's S3 server on the host side of alpha's veth link.

``alpha`` and ``alpha-nfs`` are two sshd "hosts" in one network namespace: both reach moto at alpha's veth
address on this machine (and nothing beyond it). They share this machine's files, so both nodes mount the same
path: each agent mounts in its own mount namespace, which is what lets them (see `skyward.volumes.mount`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from moto_s3 import S3Server, s3_server
from sshd_lab import Lab, node_python
from volume_checks import mount_unavailable_reason, s3fs_processes, visible_mounts

import skyward as sky

pytestmark = pytest.mark.skipif(
    mount_unavailable_reason() is not None, reason=str(mount_unavailable_reason())
)


def host_side(address: str) -> str:
    """This machine's end of a lab host's veth /30 (the host is .2, this machine .1)."""
    return address.rsplit(".", 1)[0] + ".1"


@pytest.fixture
def s3(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    with s3_server(host_side(lab.hosts["alpha"].address), auth=False) as server:
        for name, value in server.keys().items():
            monkeypatch.setenv(name, value)
        yield server


def read_volume(path: str) -> dict[str, object]:
    return {
        "node": os.environ["SKYWARD_NODE"],
        "home": os.environ["HOME"],
        "netns": os.stat("/proc/self/ns/net").st_ino,
        "mnt": os.stat("/proc/self/ns/mnt").st_ino,
        "text": open(os.path.join(path, f"{os.environ['SKYWARD_NODE'][-1]}.txt")).read(),
    }


def test_two_lab_nodes_read_what_the_test_wrote_through_the_same_path(  # type: ignore[no-untyped-def]
    lab: Lab, ssh_provider, s3: S3Server, tmp_path
) -> None:
    mount = str(tmp_path / "data")
    pool = sky.ComputePool(
        provider=ssh_provider("alpha", "alpha-nfs"),
        nodes=2,
        volume=[sky.S3Volume(mount, s3.bucket, "inputs/", endpoint_url=s3.url)],
    )
    for index in (0, 1):  # which node reads which object: each its own
        s3.client().put_object(
            Bucket=s3.bucket, Key=f"inputs/{index}.txt", Body=f"for {pool.pool_id}-{index}"
        )
    with pool:
        results = pool.broadcast(read_volume, mount)
        assert len(s3fs_processes(mount)) == 2 and visible_mounts(mount) == []
    alpha, nfs = lab.hosts["alpha"], lab.hosts["alpha-nfs"]
    assert [r["node"] for r in results] == [f"{pool.pool_id}-node-0", f"{pool.pool_id}-node-1"]
    assert [r["home"] for r in results] == [str(alpha.home), str(nfs.home)]
    assert {r["netns"] for r in results} == {alpha.netns_inode()}
    assert [r["text"] for r in results] == [f"for {pool.pool_id}-0", f"for {pool.pool_id}-1"]
    assert len({r["mnt"] for r in results} | {os.stat("/proc/self/ns/mnt").st_ino}) == 3
    assert s3fs_processes(mount) == [] and lab.lab_processes() == []


def test_a_missing_bucket_fails_the_lab_pool_and_leaves_nothing(
    lab: Lab, ssh_provider, s3: S3Server, tmp_path
):  # type: ignore[no-untyped-def]
    mount = str(tmp_path / "data")
    pool = sky.ComputePool(
        provider=ssh_provider("alpha", "alpha-nfs"),
        nodes=2,
        volume=[sky.S3Volume(mount, "no-such-bucket", endpoint_url=s3.url)],
    )
    with (
        pytest.raises(sky.ProvisionError, match="the bucket 'no-such-bucket' does not exist") as failure,
        pool,
    ):
        pytest.fail("the pool started")
    assert lab.hosts["alpha"].address in str(failure.value)  # names the host
    assert s3fs_processes(mount) == [] and lab.lab_processes() == []


# Seed 003's "Handle Large Data" recipe as the seed writes it, but for `provider=`: the lab's hosts instead of AWS.
# `model` and `params` are the seed's free names; the seed loads X and y inside the block, on the client: this
# client mounts the volume too (as a client machine with the bucket at /data would have it).
SEED_SNIPPET = """
import numpy as np
from skyward import AWS, S3Volume
from skyward.integrations import ScikitLearnPool

# Mount S3 for data access
with ScikitLearnPool(
    provider=LAB,
    nodes=4,
    volume=[S3Volume("/data", "my-bucket", "datasets/")],
):
    # Data loaded from S3 on each node
    X = np.load("/data/X.npy")
    y = np.load("/data/y.npy")

    grid = GridSearchCV(model, params, n_jobs=-1)
    grid.fit(X, y)
"""

SEED_HARNESS = """
import json, os, sys
import skyward as sky
from skyward.volumes import S3Volume, agent_entries
from skyward.volumes.mount import mount_volumes

settings = json.loads(sys.argv[1])
# This client is single threaded here: it mounts the bucket at /data in a mount namespace of its own.
client_mount = mount_volumes(agent_entries([S3Volume("/data", "my-bucket", "datasets/")]), print)
LAB = sky.SSH(**settings)
from sklearn.model_selection import GridSearchCV
from sklearn.linear_model import LogisticRegression
model, params = LogisticRegression(max_iter=200), {"C": [0.1, 1.0, 10.0]}
try:
    exec(compile(os.environ["SEED_SNIPPET"], "seed-003", "exec"))
    print("BEST", json.dumps(grid.best_params_), "ROWS", len(X))
finally:
    client_mount.release()
"""


def test_seed_003_large_data_recipe_runs_on_lab_nodes(lab: Lab, s3: S3Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("sklearn")
    np = pytest.importorskip("numpy")
    client = s3.client()
    client.create_bucket(Bucket="my-bucket")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    for name, array in (("X", X), ("y", y)):
        path = tmp_path / f"{name}.npy"
        np.save(path, array)
        client.upload_file(str(path), "my-bucket", f"datasets/{name}.npy")
    hosts = ["alpha", "alpha-nfs"] * 2  # four nodes on the two hosts: each mounts /data in its own namespace
    settings = {
        "hosts": [lab.hosts[name].spec for name in hosts],
        "key_file": str(lab.client_key),
        "known_hosts": str(lab.known_hosts),
        "python": node_python(),
        "quiet": True,
    }
    data_existed = os.path.exists("/data")
    env = {**os.environ, "SEED_SNIPPET": SEED_SNIPPET, "AWS_ENDPOINT_URL_S3": s3.url}
    try:
        import json

        done = subprocess.run(
            [sys.executable, "-c", SEED_HARNESS, json.dumps(settings)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        if not data_existed and os.path.isdir("/data") and not os.listdir("/data"):
            os.rmdir("/data")  # the directory the mounts made on this machine's (shared) filesystem
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "BEST" in output and "ROWS 120" in output, output
    mounted = [
        line for line in output.splitlines() if "skyward volume: s3://my-bucket/datasets/ at /data" in line
    ]
    nodes = {line.split("]")[0].lstrip("[") for line in mounted if line.startswith("[")}
    assert len(nodes) == 4, output  # every node reported its mount before its first task
    assert s3fs_processes("my-bucket") == [] and lab.lab_processes() == []
