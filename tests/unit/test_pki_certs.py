"""The cluster CA and the host certificates it signs, checked with cryptography's own
verifier: chain, names, key usages, and the requests the signer refuses."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from corral.pki import ca as pki_ca
from corral.pki import certs, pem
from corral.pki.certs import CSRRefused, Identity

HOST = Identity.of("n1", dns=["n1", "corral-etcd", "corral-api"], ips=["198.18.0.1", "127.0.0.1"])


@pytest.fixture(scope="module")
def cluster_ca() -> pki_ca.CA:
    return pki_ca.make_ca("prod")


def verify(ca: pki_ca.CA, cert: x509.Certificate, name: x509.DNSName | x509.IPAddress) -> None:
    verifier = PolicyBuilder().store(Store([ca.cert])).build_server_verifier(name)
    verifier.verify(cert, [])


def test_the_ca_is_a_self_signed_p256_ca_for_ten_years(cluster_ca: pki_ca.CA) -> None:
    cert = cluster_ca.cert
    assert certs.cert_common_name(cert) == "Corral cluster prod"
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    life = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=3650) < life < timedelta(days=3660)


def test_a_signed_host_cert_verifies_for_each_of_its_names(cluster_ca: pki_ca.CA) -> None:
    key = certs.make_key()
    cert = certs.sign(cluster_ca, certs.make_csr(key, HOST), HOST)
    cert.verify_directly_issued_by(cluster_ca.cert)
    assert certs.cert_common_name(cert) == "n1"
    for name in ("corral-etcd", "corral-api", "n1"):
        verify(cluster_ca, cert, x509.DNSName(name))
    for ip in ("127.0.0.1", "198.18.0.1"):
        verify(cluster_ca, cert, x509.IPAddress(ipaddress.ip_address(ip)))
    with pytest.raises(VerificationError):
        verify(cluster_ca, cert, x509.DNSName("n2"))
    with pytest.raises(VerificationError):
        verify(cluster_ca, cert, x509.IPAddress(ipaddress.ip_address("198.18.0.2")))
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.public_key() == key.public_key()
    life = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=5 * 365 - 1) < life <= timedelta(days=5 * 365)


def test_validity_is_the_one_asked_for(cluster_ca: pki_ca.CA) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    _, cert = certs.issue(cluster_ca, HOST, validity=timedelta(days=30), now=now)
    assert cert.not_valid_after_utc == now + timedelta(days=30)
    assert cert.not_valid_before_utc < now


def test_a_cert_of_another_ca_does_not_verify(cluster_ca: pki_ca.CA) -> None:
    _, foreign = certs.issue(pki_ca.make_ca("prod"), HOST)
    with pytest.raises(VerificationError):
        verify(cluster_ca, foreign, x509.DNSName("corral-etcd"))


@pytest.mark.parametrize(("asked", "names"), [
    (Identity.of("n2", dns=HOST.dns, ips=map(str, HOST.ips)), "CN 'n2' is not 'n1'"),
    (Identity.of("n1", dns=[*HOST.dns, "n2"], ips=map(str, HOST.ips)), "DNS names"),
    (Identity.of("n1", dns=["n1"], ips=map(str, HOST.ips)), "DNS names"),
    (Identity.of("n1", dns=HOST.dns, ips=["198.18.0.9", "127.0.0.1"]), "IP addresses"),
    (Identity.of("n1", dns=HOST.dns), "IP addresses"),
])
def test_a_csr_naming_anything_else_is_refused(cluster_ca: pki_ca.CA, asked: Identity,
                                               names: str) -> None:
    csr = certs.make_csr(certs.make_key(), asked)
    with pytest.raises(CSRRefused, match=names):
        certs.sign(cluster_ca, csr, HOST)


def test_a_csr_round_trips_through_pem_and_garbage_is_refused(cluster_ca: pki_ca.CA) -> None:
    csr = certs.csr_from_pem(certs.csr_pem(certs.make_csr(certs.make_key(), HOST)))
    certs.sign(cluster_ca, csr, HOST)
    with pytest.raises(CSRRefused, match="csr: "):
        certs.csr_from_pem(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n")


def test_files_round_trip_and_keys_are_private(tmp_path: Path, cluster_ca: pki_ca.CA) -> None:
    pki_ca.write_ca(cluster_ca, tmp_path / "ca.crt", tmp_path / "ca.key")
    loaded = pki_ca.load_ca(tmp_path / "ca.crt", tmp_path / "ca.key")
    assert loaded.cert == cluster_ca.cert
    assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600
    key, cert = certs.issue(loaded, HOST)
    certs.write_pair(tmp_path / "host.crt", tmp_path / "host.key", cert, key)
    assert stat.S_IMODE((tmp_path / "host.key").stat().st_mode) == 0o600
    assert certs.load_cert(tmp_path / "host.crt") == cert
    assert certs.load_key(tmp_path / "host.key").public_key() == key.public_key()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt", "ca.key", "host.crt",
                                                          "host.key"]


def test_a_ca_key_that_is_not_the_certificates_is_refused(tmp_path: Path,
                                                          cluster_ca: pki_ca.CA) -> None:
    pem.write_cert(tmp_path / "ca.crt", cluster_ca.cert)
    pem.write_key(tmp_path / "ca.key", certs.make_key())
    with pytest.raises(pem.PEMError, match="not the key"):
        pki_ca.load_ca(tmp_path / "ca.crt", tmp_path / "ca.key")


def test_the_ca_hash_is_the_sha256_of_its_public_key_info(cluster_ca: pki_ca.CA) -> None:
    import hashlib

    from cryptography.hazmat.primitives import serialization

    der = cluster_ca.cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert pki_ca.spki_sha256(cluster_ca.cert) == hashlib.sha256(der).hexdigest()
    # Another CA of the same cluster name is another key, so another hash.
    assert pki_ca.spki_sha256(pki_ca.make_ca("prod").cert) != pki_ca.spki_sha256(cluster_ca.cert)


def test_an_identity_without_names_gets_a_cert_without_a_san(cluster_ca: pki_ca.CA) -> None:
    # The admin's client certificate names no host; cryptography 51 refuses an empty SAN.
    _, cert = certs.issue(cluster_ca, Identity.of("corral-admin"))
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert certs.identity_of(cert.subject, cert.extensions) == Identity("corral-admin")
