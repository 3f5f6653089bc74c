"""Host keys, certificate requests and the certificates the cluster CA signs for them.

A host's certificate serves (etcd, the API) and authenticates it as a client (etcd peers and
clients, where etcd takes its CN as the user name), so it carries both extended key usages.
The signer issues exactly the identity it was asked to: a request naming anything else is
refused, so a joining host cannot talk itself into another host's name or address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from corral.pki import pem
from corral.pki.ca import BACKDATE, CA

HOST_VALIDITY = timedelta(days=5 * 365)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CSRRefused(ValueError):
    """A certificate request the signer will not sign; the message says why."""


@dataclass(frozen=True)
class Identity:
    """Whom a certificate names: its CN and its subject alternative names."""

    cn: str
    dns: frozenset[str] = frozenset()
    ips: frozenset[IPAddress] = frozenset()

    @classmethod
    def of(cls, cn: str, dns: Iterable[str] = (), ips: Iterable[str] = ()) -> Identity:
        return cls(cn, frozenset(dns), frozenset(ipaddress.ip_address(i) for i in ips))

    def san(self) -> x509.SubjectAlternativeName | None:
        """None for an identity with no names (the admin's): a SAN extension must hold at
        least one name (RFC 5280), and cryptography 51 refuses to build an empty one."""
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in sorted(self.dns)]
        names += [x509.IPAddress(i) for i in sorted(self.ips, key=str)]
        return x509.SubjectAlternativeName(names) if names else None


def make_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(key: ec.EllipticCurvePrivateKey, identity: Identity) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.cn)]))
    if (san := identity.san()) is not None:
        builder = builder.add_extension(san, critical=False)
    return builder.sign(key, hashes.SHA256())


def csr_pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


def csr_from_pem(data: bytes) -> x509.CertificateSigningRequest:
    try:
        return x509.load_pem_x509_csr(data)
    except ValueError as e:
        raise CSRRefused(f"csr: not a PEM certificate request ({e})") from e


def common_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(attrs) != 1:
        return ""
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode()


def cert_common_name(cert: x509.Certificate) -> str:
    return common_name(cert.subject)


def identity_of(subject: x509.Name, extensions: x509.Extensions) -> Identity:
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return Identity(common_name(subject))
    ips = [i for i in san.get_values_for_type(x509.IPAddress)
           if isinstance(i, ipaddress.IPv4Address | ipaddress.IPv6Address)]
    return Identity(common_name(subject), frozenset(san.get_values_for_type(x509.DNSName)),
                    frozenset(ips))


def _mismatch(asked: Identity, wanted: Identity) -> str | None:
    if asked.cn != wanted.cn:
        return f"csr: CN {asked.cn!r} is not {wanted.cn!r}"
    if asked.dns != wanted.dns:
        return f"csr: DNS names {sorted(asked.dns)} are not {sorted(wanted.dns)}"
    if asked.ips != wanted.ips:
        return (f"csr: IP addresses {sorted(map(str, asked.ips))} are not "
                f"{sorted(map(str, wanted.ips))}")
    return None


def sign(ca: CA, csr: x509.CertificateSigningRequest, identity: Identity,
         validity: timedelta = HOST_VALIDITY, now: datetime | None = None) -> x509.Certificate:
    """A certificate for the CSR's key naming `identity`, or CSRRefused when the request is
    not signed by its key or names anything else."""
    if not csr.is_signature_valid:
        raise CSRRefused("csr: its signature does not match its key")
    problem = _mismatch(identity_of(csr.subject, csr.extensions), identity)
    if problem:
        raise CSRRefused(problem)
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise CSRRefused("csr: the key is not an EC key")
    now = now or datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.cn)]))
        .issuer_name(ca.cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                       critical=False)
    )
    if (san := identity.san()) is not None:
        builder = builder.add_extension(san, critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def issue(ca: CA, identity: Identity, validity: timedelta = HOST_VALIDITY,
          now: datetime | None = None) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new key and its certificate at once: for the host that holds the CA key itself."""
    key = make_key()
    return key, sign(ca, make_csr(key, identity), identity, validity, now)


def write_pair(cert_path: Path, key_path: Path, cert: x509.Certificate,
               key: ec.EllipticCurvePrivateKey) -> None:
    pem.write_key(key_path, key)
    pem.write_cert(cert_path, cert)


load_cert = pem.load_cert
load_key = pem.load_key
