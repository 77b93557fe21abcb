"""A read-only copy of a volume's prefix at its mount path, for nodes that cannot mount (`skyward.volumes.choose`).

- Taken with boto3 (the node image gets it from the volumes' plugin) with the same credentials a mount would use:
  the client's forwarded keys, the node's own (instance profile), or none (a public bucket).
- Safe for agents sharing a machine (`sky.Local`'s nodes, a host listed twice): one copies at a time under a lock
  on the mount path's parent directory, into a temporary directory beside it, then renames it into place; the
  listing's digest is written beside it (``.<name>.skyward-copy``). An agent that finds a complete copy of the same
  objects (same keys, sizes and ETags) reuses it; a copy of other objects (the data changed) is replaced.
- Read-only: files 0444, directories 0555; a root agent also bind-mounts it read-only in its own mount namespace
  (root ignores permission bits), so a task's write fails with ``EROFS`` (root) or ``EACCES`` (other logins).
- Failures (missing bucket, refused credentials) happen at the listing, before anything is written; a failed
  download removes its temporary directory. The copy is left in place at teardown, for the next pool to reuse.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from skyward.volumes.client import VolumeError
from skyward.volumes.spec import S3Volume

_MS_BIND, _MS_REMOUNT, _MS_RDONLY = 4096, 32, 1


def copy_volume(volume: S3Volume, keys: dict[str, str] | None, private: bool) -> str:
    """Copy (or reuse) `volume`'s prefix at its mount path; return a few words for the node's report. `private`:
    this process has a mount namespace of its own, where the copy is bind-mounted read-only."""
    client = _client(volume, keys)
    listing = _listing(client, volume)
    digest = hashlib.sha256(json.dumps([volume.source, listing]).encode()).hexdigest()
    path = volume.mount_path
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    stamp = os.path.join(parent, f".{name}.skyward-copy")
    with _locked(parent):
        if _read(stamp) == digest and os.path.isdir(path):
            done = f"reused the copy already here ({len(listing)} files)"
        else:
            _replace_with_copy(client, volume, listing, stamp, digest)
            done = f"{len(listing)} files, {sum(size for _, size, _ in listing)} bytes copied at start"
    sealed = private and _bind_read_only(path)
    return done + ("; writes fail with EROFS" if sealed else "; files 0444, directories 0555")


def _client(volume: S3Volume, keys: dict[str, str] | None) -> Any:
    try:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config
    except ImportError as exc:
        raise VolumeError(
            f"cannot copy {volume.source}: boto3 is not installed on this node ({exc})"
        ) from exc
    options: dict[str, Any] = {"retries": {"max_attempts": 3}, "connect_timeout": 10}
    if volume.endpoint_url is not None:
        options["s3"] = {"addressing_style": "path"}  # as s3fs's use_path_request_style
    if volume.credentials == "anonymous":
        options["signature_version"] = UNSIGNED
    session = boto3.Session(
        aws_access_key_id=keys["access_key"] if keys else None,
        aws_secret_access_key=keys["secret_key"] if keys else None,
        aws_session_token=keys.get("session_token") if keys else None,
    )
    region = volume.region or session.region_name or "us-east-1"
    return session.client(
        "s3", endpoint_url=volume.endpoint_url, region_name=region, config=Config(**options)
    )


def _listing(client: Any, volume: S3Volume) -> list[tuple[str, int, str]]:
    """(relative path, size, ETag) of every object under the prefix; `VolumeError` saying why it cannot list."""
    from botocore.exceptions import BotoCoreError, ClientError

    prefix = volume.key_prefix + "/" if volume.key_prefix else ""
    found = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=volume.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix) :]
                if relative.endswith("/") or not relative:
                    continue  # a "directory" marker
                parts = relative.split("/")
                if any(part in ("", ".", "..") for part in parts):
                    raise VolumeError(f"cannot copy {volume.source}: the key {item['Key']!r} is no file path")
                found.append((relative, int(item["Size"]), str(item.get("ETag", ""))))
    except ClientError as exc:
        raise VolumeError(f"cannot copy {volume.source}: {_explain(volume, exc)}") from exc
    except BotoCoreError as exc:
        raise VolumeError(f"cannot copy {volume.source}: {exc}") from exc
    return sorted(found)


def _explain(volume: S3Volume, exc: Any) -> str:
    code = exc.response.get("Error", {}).get("Code", "")
    endpoint = volume.endpoint_url or "AWS S3"
    if code == "NoSuchBucket":
        return f"the bucket {volume.bucket!r} does not exist at {endpoint}"
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "ExpiredToken"):
        return f"the credentials were refused ({volume.credentials} credentials; S3 said {code})"
    if code == "AccessDenied":
        return f"access was denied: the credentials ({volume.credentials}) may not list {volume.source}"
    return f"S3 refused the listing ({code or exc})"


def _replace_with_copy(
    client: Any, volume: S3Volume, listing: list[tuple[str, int, str]], stamp: str, digest: str
) -> None:
    path = volume.mount_path
    parent, name = os.path.split(path)
    ours = os.path.exists(stamp)
    if os.path.lexists(path) and not (ours or (os.path.isdir(path) and not os.listdir(path))):
        raise VolumeError(
            f"cannot copy {volume.source} to {path}: it exists and holds files that are not a skyward copy "
            "(remove it, or choose another mount_path)"
        )
    partial = tempfile.mkdtemp(prefix=f".{name}.skyward-partial-", dir=parent)
    try:
        _download(client, volume, listing, partial)
        _seal(partial)
        if ours:
            os.unlink(stamp)  # from here on, what is at `path` is not a complete copy
        if os.path.lexists(path):
            old = tempfile.mkdtemp(prefix=f".{name}.skyward-old-", dir=parent)
            os.rename(path, os.path.join(old, name))
            os.rename(partial, path)
            _remove(old)
        else:
            os.rename(partial, path)
    except BaseException:
        _remove(partial)
        raise
    with open(stamp + ".new", "w", encoding="utf-8") as f:
        f.write(digest)
    os.replace(stamp + ".new", stamp)


def _download(client: Any, volume: S3Volume, listing: list[tuple[str, int, str]], into: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    prefix = volume.key_prefix + "/" if volume.key_prefix else ""
    for relative, _, _ in listing:
        target = os.path.join(into, *relative.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:  # in this thread: boto3's transfer manager would start threads before a possible unshare
            body = client.get_object(Bucket=volume.bucket, Key=prefix + relative)["Body"]
            with open(target, "wb") as f:
                f.writelines(body.iter_chunks(1 << 20))
        except (ClientError, BotoCoreError) as exc:
            raise VolumeError(f"cannot copy {volume.source}: reading {relative!r} failed: {exc}") from exc


def _seal(root: str) -> None:
    for directory, _, files in os.walk(root, topdown=False):
        for file in files:
            os.chmod(os.path.join(directory, file), 0o444)
        os.chmod(directory, 0o555)


def _remove(path: str) -> None:
    """Remove a tree even when sealed (0555 directories refuse unlinking their entries to non-root)."""
    for directory, _, _ in os.walk(path):
        try:
            os.chmod(directory, stat.S_IRWXU)
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _locked(directory: str) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when closed, and by the kernel if this process dies
        yield
    finally:
        os.close(fd)


def _read(stamp: str) -> str | None:
    try:
        with open(stamp, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def _bind_read_only(path: str) -> bool:
    """Bind-mount `path` over itself read-only (in this process's own namespace): ``False`` where not allowed."""
    libc = ctypes.CDLL(None, use_errno=True)
    target = path.encode()
    if libc.mount(target, target, None, _MS_BIND, None) != 0:
        return False
    flags = _MS_BIND | _MS_REMOUNT | _MS_RDONLY
    if libc.mount(None, target, None, flags, None) != 0:
        libc.umount2(target, 2)
        return False
    return True
