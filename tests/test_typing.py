"""What a type checker sees of skyward's public API: mypy run on a user's snippet.

The operators carry the function's return type (``square(3) >> pool`` is an ``int``), so a wrong annotation is
flagged; the providers satisfy the `Provider` protocol they are passed as. The packages ship ``py.typed``
(tests/test_packaging.py checks the wheels).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SNIPPET = """
from concurrent.futures import Future

import skyward as sky
from skyward.providers.base import Provider


@sky.compute
def square(x: int) -> int:
    return x * x


with sky.ComputePool(nodes=1) as pool:
    fine: int = square(3) >> pool
    also_fine: Future[int] = square(3) > pool
    each: list[int] = square(3) @ pool
    wrong: str = square(3) >> pool  # flagged
    wrong_future: Future[str] = square(3) > pool  # flagged
    wrong_list: list[str] = square(3) @ pool  # flagged
    bad_argument = square("three")  # flagged

providers: list[Provider] = [sky.Local(), sky.SSH(hosts=["h"]), sky.AWS()]
"""


def test_mypy_flags_wrong_result_types_and_accepts_the_providers(tmp_path: Path) -> None:
    user = tmp_path / "user_code.py"
    user.write_text(SNIPPET)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--follow-imports=silent",  # judge the user's file; skyward's own check is CI's `mypy` run
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            str(user),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    flagged = {
        int(m.group(1)): m.group(2) for m in re.finditer(r"user_code\.py:(\d+): error: (.*)", done.stdout)
    }
    expected = [n for n, line in enumerate(SNIPPET.splitlines(), start=1) if line.endswith("# flagged")]
    assert sorted(flagged) == expected, done.stdout + done.stderr  # and nothing else: the providers pass
    wrong, wrong_future, wrong_list, bad_argument = (flagged[n] for n in expected)
    assert 'expression has type "int", variable has type "str"' in wrong
    assert '"Future[int]", variable has type "Future[str]"' in wrong_future
    assert '"list[int]", variable has type "list[str]"' in wrong_list
    assert '"str"' in bad_argument and '"int"' in bad_argument
