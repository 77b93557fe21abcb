"""The dashboard's one page: `static/index.html` with its script and style put inline (read once)."""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def html() -> str:
    static = resources.files("skyward.dashboard") / "static"
    text = (static / "index.html").read_text(encoding="utf-8")
    style = (static / "dashboard.css").read_text(encoding="utf-8")
    script = (static / "dashboard.js").read_text(encoding="utf-8")
    return text.replace("/*STYLE*/", style).replace("/*SCRIPT*/", script)
