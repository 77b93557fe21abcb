"""What goes wrong before a node works: host keys, credentials, unreachable hosts, bad images, Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from sshd_lab import Lab, free_port, node_python, wait_gone

import skyward as sky
from skyward.bootstrap import BootstrapEvent
from skyward.ioloop import shared_loop
from skyward.providers.ssh_connect import HostSpec, connect


def launch_error(provider: sky.SSH, nodes: int = 1, **pool: object) -> tuple[str, float]:
    started = time.monotonic()
    with (
        pytest.raises(sky.ProvisionError) as failure,
        sky.ComputePool(provider=provider, nodes=nodes, **pool),
    ):  # type: ignore[arg-type]
        pass
    return str(failure.value), time.monotonic() - started


def connect_as(provider: sky.SSH, host: str):  # type: ignore[no-untyped-def]
    """The connection step of `provider`'s launch, alone."""
    return connect(
        HostSpec.parse(host),
        key_file=provider.key_file,
        known_hosts=provider.known_hosts,
        verify_host_keys=provider.verify_host_keys,
        timeout=provider.connect_timeout,
    )


def can_connect(provider: sky.SSH, host: str) -> bool:
    async def attempt() -> bool:
        conn = await connect_as(provider, host)
        conn.close()
        return True

    return shared_loop().run(attempt()).result(timeout=30)


def test_unknown_host_key_is_refused_by_default(lab: Lab, ssh_provider, client_home: Path) -> None:
    alpha = lab.hosts["alpha"]
    # known_hosts=None means ~/.ssh/known_hosts, and this $HOME has none: the key is unknown.
    message, elapsed = launch_error(ssh_provider("alpha", known_hosts=None))
    assert (
        alpha.spec in message and "host key is not trusted" in message and "verify_host_keys=False" in message
    )
    assert elapsed < 10

    # Once the key is in ~/.ssh/known_hosts, the same provider connects.
    (client_home / ".ssh").mkdir()
    (client_home / ".ssh" / "known_hosts").write_text(alpha.known_hosts_line() + "\n")
    assert can_connect(ssh_provider("alpha", known_hosts=None), alpha.spec)


def test_a_host_key_other_than_the_known_one_is_refused(lab: Lab, ssh_provider, tmp_path: Path) -> None:
    alpha, beta = lab.hosts["alpha"], lab.hosts["beta"]
    # The file knows alpha's address, but with beta's key: what a man in the middle would look like.
    known = tmp_path / "known_hosts"
    known.write_text(f"{alpha.address} {beta.host_key_pub}\n")
    message, _ = launch_error(ssh_provider("alpha", known_hosts=str(known)))
    assert "host key is not trusted" in message and alpha.spec in message


def test_verification_can_be_turned_off_explicitly(lab: Lab, ssh_provider, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(sky.ProvisionError, match="host key is not trusted"):
        can_connect(ssh_provider("beta", known_hosts=str(empty)), lab.hosts["beta"].spec)
    assert can_connect(
        ssh_provider("beta", known_hosts=str(empty), verify_host_keys=False), lab.hosts["beta"].spec
    )


def test_bad_credentials_fail_fast_with_a_clear_message(lab: Lab, ssh_provider) -> None:
    message, elapsed = launch_error(ssh_provider("alpha", key_file=str(lab.stranger_key)))
    assert lab.hosts["alpha"].spec in message and "authentication failed" in message
    assert "root" in message and str(lab.stranger_key) in message
    assert elapsed < 10


def test_refused_connection_fails_fast(lab: Lab) -> None:
    port = free_port()  # nothing listens there
    provider = sky.SSH(
        hosts=[f"root@127.0.0.1:{port}"],
        key_file=str(lab.client_key),
        known_hosts=str(lab.known_hosts),
        python=node_python(),
        quiet=True,
    )
    message, elapsed = launch_error(provider)
    assert (
        f"root@127.0.0.1:{port}" in message and "cannot connect" in message and "refused" in message.lower()
    )
    assert elapsed < 5


def test_a_host_that_never_answers_times_out(lab: Lab) -> None:
    # A TCP listener that accepts and never speaks SSH: a wedged or firewalled-by-proxy host.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    try:
        provider = sky.SSH(
            hosts=[f"root@127.0.0.1:{port}"],
            key_file=str(lab.client_key),
            known_hosts=str(lab.known_hosts),
            python=node_python(),
            connect_timeout=2,
            quiet=True,
        )
        message, elapsed = launch_error(provider)
    finally:
        server.close()
        for conn in accepted:
            conn.close()
    assert f"127.0.0.1:{port}" in message and "no SSH answer within 2s" in message
    assert elapsed < 8


def test_more_nodes_than_hosts_is_a_clear_error(lab: Lab, ssh_provider, events) -> None:
    message, _elapsed = launch_error(ssh_provider("alpha", "beta"), nodes=3)
    assert "3 nodes" in message and "lists 2" in message
    assert events.events == []  # refused before connecting anywhere


def test_an_interpreter_missing_on_the_node_is_named(lab: Lab, ssh_provider) -> None:
    message, _ = launch_error(ssh_provider("gamma", python="python3.99-nowhere"))
    assert lab.hosts["gamma"].spec in message and "python3.99-nowhere" in message and "not found" in message


def test_a_failed_bootstrap_names_the_host_and_shows_its_log(lab: Lab, ssh_provider) -> None:
    image = sky.Image(pip=["skyward-no-such-package-zz9==1.0"])
    gamma = lab.hosts["gamma"]
    message, _ = launch_error(ssh_provider("gamma", offline=False), image=image)
    assert gamma.spec in message and "bootstrap" in message
    assert "skyward-no-such-package-zz9" in message  # the tail of the node's install log
    assert f"{gamma.home}/.skyward/envs/" in message
    # Nothing half-made is taken for an environment later.
    key = re.search(r"environment ([0-9a-f]+) failed", message)
    assert key is not None
    assert not (gamma.home / ".skyward" / "envs" / key.group(1) / ".skyward-ready").exists()


def test_interrupt_during_launch_leaves_nothing_running(lab: Lab, ssh_provider) -> None:
    """Ctrl-C while the workers start: launch stops what it started and the interrupt reaches the caller."""
    delta = lab.hosts["delta"]
    # Warm the environment so the interrupt lands while workers start, not during an install.
    with sky.ComputePool(provider=ssh_provider("delta", "delta", quiet=True), nodes=2):
        pass
    before = set(lab.lab_processes())

    def interrupt_on_start(event: BootstrapEvent) -> None:
        if event.phase == "start":
            os.kill(os.getpid(), signal.SIGINT)

    provider = ssh_provider("delta", "delta", progress=interrupt_on_start)
    with pytest.raises(KeyboardInterrupt), sky.ComputePool(provider=provider, nodes=2):
        pytest.fail("the pool must not open after Ctrl-C")
    leftovers = set(lab.lab_processes()) - before
    assert not wait_gone(leftovers), "processes of the interrupted launch are still running"
    assert not [pid for pid in lab.lab_processes() if str(delta.home).encode() in _cmdline(pid)]


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_connect_runs_on_the_shared_loop_without_blocking_it(lab: Lab, ssh_provider) -> None:
    """While a host is slow to answer, the I/O loop keeps serving other work."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    provider = sky.SSH(
        hosts=[f"root@127.0.0.1:{server.getsockname()[1]}"],
        key_file=str(lab.client_key),
        known_hosts=str(lab.known_hosts),
        python=node_python(),
        connect_timeout=2,
        quiet=True,
    )
    io = shared_loop()
    try:
        pending = io.run(connect_as(provider, provider.hosts[0]))
        started = time.monotonic()
        assert io.run(asyncio.sleep(0, result="alive")).result(timeout=1) == "alive"
        assert time.monotonic() - started < 0.5
        with pytest.raises(sky.ProvisionError):
            pending.result(timeout=10)
    finally:
        server.close()


def test_a_node_python_of_another_minor_version_is_refused(lab: Lab, ssh_provider) -> None:
    other = next(
        (
            path
            for path in ("/usr/bin/python3.11", "/usr/bin/python3.13", "/usr/bin/python3")
            if os.path.exists(path) and os.path.realpath(path) != os.path.realpath(node_python())
        ),
        None,
    )
    if other is None:
        pytest.skip("no Python of another minor version on this machine")
    message, _ = launch_error(ssh_provider("gamma", python=other))
    assert lab.hosts["gamma"].spec in message and "same minor version" in message


def test_a_worker_that_dies_at_start_is_reported_with_its_output(lab: Lab, ssh_provider) -> None:
    # The worker starts isolated (-I: PYTHON* variables of image.env do not configure it), but its environment's
    # site-packages still run their .pth files: a broken one ends the worker before it listens.
    with sky.ComputePool(provider=ssh_provider("delta")):
        pass  # the environment exists
    planted = [
        site / "zz_broken_by_test.pth"
        for site in (lab.hosts["delta"].home / ".skyward" / "envs").glob("*/lib/python*/site-packages")
    ]
    assert planted
    try:
        for path in planted:
            path.write_text(
                "import sys; sys.exit('the worker died at start: broken .pth planted by the test')\n"
            )
        message, elapsed = launch_error(ssh_provider("delta"))
    finally:
        for path in planted:
            path.unlink(missing_ok=True)
    assert lab.hosts["delta"].spec in message and "exited with status" in message
    assert "broken .pth planted by the test" in message, message
    assert elapsed < 60
