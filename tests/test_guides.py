"""Every guide in examples/guides runs, at its small size, on the Local provider; the docs show those files.

Each guide runs as its own process (as a user runs it) with SKYWARD_EXAMPLE_SMALL=1. Passing means: exit status 0,
and output that shows the work ran in the pool's worker processes, not in the guide's own process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDES = sorted((ROOT / "examples" / "guides").glob("[0-9][0-9]_*.py"))
NODE = re.compile(r"sky-[0-9a-f]{8}-node-\d+")


def run_guide(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SKYWARD_EXAMPLE_SMALL": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("SKYWARD_SSH_HOSTS", None)  # the Local provider, whatever this shell has set
    return subprocess.run(
        [sys.executable, str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def nodes_named(out: str) -> set[str]:
    return set(NODE.findall(out))


def find(pattern: str, text: str) -> re.Match[str]:
    match = re.search(pattern, text)
    assert match is not None, f"no line matches {pattern!r}"
    return match


# --- what each guide prints that shows where its work ran ----------------------------------------------------


def check_01(out: str, err: str) -> None:
    client = int(find(r"client pid (\d+)", out).group(1))
    greeted = {int(pid) for pid in re.findall(r"hello \w+ from sky-\S+ \(pid (\d+)", out)}
    assert len(nodes_named(out)) == 2 and greeted and client not in greeted
    assert "future.result()=144" in out


def check_02(out: str, err: str) -> None:
    ran_on, client = find(r"\(pid (\d+); this client is pid (\d+)\)", out).groups()
    assert ran_on != client
    assert len(nodes_named(out)) >= 2
    assert len(NODE.findall(find(r"many\s+40 calls .*", out).group(0))) == 2  # spread over both nodes
    assert "ZeroDivisionError raised on a node" in out and ", in divide" in out
    find(r"writable\s+shared copy writable: False; sky.writable\(X\): True, mean after centering 0.0", out)
    writer = find(r"on pid (\d+); the client's X is unchanged: X\[:3\] = \[0\. 1\. 2\.\]", out).group(1)
    assert writer != client
    pids = {
        kind: {
            int(pid)
            for pid in find(rf"{kind}\s+4 x count_primes\(\d+\) in [\d.]+s, run by pids \[(.*)\]", out)
            .group(1)
            .split(",")
        }
        for kind in ("thread", "process")
    }
    assert len(pids["thread"]) == 1  # thread slots: one process
    assert len(pids["process"]) == 2  # process slots: one process each
    assert int(client) not in pids["thread"] | pids["process"]


def check_09(out: str, err: str) -> None:
    # The guide prints no pids: plugins/sklearn/tests assert that scikit-learn's fits run in node processes.
    find(r"12 fits on 4 slots", out)
    find(r"held-out accuracy: 0\.\d+", out)


def check_10(out: str, err: str) -> None:
    # The guide itself raises (exit status 1) if a task's pid is not one of the pool's node pids.
    rows = [line for line in out.splitlines() if re.match(r"\s*24 \|", line)]
    assert len(rows) == 2, out
    assert [row.split("|")[3].strip() for row in rows] == ["2", "4"]  # n_jobs=-1 became every slot


def check_11(out: str, err: str) -> None:
    client = find(r"this client is pid (\d+)", out).group(1)
    memory = re.findall(r"memory\s+(first|second) pass .*: ([\d.]+)s on (\{.*\})", out)
    assert [kind for kind, _, _ in memory] == ["first", "second"]
    assert all(len(NODE.findall(where)) == 2 for _, _, where in memory)  # both passes ran on both nodes
    nested = re.findall(r"nested\s+outer on (sky-\S+) pid (\d+); inner \[.*\] in the same process", out)
    assert len(nested) == 4 and all(int(pid) != int(client) for _, pid in nested)
    assert "Using backend SkywardBackend with 4 concurrent workers" in err  # verbose progress, on stderr
    find(r"Done\s+16 out of\s+16", err)
    assert "sum of squares streamed in order: 1240" in out
    order = find(r"completion order: \[(.*)\]", out).group(1)
    assert sorted(int(x) for x in order.split(",")) == list(range(8)) and not order.startswith("0,")


def check_03(out: str, err: str) -> None:
    client = int(find(r"client pid (\d+)", out).group(1))
    mapped = {
        int(p) for p in find(r"map: 100 results, sum 328350, from pids \[(.*)\]", out).group(1).split(",")
    }
    assert len(mapped) == 2 and client not in mapped
    progress = [line for line in err.splitlines() if line.startswith("skyward: pool.map of 100 tasks:")]
    assert len(progress) == 10 and "100/100 done" in progress[-1]
    killed = int(find(r"\(killed: (\d+)\)", out).group(1))
    (warning,) = [line for line in err.splitlines() if line.startswith("WARNING")]
    assert re.fullmatch(
        r"WARNING skyward\.scheduler: node sky-[0-9a-f]{8}-node-0 is down: its worker process died "
        r"\(killed by signal 9 \(SIGKILL\)\); restarting it.*",
        warning,
    ), warning
    find(r"INFO skyward\.recovery: restarted node sky-[0-9a-f]{8}-node-0", err)
    after = {int(p) for p in find(r"after the restart: 4 slots, pids \[(.*)\]", out).group(1).split(",")}
    assert killed in mapped and killed not in after and client not in after and len(after) == 2


CHECKS: dict[str, Callable[[str, str], None]] = {
    "01": check_01,
    "02": check_02,
    "03": check_03,
    "09": check_09,
    "10": check_10,
    "11": check_11,
}


@pytest.mark.parametrize("guide", GUIDES, ids=[g.stem for g in GUIDES])
def test_guide_runs_small_on_local_nodes(guide: Path) -> None:
    done = run_guide(guide)
    assert done.returncode == 0, f"{guide.name} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    check = CHECKS.get(guide.name[:2])
    if check is None:  # a new guide: at least name the nodes it ran on
        assert nodes_named(done.stdout), f"{guide.name} prints nothing that shows where its work ran"
        return
    try:
        check(done.stdout, done.stderr)
    except AssertionError as exc:
        raise AssertionError(f"{guide.name}: unexpected output\n{done.stdout}\n{done.stderr}") from exc


@pytest.mark.parametrize("guide", GUIDES, ids=[g.stem for g in GUIDES])
def test_every_guide_has_a_docs_page_that_includes_the_file(guide: Path) -> None:
    """The docs embed the guide files themselves (pymdownx.snippets), so the docs show what this test runs."""
    include = f'--8<-- "examples/guides/{guide.name}"'
    pages = [page for page in (ROOT / "docs" / "guides").glob("*.md") if include in page.read_text()]
    assert pages, f"no page under docs/guides includes {guide.name} with {include}"
