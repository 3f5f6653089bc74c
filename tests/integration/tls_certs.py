"""Test certificates as the cluster's PKI makes them: a CA, and host certificates usable as
server and client certificates (CN = the name, SANs = its addresses, 127.0.0.1 and the DNS
names TLS clients verify against)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey


def _write_key(key: Key, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cert: Path, key_path: Path, cn: str = "corral-test-ca") -> tuple[x509.Certificate,
                                                                             Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
          .public_key(key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(key, hashes.SHA256()))
    cert.parent.mkdir(parents=True, exist_ok=True)
    cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return ca, key


def make_host_cert(ca: tuple[x509.Certificate, Key], cn: str, cert: Path, key_path: Path,
                   ips: tuple[str, ...] = ("127.0.0.1",)) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in (cn, "corral-etcd", "corral-api")]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    signed = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca[0].subject)
              .public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName(sans), critical=False)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                    ExtendedKeyUsageOID.CLIENT_AUTH]),
                             critical=False)
              .sign(ca[1], hashes.SHA256()))
    cert.parent.mkdir(parents=True, exist_ok=True)
    cert.write_bytes(signed.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
