"""The cluster CA: one self-signed EC key pair per cluster that signs every host's certificate.

Its fingerprint for a joining host is `spki_sha256`: the sha256 of the certificate's public key
(SubjectPublicKeyInfo DER), as kubeadm's discovery hash, carried in the join token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from corral.pki import pem

CA_VALIDITY = timedelta(days=3653)  # ten years
# Certificates start an hour early: a host whose clock is a little behind still accepts them.
BACKDATE = timedelta(hours=1)


@dataclass(frozen=True)
class CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def ca_common_name(cluster: str) -> str:
    return f"Corral cluster {cluster}"


def make_ca(cluster: str, now: datetime | None = None,
            validity: timedelta = CA_VALIDITY) -> CA:
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_common_name(cluster))])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        # A CA for end-entity certificates only: it signs no intermediate CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return CA(key, cert)


def write_ca(ca: CA, cert_path: Path, key_path: Path) -> None:
    pem.write_key(key_path, ca.key)
    pem.write_cert(cert_path, ca.cert)


def load_ca(cert_path: Path, key_path: Path) -> CA:
    ca = CA(pem.load_key(key_path), pem.load_cert(cert_path))
    if ca.key.public_key() != ca.cert.public_key():
        raise pem.PEMError(f"{key_path}: not the key of the CA certificate {cert_path}")
    return ca


def load_ca_cert(cert_path: Path) -> x509.Certificate:
    """The CA certificate alone: what every host and witness has (the key only full hosts)."""
    return pem.load_cert(cert_path)


def spki_sha256(cert: x509.Certificate) -> str:
    """Hex sha256 of the certificate's SubjectPublicKeyInfo DER: the CA hash of a join token."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()
