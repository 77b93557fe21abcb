"""An S3 volume on an sshd lab host whose login is not root (as ``ubuntu`` on EC2): through passwordless sudo.

The host is an sshd in a network namespace of its own, logged into as a system user made for the test (with a
sudoers.d ``NOPASSWD`` drop-in, removed at the end with the user); moto serves S3 on the host side of its veth.
The SSH provider bootstraps the node as that user, the agent mounts through ``sudo -n``, tasks run as the user.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto_s3 import S3Server, s3_server
from sshd_lab import Lab, node_python, wait_gone
from volume_checks import s3fs_processes, visible_mounts
from volume_login import Login, interpreter_reachable, read_as_login, sudo_login, unavailable_reason

import skyward as sky

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))


def _processes_of(uid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue
        uids = next((line.split()[1:] for line in lines if line.startswith("Uid:")), [])
        if str(uid) in uids:
            found.append(int(status.parent.name))
    return found


@pytest.fixture
def login_host(lab: Lab) -> Iterator[tuple[Login, str, str]]:
    """(the login, its ``user@address:port`` spec, the host side of its veth). Its sshd stops at the end."""
    with sudo_login() as login:
        host = lab.add_isolated_host("volume-login", home=Path(login.home), wrap=interpreter_reachable)
        try:
            yield login, f"{login.name}@{host.address}:{host.port}", host.address.rsplit(".", 1)[0] + ".1"
        finally:
            os.killpg(host.process.pid, signal.SIGTERM)
            host.process.wait(timeout=10)


@pytest.fixture
def mount_path() -> Iterator[str]:
    parent = Path(os.path.realpath("/tmp")) / f"skyward-volume-ssh-{os.getpid()}"
    parent.mkdir(mode=0o755)
    os.chmod(parent, 0o755)
    yield str(parent / "data")
    for child in parent.iterdir():  # the mount path, left empty on the node by design
        child.rmdir()
    parent.rmdir()


def test_a_non_root_ssh_login_mounts_through_sudo(  # type: ignore[no-untyped-def]
    lab: Lab, login_host: tuple[Login, str, str], mount_path: str, events, monkeypatch: pytest.MonkeyPatch
) -> None:
    login, spec, s3_address = login_host
    with s3_server(s3_address, auth=False) as s3:
        _fill(s3)
        for name, value in s3.keys().items():
            monkeypatch.setenv(name, value)
        provider = sky.SSH(
            hosts=[spec, spec],  # two nodes on the host: a mount namespace each
            key_file=str(lab.client_key),
            known_hosts=str(lab.known_hosts),
            python=node_python(),
            progress=events,
            connect_timeout=10.0,
        )
        volume = sky.S3Volume(mount_path, s3.bucket, "datasets/", endpoint_url=s3.url)
        with sky.ComputePool(provider=provider, nodes=2, volume=[volume]) as pool:
            results = pool.broadcast(read_as_login, mount_path)
            s3fs = s3fs_processes(mount_path)
            assert len(s3fs) == 2 and visible_mounts(mount_path) == []
            assert {os.stat(f"/proc/{pid}").st_uid for pid in s3fs} == {0}  # root's: its environment too
        assert [r["node"] for r in results] == [f"{pool.pool_id}-node-0", f"{pool.pool_id}-node-1"]
        assert len({r["mnt"] for r in results} | {os.stat("/proc/self/ns/mnt").st_ino}) == 3
        for r in results:
            assert r["uids"] == [login.uid] * 3 and r["gids"] == [login.gid] * 3 and 0 not in r["groups"]
            assert r["files"] == ["a.txt", "sub/b.txt"] and r["a"] == "alpha" and r["owner"] == login.uid
            assert r["write"] == "EROFS"
        assert s3fs_processes(mount_path) == []
        # no agent of the login left, nor a root side (sshd's sessions end as the provider lets them go)
        left = set(_processes_of(login.uid)) | {
            p for p in _processes_of(0) if b"skyward.volumes" in _cmdline(p)
        }
        left = wait_gone(left)
        assert left == set(), [_cmdline(pid) for pid in left]


def _fill(s3: S3Server) -> None:
    client = s3.client()
    client.put_object(Bucket=s3.bucket, Key="datasets/a.txt", Body=b"alpha")
    client.put_object(Bucket=s3.bucket, Key="datasets/sub/b.txt", Body=b"beta")
    client.put_object(Bucket=s3.bucket, Key="other/c.txt", Body=b"not under the prefix")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
