"""S3 volumes on a node whose login is not root: the agent mounts through passwordless sudo, tasks run as the login.

A system user made for the test (``useradd``; a sudoers.d drop-in ``NOPASSWD`` for it) runs a Local pool
(`volume_login.py`, started as root, drops to that user); moto's S3 serves on 127.0.0.1. Both go at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from moto_s3 import S3Server, s3_server
from proc_utils import wait_gone
from volume_checks import s3fs_processes, visible_mounts, volume_workdirs
from volume_login import SUDOERS, USER, Login, interpreter_reachable, sudo_login, unavailable_reason

DRIVER = Path(__file__).with_name("volume_login.py")

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))


@pytest.fixture
def login() -> Iterator[Login]:
    """The non-root login, allowed passwordless sudo; user, home and drop-in removed at the end."""
    with sudo_login() as made:
        yield made


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    with s3_server("127.0.0.1", auth=False) as server:
        client = server.client()
        client.put_object(Bucket=server.bucket, Key="datasets/a.txt", Body=b"alpha")
        client.put_object(Bucket=server.bucket, Key="datasets/sub/b.txt", Body=b"beta")
        client.put_object(Bucket=server.bucket, Key="other/c.txt", Body=b"not under the prefix")
        yield server


@pytest.fixture
def mount_path() -> Iterator[str]:
    """A mount path the login can reach (pytest's tmp_path lies under root's 0700 directory)."""
    parent = tempfile.mkdtemp(prefix="skyward-volume-login-")
    os.chmod(parent, 0o755)
    yield os.path.join(parent, "data")
    shutil.rmtree(parent, ignore_errors=True)


def run_as_login(
    login: Login,
    s3: S3Server,
    mount: str,
    inside: Callable[[dict[str, Any]], None] = lambda _: None,
    kill_inside: bool = False,
    mode: str = "auto",
) -> dict[str, Any]:
    """Run the pool as the login; `inside` gets what the driver saw inside the block, while the pool runs.
    `kill_inside`: the client is then killed (SIGKILL) instead of leaving the block."""
    args = {"uid": login.uid, "gid": login.gid, "home": login.home, "mount": mount, "bucket": s3.bucket,
            "url": s3.url, "mode": mode}  # fmt: skip
    env = {**os.environ, **s3.keys()}  # the client's boto3 chain: the keys in its environment, as a user's
    with tempfile.TemporaryFile("w+") as stderr:
        driver = subprocess.Popen(
            interpreter_reachable([sys.executable, str(DRIVER)]), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
            env=env, text=True,
        )  # fmt: skip
        assert driver.stdin is not None and driver.stdout is not None
        try:
            driver.stdin.write(json.dumps(args) + "\n")
            driver.stdin.flush()
            for line in driver.stdout:
                if not line.startswith("{"):
                    continue  # the nodes' output, forwarded by the Local provider
                out = json.loads(line)
                if "inside" not in out:
                    break
                inside(out)
                if kill_inside:
                    driver.kill()
                    driver.wait()
                    return out
                driver.stdin.write("go\n")
                driver.stdin.flush()
            assert driver.wait(timeout=300) == 0
        finally:
            if driver.poll() is None:
                driver.kill()
            stderr.seek(0)
            log = stderr.read()
        assert "out" in locals(), log
    return out


def _secrets_stay_in_s3fs(login: Login, s3: S3Server, mount: str, seen: dict[str, Any]) -> None:
    """Inside the block: one s3fs per node, root's; the key in its environment only, which the login cannot read;
    on no command line of any process; the mounts invisible here; the work directories root's alone."""
    pids = s3fs_processes(mount)
    assert len(pids) == 2
    assert sorted(seen["inside"]) == sorted(str(pid) for pid in pids)
    assert set(seen["inside"].values()) == {"EACCES"}  # the login cannot read s3fs's environment
    for pid in pids:
        assert os.stat(f"/proc/{pid}").st_uid == 0
        with open(f"/proc/{pid}/environ", "rb") as f:
            assert f"AWS_SECRET_ACCESS_KEY={s3.secret_key}".encode() in f.read().split(b"\0")
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert s3.secret_key.encode() not in cmdline.read_bytes()
        except OSError:
            continue
    assert visible_mounts(mount) == []
    for workdir in volume_workdirs():
        status = os.stat(workdir)
        assert (status.st_uid, status.st_mode & 0o777) == (0, 0o700)


def _nothing_left_soon(mount: str, workdirs_before: set[str]) -> None:
    """`_nothing_left`, once the agents have noticed their client is gone (their stdin's EOF)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return _nothing_left(mount, workdirs_before)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _nothing_left(mount: str, workdirs_before: set[str]) -> None:
    assert s3fs_processes(mount) == []
    assert visible_mounts(mount) == []
    assert volume_workdirs() == workdirs_before
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if _is_leftover(p)]


def _is_leftover(cmdline: Path) -> bool:
    try:
        return b"skyward.volumes.sudo" in cmdline.read_bytes()
    except OSError:
        return False


def test_a_non_root_login_mounts_through_sudo_and_tasks_run_as_it(
    login: Login, s3: S3Server, mount_path: str
) -> None:
    before = volume_workdirs()
    out = run_as_login(login, s3, mount_path, lambda seen: _secrets_stay_in_s3fs(login, s3, mount_path, seen))
    assert "results" in out, out
    results = out["results"]
    assert isinstance(results, list)
    assert [r["node"] for r in results] == [f"{out['pool']}-node-0", f"{out['pool']}-node-1"]
    assert len({r["pid"] for r in results} | {out["client_pid"], os.getpid()}) == 4
    mine = os.stat("/proc/self/ns/mnt").st_ino
    assert len({r["mnt"] for r in results} | {mine}) == 3  # a mount namespace per node, not the test's
    for r in results:
        assert (
            r["uids"] == [login.uid] * 3 and r["gids"] == [login.gid] * 3
        )  # the login's, root dropped for good
        assert 0 not in r["groups"] and r["user"] == USER
        assert r["files"] == ["a.txt", "sub/b.txt"]  # through the mount: the prefix only
        assert r["a"] == "alpha" and r["owner"] == login.uid
        assert r["write"] == "EROFS"
    _nothing_left(mount_path, before)


def test_without_passwordless_sudo_the_start_fails_saying_so(
    login: Login, s3: S3Server, mount_path: str
) -> None:
    SUDOERS.unlink()
    before = volume_workdirs()
    out = run_as_login(login, s3, mount_path, mode="mount")  # "auto" would copy instead (next test)
    error = str(out.get("error"))
    assert f"its login '{USER}' is not root and has no passwordless sudo" in error, out
    assert "a password is required" in error
    assert s3.secret_key not in error
    _nothing_left(mount_path, before)


def test_without_passwordless_sudo_auto_copies_and_the_logins_writes_fail(
    login: Login, s3: S3Server, mount_path: str
) -> None:
    SUDOERS.unlink()
    os.chown(os.path.dirname(mount_path), login.uid, login.gid)  # the copy goes beside the mount path
    before = volume_workdirs()
    out = run_as_login(login, s3, mount_path)
    assert "results" in out, out
    results = out["results"]
    assert [r["node"] for r in results] == [f"{out['pool']}-node-0", f"{out['pool']}-node-1"]
    for result in results:
        assert result["uids"] == [login.uid] * 3
        assert result["files"] == ["a.txt", "sub/b.txt"] and result["a"] == "alpha"
        assert result["owner"] == login.uid  # copied by the login itself: no root anywhere
        assert result["write"] == "EACCES"  # a 0555 directory, not a mount: permission bits
    assert len({r["mnt"] for r in results}) == 1  # no namespace of their own (not root)
    _nothing_left(mount_path, before)


def test_a_client_killed_inside_the_block_leaves_nothing(login: Login, s3: S3Server, mount_path: str) -> None:
    """The agents (the login's) see their stdin close and exit; the root sides then unmount and stop s3fs."""
    before = volume_workdirs()
    seen = run_as_login(login, s3, mount_path, lambda seen: None, kill_inside=True)
    assert len(seen["inside"]) == 2  # both nodes had mounted when the client died
    _nothing_left_soon(mount_path, before)


def _kill_agents_as_the_login(login: Login) -> list[int]:
    """What a provider does to a hung node, as the login: SIGKILL to each agent's process group (the pid the agent
    announced: the relay's). The root sides in those groups are not the login's to kill; they must clean up."""
    agents = [  # the dropped agents (sudo is the login's too, by its real uid)
        p
        for p in _processes_of(login.uid)
        if _argv(p)[-1:] == [b"skyward.volumes.sudo"] and b"sudo" not in _argv(p)[:1]
    ]
    groups = sorted({os.getpgid(pid) for pid in agents})
    assert len(agents) == 2 and len(groups) == 2  # a group per node, led by the process the provider started
    for group in groups:
        subprocess.run(
            ["setpriv", f"--reuid={login.uid}", f"--regid={login.gid}", "--clear-groups", "kill", "-KILL", "--",
             f"-{group}"], check=False, capture_output=True,
        )  # fmt: skip
    assert wait_gone(set(agents)) == set()
    return groups


def test_agents_killed_with_their_process_group_leave_nothing(
    login: Login, s3: S3Server, mount_path: str
) -> None:
    before = volume_workdirs()
    run_as_login(login, s3, mount_path, lambda seen: _kill_agents_as_the_login(login), kill_inside=True)
    _nothing_left_soon(mount_path, before)


def _processes_of(uid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue
        if any(line.startswith("Uid:") and line.split()[1] == str(uid) for line in lines):
            found.append(int(status.parent.name))
    return found


def _argv(pid: int) -> list[bytes]:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:
        return []
    return [os.path.basename(argv[0]), *argv[1:]] if argv else []
