"""`S3Volume`: an S3 prefix that appears as a directory on every node, and the checks of a pool's volumes."""

from __future__ import annotations

import itertools
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Credentials = Literal["client", "instance-profile", "anonymous"]
CREDENTIALS: tuple[str, ...] = ("client", "instance-profile", "anonymous")
Mode = Literal["auto", "mount", "copy"]
MODES: tuple[str, ...] = ("auto", "mount", "copy")

# S3's rules for bucket names (3-63 characters, lower case, digits, '.', '-', starting and ending alphanumeric).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z0-9-]{1,40}")


@dataclass(frozen=True, slots=True)
class S3Volume:
    """An S3 bucket prefix mounted at `mount_path` on every node before the first task runs.

    Each node mounts it with s3fs-fuse (Debian's ``s3fs`` package, added to the node image) in the worker's own
    mount namespace, so the directory is visible to that node's tasks only (see the Volumes page of the docs).

    Attributes:
        mount_path: where the prefix appears on each node: an absolute path, not ``/``.
        bucket: the bucket's name.
        prefix: the key prefix shown at `mount_path` (``"datasets/"``); ``""`` is the whole bucket.
        read_only: ``True`` (the default) mounts it read-only: writes fail with ``EROFS``. ``False``: a file a task
            writes is uploaded to ``s3://bucket/prefix/<name>`` when the task closes it.
        endpoint_url: an S3-compatible endpoint (MinIO, a test server), e.g. ``"http://10.0.0.1:9000"``, reached
            with path-style requests. ``None``: the endpoint boto3 uses on the client (``AWS_ENDPOINT_URL_S3``,
            else ``AWS_ENDPOINT_URL``), else AWS S3.
        region: the bucket's region (``"eu-west-1"``) for AWS S3's request signing; ``None`` lets s3fs find it.
        credentials: ``"client"`` (the default) sends this machine's AWS credentials (boto3's chain: environment,
            ``~/.aws``, SSO...) to each node on the SSH session's stdin; ``"instance-profile"`` uses the node's own
            (an EC2 instance profile, see ``sky.AWS(iam_instance_profile=...)``); ``"anonymous"`` for a public
            bucket.
        mount_timeout: seconds a node waits for the mount before the pool's start fails.
        mode: ``"auto"`` (the default) mounts with s3fs-fuse where the node can (``/dev/fuse``, s3fs, root or
            passwordless sudo) and takes a read-only copy with boto3 where it cannot (a container without
            ``/dev/fuse``); ``"mount"`` only mounts (the start fails where it cannot); ``"copy"`` always copies
            (read-only only: a copy does not upload). Each node reports what it used.
    """

    mount_path: str
    bucket: str
    prefix: str = ""
    read_only: bool = True
    endpoint_url: str | None = None
    region: str | None = None
    credentials: Credentials = "client"
    mount_timeout: float = 60.0
    mode: Mode = "auto"

    def __post_init__(self) -> None:
        path = self.mount_path
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"S3Volume mount_path must be an absolute path, got {path!r}")
        normal = posixpath.normpath(path)
        if normal == "/" or _has_control(path):
            raise ValueError(
                f"S3Volume mount_path {path!r} cannot be mounted over (not '/', no control characters)"
            )
        object.__setattr__(self, "mount_path", normal)
        if not isinstance(self.bucket, str) or not self.bucket:
            raise ValueError(f"S3Volume bucket must be a non-empty bucket name, got {self.bucket!r}")
        if not _BUCKET.fullmatch(self.bucket):
            raise ValueError(
                f"S3Volume bucket {self.bucket!r} is not a bucket name (3-63 lower case letters, digits, '.', '-')"
            )
        if not isinstance(self.prefix, str) or _has_control(self.prefix) or ":" in self.prefix:
            raise ValueError(
                f"S3Volume prefix must be a key prefix without ':' or control characters, got {self.prefix!r}"
            )
        if any(part in (".", "..") for part in self.prefix.strip("/").split("/") if self.prefix.strip("/")):
            raise ValueError(f"S3Volume prefix {self.prefix!r} may not contain '.' or '..' parts")
        if not isinstance(self.read_only, bool):
            raise TypeError(f"S3Volume read_only must be True or False, got {self.read_only!r}")
        url = self.endpoint_url
        if url is not None and (not isinstance(url, str) or not re.fullmatch(r"https?://[^\s,]+", url)):
            raise ValueError(f"S3Volume endpoint_url must be an http(s):// URL, got {url!r}")
        if self.region is not None and not (isinstance(self.region, str) and _REGION.fullmatch(self.region)):
            raise ValueError(f"S3Volume region must be a region name like 'eu-west-1', got {self.region!r}")
        if self.credentials not in CREDENTIALS:
            choices = ", ".join(map(repr, CREDENTIALS))
            raise ValueError(f"S3Volume credentials must be one of {choices}, got {self.credentials!r}")
        timeout = self.mount_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValueError(f"S3Volume mount_timeout must be a positive number of seconds, got {timeout!r}")
        if self.mode not in MODES:
            choices = ", ".join(map(repr, MODES))
            raise ValueError(f"S3Volume mode must be one of {choices}, got {self.mode!r}")
        if self.mode == "copy" and not self.read_only:
            raise ValueError(
                "S3Volume mode='copy' is read-only: a copy taken at start does not upload what tasks write. "
                "Use read_only=True, or mode='mount' (s3fs-fuse uploads files when closed)"
            )

    @property
    def key_prefix(self) -> str:
        """The prefix without leading or trailing slashes (``"datasets"``; ``""`` for the whole bucket)."""
        return self.prefix.strip("/")

    @property
    def source(self) -> str:
        """``s3://bucket/prefix/``, for messages."""
        return f"s3://{self.bucket}/{self.key_prefix + '/' if self.key_prefix else ''}"


def _has_control(text: str) -> bool:
    return any(ord(char) < 32 or ord(char) == 127 for char in text)


def check_volumes(volumes: Sequence[S3Volume] | None, owner: str = "ComputePool") -> tuple[S3Volume, ...]:
    """The pool's volumes as a tuple, or a clear error: each a `S3Volume`, no mount path given twice, none inside
    another (a mount would hide the other one's directory)."""
    if volumes is None:
        return ()
    if isinstance(volumes, S3Volume):
        raise TypeError(f"{owner}(volume=...) takes a list of volumes: write volume=[{volumes!r}]")
    if isinstance(volumes, str | bytes):
        raise TypeError(f"{owner}(volume=...) takes a list of sky.S3Volume, got {volumes!r}")
    result = tuple(volumes)
    for volume in result:
        if not isinstance(volume, S3Volume):
            raise TypeError(f"{owner}(volume=...) entries must be sky.S3Volume, got {type(volume).__name__}")
    paths = sorted(v.mount_path for v in result)
    for first, second in itertools.pairwise(paths):
        if first == second:
            raise ValueError(f"{owner}(volume=...): two volumes are mounted at {first!r}")
        if second.startswith(first + "/"):
            raise ValueError(f"{owner}(volume=...): {second!r} is inside {first!r}; mount them side by side")
    return result
