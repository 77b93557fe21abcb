"""A node whose client goes silent stops itself once its lease runs out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from proc_utils import process_exists, wait_gone


def _start_client(tmp_path: Path, body: str) -> tuple[subprocess.Popen[str], set[int]]:
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    client = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    assert client.stdout is not None
    pids = {int(p) for p in client.stdout.readline().split()}
    assert len(pids) == 2 and all(process_exists(p) for p in pids)
    return client, pids


def test_workers_of_a_frozen_client_exit_after_the_lease(tmp_path: Path) -> None:
    """SIGSTOP keeps the client's pipes open: only the lease can tell the nodes it is gone."""
    client, pids = _start_client(
        tmp_path,
        """
        import time
        import skyward as sky

        with sky.ComputePool(nodes=2, lease=2.0) as pool:
            print(" ".join(str(n.pid) for n in pool.nodes), flush=True)
            time.sleep(120)
        """,
    )
    try:
        time.sleep(3.0)  # longer than the lease: heartbeats keep the nodes alive meanwhile
        assert all(process_exists(p) for p in pids), "a live client's nodes must not expire"
        client.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        assert wait_gone(pids, timeout=10) == set(), "nodes outlived their silent client"
        assert time.monotonic() - frozen < 2.0 + 3.0
    finally:
        client.kill()
        client.wait()
