"""S3 volumes on `sky.Local` nodes, against moto's S3 server on 127.0.0.1 (with IAM auth).

Each node mounts the prefix in its own mount namespace: the tasks of both nodes read the objects the test wrote,
the test process sees no mount, and after the block (or a failed start) no s3fs, mount or work directory is left.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from moto_s3 import S3Server, s3_server
from volume_checks import mount_unavailable_reason, s3fs_processes, visible_mounts, volume_workdirs

import skyward as sky

pytestmark = pytest.mark.skipif(
    mount_unavailable_reason() is not None, reason=str(mount_unavailable_reason())
)


@contextmanager
def filled_s3(monkeypatch: pytest.MonkeyPatch, *, auth: bool) -> Iterator[S3Server]:
    """moto's S3 with its bucket holding three objects; the client's boto3 chain has the good key."""
    with s3_server("127.0.0.1", auth=auth) as server:
        client = server.client()
        client.put_object(Bucket=server.bucket, Key="datasets/a.txt", Body=b"alpha")
        client.put_object(Bucket=server.bucket, Key="datasets/sub/b.txt", Body=b"beta")
        client.put_object(Bucket=server.bucket, Key="other/c.txt", Body=b"not under the prefix")
        for name, value in server.keys().items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """Without moto's IAM auth: moto refuses s3fs's signed listings (``GET /bucket/?prefix=``) even with a good
    key, though boto3's pass. The credentials are checked with auth on by `s3_auth`'s tests."""
    with filled_s3(monkeypatch, auth=False) as server:
        yield server


@pytest.fixture
def s3_auth(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """With moto's IAM auth: only the key of the IAM user moto made is accepted."""
    with filled_s3(monkeypatch, auth=True) as server:
        yield server


def read_volume(path: str) -> dict[str, object]:
    return {
        "node": os.environ["SKYWARD_NODE"],
        "pid": os.getpid(),
        "mnt": os.stat("/proc/self/ns/mnt").st_ino,
        "files": sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs),
        "a": open(os.path.join(path, "a.txt")).read(),
        "b": open(os.path.join(path, "sub", "b.txt")).read(),
    }


def write_file(path: str) -> str:
    name = f"written-by-{os.environ['SKYWARD_NODE']}.txt"
    try:
        with open(os.path.join(path, name), "w") as f:
            f.write(f"hello from {os.environ['SKYWARD_NODE']}")
    except OSError as exc:
        return errno.errorcode[exc.errno or 0]
    return name


def test_two_local_nodes_read_the_prefix_through_their_own_mounts(s3: S3Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mount = str(tmp_path / "data")
    before = volume_workdirs()
    volume = sky.S3Volume(mount, s3.bucket, "datasets/", endpoint_url=s3.url)
    with sky.ComputePool(nodes=2, volume=[volume]) as pool:
        results = pool.broadcast(read_volume, mount)
        refused = pool.broadcast(write_file, mount)
        assert len(s3fs_processes(mount)) == 2  # one per node
        assert visible_mounts(mount) == []  # the nodes' mounts are theirs alone
        for pid in s3fs_processes(mount):  # the key: in s3fs's environment, not on its command line
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                assert s3.secret_key.encode() not in f.read()
            with open(f"/proc/{pid}/environ", "rb") as f:
                assert f"AWS_SECRET_ACCESS_KEY={s3.secret_key}".encode() in f.read().split(b"\0")
        for workdir in volume_workdirs() - before:  # s3fs's logs and HOME: the agent's alone
            assert os.stat(workdir).st_mode & 0o777 == 0o700
    assert [r["node"] for r in results] == [f"{pool.pool_id}-node-0", f"{pool.pool_id}-node-1"]
    assert len({r["pid"] for r in results} | {os.getpid()}) == 3
    mine = os.stat("/proc/self/ns/mnt").st_ino
    assert len({r["mnt"] for r in results} | {mine}) == 3  # a mount namespace per node
    for result in results:
        assert result["files"] == ["a.txt", "sub/b.txt"]  # the prefix only
        assert (result["a"], result["b"]) == ("alpha", "beta")
    assert refused == ["EROFS", "EROFS"]  # read-only by default
    assert s3fs_processes(mount) == [] and volume_workdirs() == before


def test_a_writable_volume_uploads_what_tasks_write(s3: S3Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mount = str(tmp_path / "out")
    volume = sky.S3Volume(mount, s3.bucket, "results/", read_only=False, endpoint_url=s3.url)
    with sky.ComputePool(nodes=2, volume=[volume]) as pool:
        names = pool.broadcast(write_file, mount)
        # closed by the task: in the bucket already, before the pool ends
        listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="results/")
        keys = sorted(item["Key"] for item in listed.get("Contents", []))
    assert keys == sorted(f"results/{name}" for name in names)
    body = s3.client().get_object(Bucket=s3.bucket, Key=f"results/{names[1]}")["Body"].read()
    assert body == f"hello from {pool.pool_id}-node-1".encode()


def read_top_file(path: str) -> tuple[str, str]:
    return os.environ["SKYWARD_NODE"], open(os.path.join(path, "a.txt")).read()


def test_the_clients_key_is_what_the_node_signs_with(s3_auth: S3Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mount = str(tmp_path / "data")
    volume = sky.S3Volume(mount, s3_auth.bucket, "datasets/", endpoint_url=s3_auth.url)
    with sky.ComputePool(nodes=1, volume=[volume]) as pool:
        assert pool.broadcast(read_top_file, mount) == [(f"{pool.pool_id}-node-0", "alpha")]


@pytest.mark.parametrize(
    ("bucket", "bad_key", "message"),
    [
        ("no-such-bucket", False, "the bucket 'no-such-bucket' does not exist"),
        (None, True, "the credentials were refused"),
    ],
    ids=["missing-bucket", "bad-credentials"],
)
def test_a_volume_that_cannot_mount_fails_the_start_and_leaves_nothing(  # type: ignore[no-untyped-def]
    s3_auth: S3Server,
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,
    bucket: str | None,
    bad_key: bool,
    message: str,
) -> None:
    s3 = s3_auth
    bucket = bucket or s3.bucket
    if bad_key:
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    mount = str(tmp_path / "data")
    before = volume_workdirs()
    pool = sky.ComputePool(
        nodes=2, volume=[sky.S3Volume(mount, bucket, endpoint_url=s3.url, mount_timeout=30)]
    )
    with pytest.raises(sky.ProvisionError, match=message) as failure, pool:
        pytest.fail("the pool started")
    assert f"cannot mount s3://{bucket}/ at {mount}" in str(failure.value)
    assert s3fs_processes(mount) == [] and visible_mounts(mount) == [] and volume_workdirs() == before
    assert "not-the-secret" not in str(failure.value)
