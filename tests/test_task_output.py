"""What tasks print reaches the client whole: one line never holds two slots' text, stdout goes to stdout and
stderr (warnings, tracebacks a task prints) to stderr, each line prefixed with its node. Real Local pools."""

from __future__ import annotations

import os
import re
import sys
import threading
import warnings

import pytest

import skyward as sky


def chatty(index: int) -> int:
    """Write each line in many small pieces, as print(a, b, c) and progress code do, while other slots write."""
    for round_ in range(20):
        for piece in (f"task {index}", " round ", str(round_), " pid ", str(os.getpid())):
            sys.stdout.write(piece)
        sys.stdout.write("\n")
        print("err of task", index, "round", round_, file=sys.stderr)
    warnings.warn(f"careful in task {index}", UserWarning, stacklevel=1)
    sys.stdout.write(f"last of task {index} without a newline")
    return os.getpid()


LINE = re.compile(r"^\[(?P<node>\S+-node-\d)\] task (?P<task>\d+) round (?P<round>\d+) pid (?P<pid>\d+)$")
ERR = re.compile(r"^\[(?P<node>\S+-node-\d)\] err of task (?P<task>\d+) round (?P<round>\d+)$")


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_lines_stay_whole_and_streams_stay_apart(executor: str, capfd: pytest.CaptureFixture[str]) -> None:
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=3, executor=executor)) as pool:
        pids = set(pool.map(chatty, range(12)))
        names = {node.name for node in pool.nodes}
    out, err = capfd.readouterr()
    assert os.getpid() not in pids
    task_lines = [line for line in out.splitlines() if " round " in line]
    seen = {(m["task"], m["round"]) for m in map(LINE.match, task_lines) if m}
    missing = sorted({(str(t), str(r)) for t in range(12) for r in range(20)} - seen)
    assert len(task_lines) == 12 * 20, (
        len(task_lines),
        missing,
        [x for x in task_lines if not LINE.match(x)],
    )
    for line in task_lines:
        match = LINE.match(line)
        assert match, f"a line was cut into or merged: {line!r}"
        assert match["node"] in names and int(match["pid"]) in pids
    last_lines = [line for line in out.splitlines() if "without a newline" in line]
    assert len(last_lines) == 12 and all(
        re.match(r"^\[\S+\] last of task \d+ without a newline$", x) for x in last_lines
    )
    err_lines = [line for line in err.splitlines() if "err of task" in line]
    assert len(err_lines) == 12 * 20 and all(ERR.match(line) for line in err_lines), err[-2000:]
    assert "err of task" not in out and not any(LINE.match(line) for line in err.splitlines())
    assert sum("UserWarning: careful in task" in line for line in err.splitlines()) == 12
    assert "careful in task" not in out


def test_the_client_side_split(capsys: pytest.CaptureFixture[str]) -> None:
    from skyward.providers.agent_session import AgentOutput
    from skyward.worker.task_output import STDERR_MARK

    output = AgentOutput("node-0", forward=True)
    output.feed("to stdout", expect_ready=False)
    output.feed(STDERR_MARK + "to stderr", expect_ready=False)
    out, err = capsys.readouterr()
    assert out == "[node-0] to stdout\n" and err == "[node-0] to stderr\n"
    assert list(output.tail) == ["to stdout", "to stderr"]


def test_a_line_is_written_only_when_whole() -> None:
    import io

    from skyward.worker.task_output import STDERR_MARK, LineWriter

    sink = io.BytesIO()
    writer = LineWriter(sink, STDERR_MARK, "<test>")  # type: ignore[arg-type]
    other = threading.Thread(target=lambda: (writer.write("other thread's "), writer.write("line\n")))
    writer.write("this thread's ")
    other.start()
    other.join()
    writer.write("line\n")
    assert sink.getvalue().decode().splitlines() == [
        STDERR_MARK + "other thread's line",
        STDERR_MARK + "this thread's line",
    ]
