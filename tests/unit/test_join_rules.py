"""The cluster's decisions on a join request, as plain data: what a request must look like
(refusals name the field), when a token admits a join, when a name or address is taken, and
what identity and etcd wiring the joining host is given."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from corral.cluster import etcd_auth
from corral.cluster.membership import Member
from corral.cluster.store import ETCD_TLS_NAME
from corral.pki.tokens import JoinToken, record_for
from corral.setup import join_rules
from corral.setup.join_rules import (
    JoinRequest,
    TokenRequest,
    etcd_endpoints,
    host_identity,
    initial_cluster_text,
    membership_refusal,
    name_refusal,
    parse_initial_cluster,
    token_refusal,
)

CA_HASH = "ab" * 32
TOKEN = JoinToken("abc123", "0123456789abcdef", CA_HASH)
NOW = 1_000_000.0


def request(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"token": str(TOKEN), "name": "n2", "role": "host",
                            "address": "10.0.0.2", "etcd_peer_port": 2380,
                            "etcd_client_port": 2379, "csr_pem": "-----BEGIN ..."}
    body.update(changes)
    return body


def refused_field(**changes: Any) -> tuple[str, str]:
    with pytest.raises(ValidationError) as e:
        JoinRequest.model_validate(request(**changes))
    first = e.value.errors()[0]
    return ".".join(map(str, first["loc"])), str(first["msg"])


def test_a_good_request_gives_the_urls_and_identity_of_the_host() -> None:
    r = JoinRequest.model_validate(request(address=" 10.0.0.2"))
    assert r.address == "10.0.0.2" and r.parsed_token == TOKEN
    assert r.peer_url == "https://10.0.0.2:2380" and r.client_url == "https://10.0.0.2:2379"
    assert r.member_name == "n2"
    assert r.identity.cn == "n2"
    assert r.identity.dns == {"n2", "corral-etcd", "corral-api"}
    assert {str(i) for i in r.identity.ips} == {"10.0.0.2", "127.0.0.1"}


def test_an_ipv6_address_is_bracketed_in_urls() -> None:
    r = JoinRequest.model_validate(request(address="fd00::2"))
    assert r.peer_url == "https://[fd00::2]:2380"


@pytest.mark.parametrize(("changes", "field", "says"), [
    ({"name": "-n2"}, "name", "letters, digits"),
    ({"name": "n" * 64}, "name", "1-63"),
    ({"name": "root"}, "name", "reserved"),
    ({"name": "corral-etcd"}, "name", "reserved"),
    ({"name": "witness-w1"}, "name", "witness-"),
    ({"address": "host2.example"}, "address", "not an IP address"),
    ({"address": "0.0.0.0"}, "address", "reach"),
    ({"address": "224.0.0.1"}, "address", "reach"),
    ({"etcd_peer_port": 0}, "etcd_peer_port", "greater than or equal to 1"),
    ({"etcd_client_port": 70000}, "etcd_client_port", "less than or equal to 65535"),
    ({"etcd_client_port": 2380}, "etcd_client_port", "differ from etcd_peer_port"),
    ({"role": "manager"}, "role", "'host' or 'witness'"),
    ({"token": "abc123.secret"}, "token", "<id>.<secret>.<cahash>"),
    ({"token": f"ABC123.0123456789abcdef.{CA_HASH}"}, "token", "id must be"),
    ({"csr_pem": "x" * 20_000}, "csr_pem", "at most"),
    ({"extra": 1}, "extra", "not permitted"),
])
def test_a_bad_request_is_refused_naming_the_field(changes: dict[str, Any], field: str,
                                                   says: str) -> None:
    where, message = refused_field(**changes)
    assert where == field
    assert says in message


def test_a_token_request_is_bounded() -> None:
    assert TokenRequest().ttl_seconds == 3600 and TokenRequest().purpose == "host"
    for ttl in (59, 7 * 24 * 3600 + 1):
        with pytest.raises(ValidationError, match="ttl_seconds"):
            TokenRequest(ttl_seconds=ttl)


def test_a_witness_is_named_as_its_etcd_user_and_keeps_its_host_name_as_dns_name() -> None:
    ident = host_identity("w1", "witness", "10.0.0.9")
    assert ident.cn == etcd_auth.witness_user("w1") == "witness-w1"
    assert "w1" in ident.dns
    assert ETCD_TLS_NAME in ident.dns  # the name the store's TLS clients check


RECORD = record_for(TOKEN, now=NOW - 10, ttl=3600, purpose="host")


def test_a_valid_token_of_the_right_purpose_admits() -> None:
    assert token_refusal(TOKEN, RECORD, "host", CA_HASH, NOW) is None


@pytest.mark.parametrize(("token", "record", "role", "ca_hash", "field", "says"), [
    (TOKEN, None, "host", CA_HASH, "token", "unknown or already used"),
    (JoinToken("abc123", "fedcba9876543210", CA_HASH), RECORD, "host", CA_HASH, "token",
     "wrong secret"),
    (TOKEN, record_for(TOKEN, now=NOW - 7200, ttl=3600), "host", CA_HASH, "token",
     "expired 3600s ago"),
    (TOKEN, RECORD, "host", "cd" * 32, "token", "another cluster"),
    (TOKEN, RECORD, "witness", CA_HASH, "role", "made for a host, not a witness"),
    (TOKEN, record_for(TOKEN, now=NOW, ttl=60, purpose="witness"), "host", CA_HASH, "role",
     "made for a witness"),
])
def test_token_refusals(token: JoinToken, record: Any, role: Any, ca_hash: str, field: str,
                        says: str) -> None:
    refusal = token_refusal(token, record, role, ca_hash, NOW)
    assert refusal is not None and refusal.kind == "token" and refusal.field == field
    assert says in refusal.message


def test_the_purpose_is_not_told_to_who_has_not_the_secret() -> None:
    wrong = JoinToken("abc123", "fedcba9876543210", CA_HASH)
    refusal = token_refusal(wrong, RECORD, "witness", CA_HASH, NOW)
    assert refusal is not None and "wrong secret" in refusal.message


def member(i: int, name: str, learner: bool = False) -> Member:
    return Member(i, name, (f"https://10.0.0.{i}:2380",),
                  (f"https://10.0.0.{i}:2379",) if name else (), learner)


MEMBERS = [member(1, "n1"), member(3, "witness-w1")]


@pytest.mark.parametrize(("name", "role", "hosts", "says"), [
    ("n1", "host", set(), "'n1' is already an etcd member"),
    ("w1", "witness", set(), "'witness-w1' is already an etcd member"),
    ("n2", "host", {"n2"}, "already a host or witness"),
])
def test_a_name_taken_is_refused(name: str, role: Any, hosts: set[str], says: str) -> None:
    refusal = name_refusal(name, role, MEMBERS, hosts)
    assert refusal is not None and refusal.kind == "conflict" and refusal.field == "name"
    assert says in refusal.message


def test_a_free_name_is_not_refused() -> None:
    assert name_refusal("n2", "host", MEMBERS, {"n1", "w1"}) is None
    # A host may be named as a witness's etcd name without its prefix: they differ in etcd.
    assert name_refusal("w2", "host", MEMBERS, set()) is None


def test_a_peer_url_in_use_or_a_member_never_started_blocks_the_join() -> None:
    refusal = membership_refusal(MEMBERS, "https://10.0.0.1:2380")
    assert refusal is not None and refusal.field == "address" and "n1" in refusal.message
    pending = [*MEMBERS, member(0x1f, "", learner=True)]
    refusal = membership_refusal(pending, "https://10.0.0.2:2380")
    assert refusal is not None and "1f" in refusal.message and "never started" in refusal.message
    assert membership_refusal(MEMBERS, "https://10.0.0.2:2380") is None


def test_the_initial_cluster_text_and_endpoints_of_a_joining_member() -> None:
    pairs = [("n1", "https://10.0.0.1:2380"), ("n2", "https://10.0.0.2:2380")]
    text = initial_cluster_text(pairs)
    assert text == "n1=https://10.0.0.1:2380,n2=https://10.0.0.2:2380"
    assert parse_initial_cluster(text) == pairs
    with pytest.raises(ValueError, match="not <name>=<peer URL>"):
        parse_initial_cluster("n1")
    new = member(2, "", learner=True)
    assert etcd_endpoints([*MEMBERS, new], "https://10.0.0.2:2379") == [
        "https://10.0.0.1:2379", "https://10.0.0.3:2379", "https://10.0.0.2:2379"]


def test_reserved_names_include_every_tls_name() -> None:
    assert {join_rules.ETCD_TLS_NAME, join_rules.API_TLS_NAME, "root"} <= \
        join_rules.RESERVED_NAMES
