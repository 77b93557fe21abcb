"""Fuzzing the authentication layer: derived certificates, the TLS door of a live node, capped decompression."""

from __future__ import annotations

import os
import socket
import string

import lz4.frame
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import skyward as sky
from skyward import certificates, wire
from skyward.agent_config import AgentConfig
from skyward.ioloop import shared_loop

secrets_ = st.binary(min_size=16, max_size=64)
names = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=30).filter(
    lambda n: n != certificates.CLIENT
)


def _issued_by(cert_pem: str, ca_pem: str) -> bool:
    cert, ca = (
        x509.load_pem_x509_certificate(cert_pem.encode()),
        x509.load_pem_x509_certificate(ca_pem.encode()),
    )
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@settings(max_examples=40, deadline=None)
@given(secret=secrets_, other_secret=secrets_, name=names, other_name=names)
def test_each_certificate_verifies_against_its_own_ca_only(secret, other_secret, name, other_name) -> None:  # type: ignore[no-untyped-def]
    node_cert, _ = certificates.node_leaf(secret, name)
    client_cert, _ = certificates.client_leaf(secret)
    assert _issued_by(node_cert, certificates.node_ca(secret, name))
    assert _issued_by(client_cert, certificates.client_ca(secret))
    # A node cannot pass for the client, nor the client's CA vouch for a node.
    assert not _issued_by(node_cert, certificates.client_ca(secret))
    assert not _issued_by(client_cert, certificates.node_ca(secret, name))
    if other_name != name:  # nor one node for another
        assert not _issued_by(node_cert, certificates.node_ca(secret, other_name))
    if other_secret != secret:  # nor another pool's node for this pool's
        assert not _issued_by(
            certificates.node_leaf(other_secret, name)[0], certificates.node_ca(secret, name)
        )


@settings(max_examples=25, deadline=None)
@given(secret=secrets_, name=names)
def test_a_node_gets_its_own_key_and_nothing_of_the_secret(secret, name) -> None:  # type: ignore[no-untyped-def]
    text = AgentConfig.for_node(secret, name).encode()
    assert secret.hex() not in text and certificates.client_leaf(secret)[1] not in text
    assert AgentConfig.decode(text).tls.key == certificates.node_leaf(secret, name)[1]


@settings(max_examples=200, deadline=None)
@given(size=st.integers(min_value=0, max_value=1 << 16), cap=st.integers(min_value=0, max_value=1 << 16))
def test_capped_decompression_returns_all_or_refuses(size: int, cap: int) -> None:
    body = b"\x00" * size
    framed = b"\x01" + lz4.frame.compress(body)
    if size <= cap:
        assert wire.unframe(framed, max_size=cap) == body
    else:
        with pytest.raises(wire.WireError):
            wire.unframe(framed, max_size=cap)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(max_size=4096),
    # A TLS record header (handshake, TLS 1.2) then garbage: past the first byte a parser may trust.
    st.binary(max_size=2048).map(lambda b: b"\x16\x03\x01" + len(b).to_bytes(2, "big") + b),
))  # fmt: skip
def test_garbage_at_the_tls_door_leaves_the_node_serving(live_node, data: bytes) -> None:  # type: ignore[no-untyped-def]
    pool, link = live_node
    port = pool._deployment.nodes[0].port  # type: ignore[union-attr]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        sock.settimeout(0.5)
        try:
            sock.recv(4096)
        except OSError:
            pass
    assert shared_loop().run(link.heartbeat()).result(timeout=30) is True


def test_the_fuzzed_node_still_runs_real_work(live_node) -> None:  # type: ignore[no-untyped-def]
    pool, _ = live_node

    @sky.compute
    def pid() -> int:
        return os.getpid()

    assert pid() >> pool == pool.nodes[0].pid
