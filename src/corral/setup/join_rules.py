"""What the cluster decides when a host asks to join, as plain data: the request and its
checks, whether its token admits it, whether its name is free, the identity its certificate
names and what it is told back. Pure: `setup.admission` reads etcd and acts on these.

A witness is named in etcd (member and user) and in its certificate's CN as "witness-<name>":
its user has no role, so its certificate reads and writes nothing, and no host can be named
so (a host's CN is its user, with the host role).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from corral.cluster.membership import Member, member_label, never_started
from corral.cluster.models import HostRole, Request, check_name
from corral.pki import tokens
from corral.pki.certs import Identity
from corral.pki.tokens import JoinToken, JoinTokenRecord

# The names TLS clients check a member's certificate against (gRPC and the API are dialled by
# a list of addresses, so no one host name fits): every host certificate carries both.
ETCD_TLS_NAME = "corral-etcd"
API_TLS_NAME = "corral-api"
WITNESS_PREFIX = "witness-"
# Names that are etcd users or TLS names of their own: a host named so would be one of them.
RESERVED_NAMES = frozenset({"root", ETCD_TLS_NAME, API_TLS_NAME})
MIN_TOKEN_TTL = 60
MAX_TOKEN_TTL = 7 * 24 * 3600
MAX_CSR_BYTES = 16_384

RefusalKind = Literal["invalid", "token", "forbidden", "conflict", "not_found", "unavailable"]


@dataclass(frozen=True)
class Refusal:
    """Why a join (or a removal) is refused: what kind of refusal, the reason, the field."""

    kind: RefusalKind
    message: str
    field: str | None = None


def check_host_name(value: str) -> str:
    check_name(value)
    if value in RESERVED_NAMES:
        raise ValueError(f"{value!r} is reserved (an etcd user or TLS name of the cluster)")
    if value.startswith(WITNESS_PREFIX):
        raise ValueError(f"must not start with {WITNESS_PREFIX!r} (the cluster names its "
                         "witnesses so)")
    return value


def check_address(value: str) -> str:
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    if ip.is_unspecified or ip.is_multicast:
        raise ValueError(f"{ip} is not an address other hosts can reach this host at")
    return str(ip)


class JoinRequest(Request):
    """What a joining host sends: its token is the credential."""

    token: str = Field(max_length=200)
    name: str
    role: HostRole = "host"
    address: str  # where the other hosts reach it: its etcd peer and client URLs use it
    etcd_peer_port: int = Field(default=2380, ge=1, le=65535)
    etcd_client_port: int = Field(default=2379, ge=1, le=65535)
    csr_pem: str = Field(max_length=MAX_CSR_BYTES)  # for exactly `host_identity`

    @field_validator("token")
    @classmethod
    def _token(cls, v: str) -> str:
        try:
            tokens.parse_token(v)
        except tokens.TokenError as e:
            raise ValueError(str(e).removeprefix("token: ")) from None
        return v.strip()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_host_name(v)

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        return check_address(v)

    @field_validator("etcd_client_port")
    @classmethod
    def _ports_differ(cls, v: int, info: ValidationInfo) -> int:
        if v == info.data.get("etcd_peer_port"):
            raise ValueError("must differ from etcd_peer_port")
        return v

    @property
    def parsed_token(self) -> JoinToken:
        return tokens.parse_token(self.token)

    @property
    def member_name(self) -> str:
        return member_name(self.name, self.role)

    @property
    def peer_url(self) -> str:
        return https_url(self.address, self.etcd_peer_port)

    @property
    def client_url(self) -> str:
        return https_url(self.address, self.etcd_client_port)

    @property
    def identity(self) -> Identity:
        return host_identity(self.name, self.role, self.address)


class TokenRequest(Request):
    """An admin asks for a join token."""

    ttl_seconds: int = Field(default=3600, ge=MIN_TOKEN_TTL, le=MAX_TOKEN_TTL)
    purpose: HostRole = "host"


class JoinBundle(BaseModel):
    """What an admitted host is told: enough to start its etcd member and trust the cluster.
    Only a full host gets the CA key, an admin (root) certificate and an API token."""

    cluster: str
    epoch: int
    name: str
    role: HostRole
    etcd_name: str  # the member name it must start etcd as (the initial cluster names it so)
    member_id: str  # hex, as etcdctl shows it
    ca_cert_pem: str
    host_cert_pem: str
    initial_cluster: str  # etcd's --initial-cluster, to start with --initial-cluster-state existing
    etcd_endpoints: list[str]  # the client URLs of every member, its own included
    ca_key_pem: str | None = None
    admin_cert_pem: str | None = None
    admin_key_pem: str | None = None
    api_token: str | None = None


def member_name(name: str, role: HostRole) -> str:
    """The etcd member and user name, and the certificate CN, of a host or witness."""
    return name if role == "host" else WITNESS_PREFIX + name


def host_identity(name: str, role: HostRole, address: str) -> Identity:
    """What a joining host's certificate names, exactly: it asks for this, it gets this."""
    return Identity.of(member_name(name, role), dns=[name, ETCD_TLS_NAME, API_TLS_NAME],
                       ips=[address, "127.0.0.1"])


def https_url(address: str, port: int) -> str:
    ip = ipaddress.ip_address(address)
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"https://{host}:{port}"


def token_refusal(token: JoinToken, record: JoinTokenRecord | None, role: HostRole,
                  ca_hash: str, now: float) -> Refusal | None:
    """Why this token does not admit a join as `role` to the cluster whose CA hash is
    `ca_hash`, or None when it does."""
    if tokens.check_ca(token, ca_hash) is not None:
        return Refusal("token", "token: it was made for another cluster (its CA hash is not "
                       "this cluster's)", "token")
    if record is None:
        return Refusal("token", "token: unknown or already used (a token admits one join)",
                       "token")
    problem = tokens.check(record, token, now)
    if problem is not None:
        return Refusal("token", problem, "token")
    if record.purpose != role:  # told only to who holds the secret
        return Refusal("token", f"token: made for a {record.purpose}, not a {role}: ask for a "
                       f"token with purpose {role!r}", "role")
    return None


def name_refusal(name: str, role: HostRole, members: Sequence[Member],
                 host_names: Collection[str]) -> Refusal | None:
    """Why `name` cannot join: it is a recorded host or witness, or an etcd member's name."""
    if name in host_names:
        return Refusal("conflict", f"name: {name!r} is already a host or witness of this "
                       "cluster (remove it first to join it again)", "name")
    taken = {m.name for m in members}
    for wanted in (name, member_name(name, role)):
        if wanted in taken:
            return Refusal("conflict", f"name: {wanted!r} is already an etcd member of this "
                           "cluster", "name")
    return None


def membership_refusal(members: Sequence[Member], peer_url: str) -> Refusal | None:
    """Why etcd could not take a member with this peer URL now: a member has it already, or
    another member was added but never started (etcd refuses every join until it starts or
    is removed)."""
    for m in members:
        if peer_url in m.peer_urls:
            return Refusal("conflict", f"address: the etcd peer URL {peer_url} is member "
                           f"{member_label(m)}'s already", "address")
    pending = never_started(members)
    if pending:
        m = pending[0]
        return Refusal("conflict", f"member {m.id:x} ({', '.join(m.peer_urls)}) was added but "
                       "never started: another join is under way or failed half-way; wait "
                       f"for it or remove it (DELETE /cluster/members/{m.id:x})")
    return None


def initial_cluster_text(pairs: Sequence[tuple[str, str]]) -> str:
    """etcd's --initial-cluster from (name, peer URL) pairs (`membership.initial_cluster`)."""
    return ",".join(f"{name}={url}" for name, url in pairs)


def parse_initial_cluster(text: str) -> list[tuple[str, str]]:
    pairs = []
    for part in text.split(","):
        name, sep, url = part.partition("=")
        if not sep or not name or not url:
            raise ValueError(f"initial cluster: {part!r} is not <name>=<peer URL>")
        pairs.append((name, url))
    return pairs


def etcd_endpoints(members: Sequence[Member], own_client_url: str) -> list[str]:
    """The client URLs a joined host dials: every started member's, then its own."""
    urls = [u for m in members if m.started for u in m.client_urls if u != own_client_url]
    return [*urls, own_client_url]
