"""Why a volume did not mount, in words, from s3fs's log (which holds S3's error codes)."""

from __future__ import annotations

from skyward.volumes.spec import S3Volume

_TAIL_LINES = 12

# (markers in s3fs's log, the explanation); the first that matches wins.
_CAUSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("NoSuchBucket",), "the bucket {bucket!r} does not exist at {endpoint}"),
    (
        ("could not determine how to establish security credentials",),
        "no credentials reached s3fs ({credentials} credentials)",
    ),
    (
        ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "ExpiredToken"),
        "the credentials were refused ({credentials} credentials)",
    ),
    (("AccessDenied",), "access was denied: the credentials ({credentials}) may not read {source}"),
    (
        (
            "Couldn't connect",
            "Could not connect",
            "Connection refused",
            "Could not resolve",
            "Timeout was reached",
        ),
        "the node cannot reach {endpoint}",
    ),
)


def explain(volume: S3Volume, log_path: str) -> str:
    """A sentence naming the likely cause, then the tail of s3fs's log."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    text = "\n".join(lines)
    endpoint = volume.endpoint_url or "AWS S3"
    for markers, sentence in _CAUSES:
        if any(marker in text for marker in markers):
            cause = sentence.format(
                bucket=volume.bucket, endpoint=endpoint, credentials=volume.credentials, source=volume.source
            )
            break
    else:
        cause = "s3fs gave no known reason"
    tail = "\n".join(lines[-_TAIL_LINES:]) or "(s3fs printed nothing)"
    return f"Likely cause: {cause}. s3fs's log:\n{tail}"
