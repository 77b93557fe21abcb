"""Fixtures of the Verda and VastAI provider tests: the sshd lab's isolated hosts as the clouds' instances,
fakes of the clouds' APIs on 127.0.0.1, and a guard that lets no connection leave this machine."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ssh"))  # the sshd lab of the SSH tests

from network_guard import NetworkGuard, guarded_network
from sshd_lab import Lab, netns_unavailable_reason, unavailable_reason


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "real_cloud: rents real machines (opt-in, with credentials; costs money)"
    )


@pytest.fixture(autouse=True)
def network_guard(request: pytest.FixtureRequest) -> Iterator[NetworkGuard]:
    if request.node.get_closest_marker("real_cloud") is not None:
        yield NetworkGuard()  # the opt-in tests talk to the real APIs (and only when asked to)
        return
    with guarded_network() as guard:
        yield guard


@pytest.fixture(scope="session")
def cloud_lab() -> Iterator[Lab]:
    """Two isolated hosts (own network namespace, sshd on port 22 of their veth address, no package index):
    what a cloud's instances look like from here."""
    reason = unavailable_reason() or netns_unavailable_reason()
    if reason:
        pytest.skip(reason)
    lab = Lab()
    previous_cache = os.environ.get("SKYWARD_CACHE_DIR")
    os.environ["SKYWARD_CACHE_DIR"] = str(lab.root / "client-cache")  # wheels built and fetched once
    try:
        lab.add_isolated_host("node-a")
        lab.add_isolated_host("node-b")
        yield lab
    finally:
        if previous_cache is None:
            os.environ.pop("SKYWARD_CACHE_DIR", None)
        else:
            os.environ["SKYWARD_CACHE_DIR"] = previous_cache
        lab.close()


@pytest.fixture
def lab_keys(cloud_lab: Lab) -> Iterator[Lab]:
    """The lab, with its ``authorized_keys`` restored after the test (the fakes add the pools' keys to it)."""
    original = cloud_lab.authorized_keys.read_text()
    yield cloud_lab
    cloud_lab.authorized_keys.write_text(original)


@pytest.fixture(autouse=True)
def _no_teardown_left_running() -> Iterator[None]:
    """Teardown runs in a thread of its own: by the end of a test it must have finished."""
    yield
    stray = [t.name for t in threading.enumerate() if t.name.startswith("skyward-teardown-")]
    assert not stray, f"teardown threads still running: {stray}"
