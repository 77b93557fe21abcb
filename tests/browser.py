"""Loading a page in a real browser: Debian's chromium, headless (installed by .ci/run; tests skip without it)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile

import pytest


def chromium() -> str:
    """The chromium executable, or a clean skip when it cannot be installed here."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")


def _run(url: str, *extra: str, budget_ms: int = 4000) -> str:
    with tempfile.TemporaryDirectory(prefix="skyward-chromium-") as profile:
        done = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *extra, url],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def rendered_dom(url: str, budget_ms: int = 4000) -> str:
    """The page's DOM after its scripts ran for `budget_ms` of virtual time."""
    return _run(url, "--dump-dom", budget_ms=budget_ms)


def screenshot(url: str, path: str, size: str = "1400,1100", budget_ms: int = 4000) -> None:
    _run(url, f"--screenshot={path}", f"--window-size={size}", "--hide-scrollbars", budget_ms=budget_ms)


def node_rows(dom: str) -> dict[str, dict[str, str]]:
    """The dashboard's nodes table as rendered: node name -> its done, failed and threads cells and
    its state."""
    rows = {}
    for match in re.finditer(r'<tr class="[^"]*" data-node="([^"]+)">(.*?)</tr>', dom, re.DOTALL):
        cells = dict(
            re.findall(r'<td class="(?:num )?(done|failed|threads|state[^"]*)">([^<]*)</td>', match.group(2))
        )
        state = next((value for key, value in cells.items() if key.startswith("state")), "")
        rows[match.group(1)] = {
            "done": cells.get("done", ""),
            "failed": cells.get("failed", ""),
            "state": state,
            "threads": cells.get("threads", ""),
        }
    return rows
