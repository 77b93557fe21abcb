"""Reprs without secrets: credentials in URLs and the values of secret-looking settings become ``***``.

A provider or image printed in a log, a traceback or a notebook must not show the token in
``https://user:token@host/simple`` or the value of ``Image(env={"HF_TOKEN": ...})``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

HIDDEN = "***"
# scheme://userinfo@ : the userinfo (user, or user:password) is dropped whole; a user name can be a token too.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]+)@")
# ?token=... style query parameters.
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&](?:[A-Za-z0-9_-]*(?:token|secret|password|passwd|key|signature|sig|auth)[A-Za-z0-9_-]*))="
    r"(?P<value>[^&#\s]*)",
    re.IGNORECASE,
)
_SECRET_NAME = re.compile(
    r"token|secret|passw|pwd|credential|auth|api_?key|access_?key|private", re.IGNORECASE
)


def redact_text(text: str) -> str:
    """`text` with URL credentials and secret query parameters replaced by ``***``."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{HIDDEN}@", text)
    return _SECRET_QUERY.sub(lambda m: f"{m['name']}={HIDDEN}", text)


def is_secret_name(name: str) -> bool:
    """Whether a setting called `name` (an environment variable, an option) likely holds a secret."""
    return bool(_SECRET_NAME.search(name))


def redact(value: Any) -> Any:
    """A copy of `value` fit to print: strings via `redact_text`, mappings with secret-named keys hidden."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: HIDDEN if isinstance(key, str) and is_secret_name(key) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, tuple):
        return tuple(redact(item) for item in value)
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def redacted_repr(obj: Any) -> str:
    """The dataclass repr of `obj` (its ``repr=True`` fields), with every value passed through `redact`."""
    parts = [f"{f.name}={redact(getattr(obj, f.name))!r}" for f in dataclasses.fields(obj) if f.repr]
    return f"{type(obj).__qualname__}({', '.join(parts)})"
