"""PEM files of keys and certificates: keys are written readable by their owner only."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


class PEMError(ValueError):
    """A PEM file that does not hold what it should."""


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write whole or not at all, with the mode set before a byte lands: a crash leaves the
    old file, and a key is never readable by others, not even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    _write(path, key_pem(key), 0o600)


def write_cert(path: Path, cert: x509.Certificate) -> None:
    _write(path, cert_pem(cert), 0o644)


def key_from_pem(data: bytes, where: str = "key") -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as e:
        raise PEMError(f"{where}: not a PEM private key ({e})") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PEMError(f"{where}: not an EC private key")
    return key


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    return key_from_pem(path.read_bytes(), str(path))


def cert_from_pem(data: bytes, where: str = "certificate") -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as e:
        raise PEMError(f"{where}: not a PEM certificate ({e})") from e


def load_cert(path: Path) -> x509.Certificate:
    return cert_from_pem(path.read_bytes(), str(path))
