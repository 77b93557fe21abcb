"""The certificates of a pool, derived from its secret (see `skyward.credentials` for who holds which).

Keys are derived deterministically from the secret and a label (HKDF-style, HMAC-SHA512), so the same node name
always gets the same key; certificates are made once per process and cached. EC P-256, SHA-256 signatures.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The order of the P-256 group: private values are taken modulo it (minus one, plus one: never zero).
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
# Wide enough for the clocks of remote machines to disagree with ours, long enough for any pool.
_VALID_BEFORE = datetime.timedelta(days=1)
_VALID_FOR = datetime.timedelta(days=366)
CLIENT = "skyward-client"


def node_leaf(secret: bytes, node_name: str) -> tuple[str, str]:
    """Node `node_name`'s certificate and private key (PEM), signed by that node's own CA."""
    if node_name == CLIENT:
        raise ValueError(f"{CLIENT!r} is reserved for the client")
    return _leaf(secret, node_name)


def client_leaf(secret: bytes) -> tuple[str, str]:
    """The client's certificate and private key (PEM), signed by the client CA."""
    return _leaf(secret, CLIENT)


def node_ca(secret: bytes, node_name: str) -> str:
    """The certificate (PEM) of the CA that signs node `node_name`'s certificate and nothing else."""
    if node_name == CLIENT:
        raise ValueError(f"{CLIENT!r} is reserved for the client")
    return _ca(secret, node_name)[0]


def client_ca(secret: bytes) -> str:
    """The certificate (PEM) of the CA that signs the client's certificate and nothing else."""
    return _ca(secret, CLIENT)[0]


# --- derivation ------------------------------------------------------------------------------------------------------------


def _derived_key(secret: bytes, *labels: str) -> ec.EllipticCurvePrivateKey:
    """An EC P-256 key determined by the secret and the labels (an HKDF-style expansion with HMAC-SHA512)."""
    info = "\x00".join(("skyward-tls-key-v1", *labels)).encode()
    value = int.from_bytes(hmac.new(secret, info, hashlib.sha512).digest(), "big")
    return ec.derive_private_key(value % (_P256_ORDER - 1) + 1, ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _builder(subject: str, issuer: str, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _VALID_BEFORE)
        .not_valid_after(now + _VALID_FOR)
    )


# Cached: a CA certificate must be the same object for the leaf it signs and for whoever verifies against it.
@lru_cache(maxsize=1024)
def _ca(secret: bytes, owner: str) -> tuple[str, ec.EllipticCurvePrivateKey]:
    """The CA of `owner` (a node's name, or the client): its certificate (PEM) and key (kept in this process)."""
    key = _derived_key(secret, "ca", owner)
    subject = f"{owner} CA"
    usage = x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
    )  # fmt: skip
    cert = (
        _builder(subject, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key


@lru_cache(maxsize=1024)
def _leaf(secret: bytes, owner: str) -> tuple[str, str]:
    ca_key = _ca(secret, owner)[1]
    key = _derived_key(secret, "leaf", owner)
    cert = (
        _builder(owner, f"{owner} CA", key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(owner)]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key)
