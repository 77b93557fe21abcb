"""S3 volumes copied instead of mounted (`mode="copy"`, or `"auto"` on a node without usable FUSE), on `sky.Local`
nodes against moto's S3 on 127.0.0.1. The two nodes share this machine's filesystem: one copy serves both."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator

import pytest
from moto_s3 import S3Server
from test_volumes_local import filled_s3
from volume_checks import s3fs_processes, visible_mounts

import skyward as sky


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    with filled_s3(monkeypatch, auth=False) as server:
        yield server


@pytest.fixture
def s3_auth(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    with filled_s3(monkeypatch, auth=True) as server:
        yield server


def read_copy(path: str) -> dict[str, object]:
    return {
        "node": os.environ["SKYWARD_NODE"],
        "pid": os.getpid(),
        "files": sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs),
        "a": open(os.path.join(path, "a.txt")).read(),
        "b": open(os.path.join(path, "sub", "b.txt")).read(),
    }


def try_writes(path: str) -> list[str]:
    """Write a new file, overwrite one, remove one: the error code of each (``ok`` if it worked)."""
    outcomes = []
    for action in (
        lambda: open(os.path.join(path, "new.txt"), "w").close(),
        lambda: open(os.path.join(path, "a.txt"), "w").close(),
        lambda: os.unlink(os.path.join(path, "sub", "b.txt")),
    ):
        try:
            action()
            outcomes.append("ok")
        except OSError as exc:
            outcomes.append(errno.errorcode[exc.errno or 0])
    return outcomes


def reports(output: str, mount: str) -> dict[str, str]:
    """The node -> volume line each node printed (forwarded as ``[node] line``)."""
    found = {}
    for line in output.splitlines():
        match = re.match(r"\[([^\]]+)\] (skyward volume: .*)", line)
        if match and f" at {mount}," in line:
            found[match.group(1)] = match.group(2)
    return found


def test_two_local_nodes_read_one_copy_and_cannot_write_it(s3: S3Server, tmp_path, capfd) -> None:  # type: ignore[no-untyped-def]
    mount = str(tmp_path / "data")
    volume = sky.S3Volume(mount, s3.bucket, "datasets/", endpoint_url=s3.url, mode="copy")
    with sky.ComputePool(nodes=2, volume=[volume]) as pool:
        results = pool.broadcast(read_copy, mount)
        writes = pool.broadcast(try_writes, mount)
        assert s3fs_processes(mount) == []  # copied, not mounted
    nodes = [f"{pool.pool_id}-node-0", f"{pool.pool_id}-node-1"]
    assert [r["node"] for r in results] == nodes
    assert len({r["pid"] for r in results} | {os.getpid()}) == 3
    for result in results:
        assert result["files"] == ["a.txt", "sub/b.txt"]  # the prefix only
        assert (result["a"], result["b"]) == ("alpha", "beta")
    # root's tasks: the copy is bind-mounted read-only in each agent's namespace; others': permission bits
    assert writes == [["EROFS" if os.geteuid() == 0 else "EACCES"] * 3] * 2
    lines = reports(capfd.readouterr().out, mount)
    assert set(lines) == set(nodes)
    source = f"s3://{s3.bucket}/datasets/ at {mount}, read-only copy (mode='copy')"
    copied = [line for line in lines.values() if "2 files, 9 bytes copied at start" in line]
    reused = [line for line in lines.values() if "reused the copy already here (2 files)" in line]
    assert len(copied) == 1 and len(reused) == 1, lines  # one agent copied, the other found it complete
    assert all(line.startswith(f"skyward volume: {source}") for line in lines.values()), lines
    # left in place for the next pool, sealed; nothing partial beside it; no mount seen outside the agents
    assert sorted(os.listdir(tmp_path)) == [".data.skyward-copy", "data"]
    assert os.stat(mount).st_mode & 0o777 == 0o555
    assert os.stat(os.path.join(mount, "a.txt")).st_mode & 0o777 == 0o444
    assert visible_mounts(mount) == []


def test_auto_copies_where_fuse_is_unusable_and_refreshes_a_changed_copy(  # type: ignore[no-untyped-def]
    s3: S3Server, tmp_path, capfd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKYWARD_VOLUMES_NO_FUSE", "1")  # the Local agents inherit it
    mount = str(tmp_path / "data")
    volume = sky.S3Volume(mount, s3.bucket, "datasets/", endpoint_url=s3.url)
    with sky.ComputePool(nodes=1, volume=[volume]) as pool:
        assert pool.broadcast(read_copy, mount)[0]["a"] == "alpha"
    s3.client().put_object(Bucket=s3.bucket, Key="datasets/a.txt", Body=b"changed")
    with sky.ComputePool(nodes=1, volume=[volume]) as pool:
        assert pool.broadcast(read_copy, mount)[0]["a"] == "changed"  # a copy is taken at each start
    out = capfd.readouterr().out
    lines = [line for line in out.splitlines() if "skyward volume:" in line]
    assert len(lines) == 2 and s3fs_processes(mount) == []
    for line in lines:
        assert "read-only copy (no FUSE here: SKYWARD_VOLUMES_NO_FUSE is set)" in line, line
        assert "bytes copied at start" in line, line
    assert sorted(os.listdir(tmp_path)) == [".data.skyward-copy", "data"]  # the old copy went


def test_a_writable_volume_without_fuse_is_refused_clearly(  # type: ignore[no-untyped-def]
    s3: S3Server, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKYWARD_VOLUMES_NO_FUSE", "1")
    mount = str(tmp_path / "out")
    volume = sky.S3Volume(mount, s3.bucket, "results/", read_only=False, endpoint_url=s3.url)
    with pytest.raises(sky.ProvisionError, match="would not upload what tasks write") as failure:
        with sky.ComputePool(nodes=1, volume=[volume]):
            pytest.fail("the pool started")
    assert "no usable FUSE (SKYWARD_VOLUMES_NO_FUSE is set)" in str(failure.value)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="mode='copy' is read-only"):
        sky.S3Volume(mount, s3.bucket, read_only=False, mode="copy")


@pytest.mark.parametrize(
    ("bucket", "bad_key", "message"),
    [
        ("no-such-bucket", False, "the bucket 'no-such-bucket' does not exist"),
        (None, True, "the credentials were refused"),
    ],
    ids=["missing-bucket", "bad-credentials"],
)
def test_a_copy_that_cannot_be_taken_fails_the_start_and_leaves_nothing(  # type: ignore[no-untyped-def]
    s3_auth: S3Server,
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,
    bucket: str | None,
    bad_key: bool,
    message: str,
) -> None:
    bucket = bucket or s3_auth.bucket
    if bad_key:
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    mount = str(tmp_path / "data")
    pool = sky.ComputePool(
        nodes=2, volume=[sky.S3Volume(mount, bucket, "datasets/", endpoint_url=s3_auth.url, mode="copy")]
    )
    with pytest.raises(sky.ProvisionError, match=message) as failure, pool:
        pytest.fail("the pool started")
    assert f"cannot copy s3://{bucket}/datasets/" in str(failure.value)
    assert "not-the-secret" not in str(failure.value)
    assert os.listdir(tmp_path) == []  # no copy, partial or not, no stamp


def test_the_keys_forwarded_are_what_the_copy_signs_with(s3_auth: S3Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mount = str(tmp_path / "data")
    volume = sky.S3Volume(mount, s3_auth.bucket, "datasets/", endpoint_url=s3_auth.url, mode="copy")
    with sky.ComputePool(nodes=1, volume=[volume]) as pool:
        assert pool.broadcast(read_copy, mount)[0]["b"] == "beta"
