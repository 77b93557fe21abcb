"""Fixtures of the SSH provider tests: one lab of real sshd hosts per session (see `sshd_lab`)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sshd_lab import Lab, netns_unavailable_reason, node_python, unavailable_reason

import skyward as sky
from skyward.bootstrap import BootstrapEvent
from skyward.providers.ssh import build_project_wheels


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """Hosts: ``alpha`` and ``beta`` isolated in network namespaces (no index: the offline path), ``gamma`` on
    127.0.0.1 (reaches what this machine reaches), ``alpha-nfs`` and ``beta-nfs`` (second sshds in alpha's and
    beta's namespaces) sharing one home directory like NFS-mounted homes do."""
    reason = unavailable_reason() or netns_unavailable_reason()
    if reason:
        pytest.skip(reason)
    lab = Lab()
    previous_cache = os.environ.get("SKYWARD_CACHE_DIR")
    # A cache of the session: the skyward wheel is built once per session, the offline wheels fetched once.
    os.environ["SKYWARD_CACHE_DIR"] = str(lab.root / "client-cache")
    try:
        build_project_wheels()  # skyward and its plugins: built once for the whole session
        alpha = lab.add_isolated_host("alpha")
        beta = lab.add_isolated_host("beta")
        lab.add_loopback_host("gamma")
        lab.add_loopback_host("delta")
        shared_home = lab.root / "shared-home"
        lab.add_sshd_in(alpha, "alpha-nfs", shared_home, port=2222)
        lab.add_sshd_in(beta, "beta-nfs", shared_home, port=2222)
        yield lab
    finally:
        if previous_cache is None:
            os.environ.pop("SKYWARD_CACHE_DIR", None)
        else:
            os.environ["SKYWARD_CACHE_DIR"] = previous_cache
        lab.close()


class EventLog:
    """Collects the bootstrap events of pools (the provider calls it on skyward's I/O thread)."""

    def __init__(self) -> None:
        self.events: list[BootstrapEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: BootstrapEvent) -> None:
        with self._lock:
            self.events.append(event)

    def phases(self, host: str) -> list[str]:
        return [e.phase for e in self.events if e.host == host]

    def of(self, phase: str) -> list[BootstrapEvent]:
        return [e for e in self.events if e.phase == phase]

    def clear(self) -> None:
        with self._lock:
            self.events.clear()


@pytest.fixture
def events() -> EventLog:
    return EventLog()


@pytest.fixture
def ssh_provider(lab: Lab, events: EventLog):  # type: ignore[no-untyped-def]
    """``ssh_provider(*host_names, **options)``: a `sky.SSH` over lab hosts with the lab's key and known hosts."""

    def make(*names: str, **options: Any) -> sky.SSH:
        settings: dict[str, Any] = {
            "key_file": str(lab.client_key),
            "known_hosts": str(lab.known_hosts),
            "python": node_python(),
            "progress": events,
            "connect_timeout": 10.0,
        }
        settings.update(options)
        return sky.SSH(hosts=[lab.hosts[name].spec for name in names], **settings)

    return make


@pytest.fixture
def client_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``$HOME`` for the client, so that ``~/.ssh/known_hosts`` is one the test controls."""
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path
