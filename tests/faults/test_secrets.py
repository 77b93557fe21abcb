"""The pool's secret and the nodes' keys never appear in what the client or the nodes print, nor on a command line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import skyward as sky
from skyward.credentials import node_material


@sky.compute
def chatty() -> str:
    print("node output", flush=True)
    return open(f"/proc/{os.getpid()}/cmdline", "rb").read().decode(errors="replace")


def test_secret_is_not_printed_nor_on_the_command_line(capfd: pytest.CaptureFixture[str]) -> None:
    with sky.ComputePool(nodes=2) as pool:
        secret_hex = pool._secret.hex()
        keys = [node_material(pool._secret, n.name).key for n in pool.nodes]
        cmdlines = [chatty() >> pool for _ in range(4)]
        environs = [Path(f"/proc/{n.pid}/environ").read_bytes() for n in pool.nodes]
    out = capfd.readouterr()
    assert "node output" in out.out  # the forwarded output was captured: the check below could fail
    key_lines = [line for key in keys for line in key.splitlines() if "PRIVATE KEY" not in line]
    assert key_lines  # the check below could fail
    for text in (out.out, out.err, *cmdlines):
        assert secret_hex not in text
        assert not any(line in text for line in key_lines)
    for environ in environs:
        assert secret_hex.encode() not in environ and pool._secret not in environ
        assert not any(line.encode() in environ for line in key_lines)
