"""The node's side of volumes: mount each `S3Volume` with s3fs-fuse before the agent announces itself (or copy
it read-only where the node cannot mount: `skyward.volumes.choose`, `skyward.volumes.copy`).

Why s3fs-fuse in a private mount namespace:
- s3fs is a Debian package (``s3fs``) every Debian/Ubuntu node can install, and a FUSE mount shows the prefix
  as it is now, without copying a dataset before the first task (a synced copy would).
- The agent enters a mount namespace of its own (``unshare(CLONE_NEWNS)``, propagation private) before it
  mounts, so the mount is seen by this agent and its tasks only: two nodes on one machine (the sshd lab's hosts
  share this machine's files) each mount ``/data`` without colliding, and nothing of it shows outside.
- s3fs runs in the foreground as the agent's child, in its process group: stopping the node's process group
  (skyward's teardown of a hung worker) stops it too, and with its last process the namespace and the mount go.

Credentials reach s3fs in its environment only (``AWS_ACCESS_KEY_ID``...; ``/proc/<pid>/environ`` is readable by
its own user only): never a command line, never a file.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skyward.volumes.choose import plan
from skyward.volumes.client import VolumeError
from skyward.volumes.copy import copy_volume
from skyward.volumes.diagnose import explain
from skyward.volumes.spec import S3Volume

_MS_REC, _MS_PRIVATE = 0x4000, 1 << 18
AWS_S3 = "https://s3.amazonaws.com"


@dataclass
class _Mount:
    volume: S3Volume
    process: subprocess.Popen[bytes]
    log: str


@dataclass
class MountedVolumes:
    """The volumes this agent mounted; `release` unmounts them (s3fs finishes its uploads first)."""

    workdir: str
    mounts: list[_Mount] = field(default_factory=list)

    def release(self) -> None:
        """Unmount in reverse order, stop each s3fs, remove the private work directory. Idempotent."""
        while self.mounts:
            mount = self.mounts.pop()
            _unmount(mount.volume.mount_path)
            try:
                mount.process.wait(timeout=30)  # it exits once unmounted, after pending uploads
            except subprocess.TimeoutExpired:
                mount.process.kill()
                mount.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def parse_entries(entries: Sequence[Mapping[str, Any]]) -> list[tuple[S3Volume, dict[str, str] | None]]:
    """The volumes (checked again here) and their credentials from the agent configuration's entries."""
    parsed = []
    for entry in entries:
        fields = {k: v for k, v in entry.items() if k != "keys"}
        try:
            volume = S3Volume(**fields)
        except (TypeError, ValueError) as exc:
            raise VolumeError(f"unusable volume entry (client and node versions differ?): {exc}") from exc
        keys = entry.get("keys")
        parsed.append((volume, dict(keys) if isinstance(keys, Mapping) else None))
    return parsed


def check_can_mount() -> None:
    """Raise `VolumeError` saying what this node lacks to mount S3 volumes."""
    missing = []
    if os.geteuid() != 0:
        missing.append(
            "root: the worker mounts in a mount namespace of its own, which needs root (a non-root login "
            "goes through passwordless sudo first: skyward.volumes.sudo)"
        )
    if not os.path.exists("/dev/fuse"):
        missing.append("/dev/fuse (FUSE): a container needs --device /dev/fuse --cap-add SYS_ADMIN")
    s3fs = shutil.which("s3fs")
    if s3fs is None:
        missing.append("s3fs (Debian/Ubuntu: apt-get install s3fs; the pool's image asks for it)")
    elif subprocess.run([s3fs, "--version"], capture_output=True, check=False).returncode != 0:
        missing.append(f"a working s3fs ({s3fs} --version fails)")
    if missing:
        raise VolumeError("this node cannot mount S3 volumes: it needs " + "; ".join(missing))


def private_namespace() -> None:
    """Enter a mount namespace of this process's own whose mounts propagate nowhere (the agent is still single
    threaded here: ``unshare(CLONE_NEWNS)`` refuses a process whose threads share its filesystem state)."""
    os.unshare(os.CLONE_NEWNS)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        errno = ctypes.get_errno()
        raise VolumeError(f"cannot make the worker's mount namespace private: {os.strerror(errno)}")


def node_report(line: str) -> None:
    """Report `line` through ``skyward.volumes`` on a node: a line on the agent's stdout, which the provider
    forwards to the client (prefixed with the node's name) before and after the ready line alike."""
    log = logging.getLogger("skyward.volumes")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    log.info(line)


def mount_volumes(
    entries: Sequence[Mapping[str, Any]],
    report: Callable[[str], None],
    owner: tuple[int, int] | None = None,
) -> MountedVolumes:
    """Mount every volume of `entries` (the agent configuration's) and return them; `report` gets one line
    per volume for the node's log. On failure, whatever was mounted is released and `VolumeError` says why.

    `owner` (uid, gid): the account the tasks will run as when it is not this process's (a root helper mounting
    for a non-root login, `skyward.volumes.sudo`): the files show as that account's, and only its."""
    planned = plan(parse_entries(entries))
    private = _enter_namespace(any(p.copy_reason is None for p in planned))
    mounted = MountedVolumes(tempfile.mkdtemp(prefix="skyward-volumes-"))  # 0700: the s3fs logs
    try:
        for index, (volume, keys, copy_reason) in enumerate(
            (p.volume, p.keys, p.copy_reason) for p in planned
        ):
            if copy_reason is not None:
                done = copy_volume(volume, keys, private)
                report(
                    f"skyward volume: {volume.source} at {volume.mount_path}, read-only copy ({copy_reason}): {done}"
                )
                continue
            mounted.mounts.append(
                _mount_one(volume, keys, os.path.join(mounted.workdir, f"s3fs-{index}.log"), owner)
            )
            mode = "read-only" if volume.read_only else "read-write (files upload when closed)"
            report(
                f"skyward volume: {volume.source} at {volume.mount_path}, {mode}, "
                "s3fs-fuse in the worker's own mount namespace"
            )
    except BaseException:
        mounted.release()
        raise
    return mounted


def _enter_namespace(mounting: bool) -> bool:
    """Enter the agent's own mount namespace: required to mount; for copies only, where allowed (root), so that
    they are bind-mounted read-only there. Whether this process now has a namespace of its own."""
    if mounting:
        check_can_mount()
        private_namespace()
        return True
    if os.geteuid() != 0:
        return False
    try:
        private_namespace()
    except (OSError, VolumeError):  # a container without CAP_SYS_ADMIN: permission bits only
        return False
    return True


def s3fs_command(volume: S3Volume, owner: tuple[int, int] | None = None) -> list[str]:
    """s3fs's command line: nothing secret on it."""
    source = f"{volume.bucket}:/{volume.key_prefix}" if volume.key_prefix else volume.bucket
    # sigv4 only: a refused key must fail at once, not be retried with signature v2 (which AWS has retired)
    options = [
        f"url={volume.endpoint_url or AWS_S3}",
        "sigv4",
        "dbglevel=err",
        "retries=2",
        "connect_timeout=10",
    ]
    if volume.endpoint_url is not None:
        options.append("use_path_request_style")  # MinIO, test servers: no bucket.host DNS names
    if volume.region is not None:
        options.append(f"endpoint={volume.region}")
    if volume.read_only:
        options.append("ro")
    if volume.credentials == "instance-profile":
        options.append("iam_role=auto")
    elif volume.credentials == "anonymous":
        options.append("public_bucket=1")
    if owner is not None:
        # root mounts for the login user: other accounts than root are refused by FUSE unless allow_other; the
        # files are the login's (uid/gid) and its alone (umask), though nobody else sees this namespace anyway
        options += ["allow_other", f"uid={owner[0]}", f"gid={owner[1]}", "umask=0077"]
    return [shutil.which("s3fs") or "s3fs", source, volume.mount_path, "-f", "-o", ",".join(options)]


def _environment(keys: dict[str, str] | None, home: str) -> dict[str, str]:
    """s3fs's environment: a clean one (the user's image.env is for tasks), plus the forwarded keys. Its HOME is
    the agent's private directory: s3fs looks for ``~/.passwd-s3fs`` and ``~/.aws`` there, which nobody else
    can write (a shared HOME like /tmp would let another account plant credentials)."""
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": home}
    if keys is not None:
        env["AWS_ACCESS_KEY_ID"] = env["AWSACCESSKEYID"] = keys["access_key"]
        env["AWS_SECRET_ACCESS_KEY"] = env["AWSSECRETACCESSKEY"] = keys["secret_key"]
        if keys.get("session_token"):
            env["AWS_SESSION_TOKEN"] = env["AWSSESSIONTOKEN"] = keys["session_token"]
    return env


def _mount_one(
    volume: S3Volume, keys: dict[str, str] | None, log_path: str, owner: tuple[int, int] | None
) -> _Mount:
    path = volume.mount_path
    if is_mounted(path):
        raise VolumeError(f"{path} is already a mount point on this node")
    os.makedirs(path, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            s3fs_command(volume, owner),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_environment(keys, os.path.dirname(log_path)),
        )
    deadline = time.monotonic() + volume.mount_timeout
    while not (is_mounted(path) and _answers(path, process)):
        if process.poll() is not None or time.monotonic() > deadline:
            state = (
                "exited" if process.poll() is not None else f"did not mount within {volume.mount_timeout:g}s"
            )
            _stop(process, path)
            raise VolumeError(
                f"cannot mount {volume.source} at {path}: s3fs {state}. {explain(volume, log_path)}"
            )
        time.sleep(0.05)
    return _Mount(volume, process, log_path)


def _answers(path: str, process: subprocess.Popen[bytes]) -> bool:
    """Whether s3fs serves the mount. The kernel mounts before s3fs has checked the bucket and the key (its FUSE
    init does, then ends its loop on failure): the first request waits for that init, so a mount that answers a
    stat with s3fs still running is one that passed the check."""
    try:
        os.stat(path)
    except OSError:  # ENOTCONN: s3fs gave up
        return False
    return process.poll() is None and is_mounted(path)


def is_mounted(path: str) -> bool:
    """Whether `path` is a mount point in this process's mount namespace (from mountinfo: no stat() of a
    FUSE directory, which would wait on s3fs)."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            point = line.split(" ")[4].replace("\\040", " ")
            if point == path:
                return True
    return False


def _unmount(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if is_mounted(path) and libc.umount2(path.encode(), 0) != 0:
        libc.umount2(path.encode(), 2)  # MNT_DETACH: busy (a task still holds a file); it goes when released


def _stop(process: subprocess.Popen[bytes], path: str) -> None:
    _unmount(path)
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
