"""Joining a cluster through the API, against real etcd over mutual TLS with its
authentication on: a one-member cluster made here (CA, root and host certificates, etcd
users, the cluster record), the API in-process, and a second etcd member started from what
the join answered. Refused joins change nothing in etcd."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aetcd import rpc
from api_thread import api_client
from cryptography import x509
from fastapi import FastAPI

from corral.api.app import create_app
from corral.cluster import etcd_auth, keys, members
from corral.cluster.models import ClusterHost, ClusterInfo, HostRole
from corral.cluster.store import Store
from corral.lab.etcd import ClusterState, EtcdMember, free_port, wait_healthy
from corral.pki import ca as pki_ca
from corral.pki import certs, pem, tokens
from corral.pki.files import TLSFiles
from corral.setup.join_rules import host_identity, parse_initial_cluster

pytestmark = pytest.mark.integration

API_TOKEN = "admin-token"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@contextmanager
def running(member: EtcdMember, *, state: ClusterState = "new",
            pairs: Sequence[tuple[str, str]] | None = None) -> Iterator[None]:
    proc = subprocess.Popen(member.command([member], state=state, initial_cluster=pairs),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass(frozen=True)
class OneHost:
    """A cluster of one full host, n1, as `cluster create` leaves it."""

    dir: Path
    pki: Path
    ca: pki_ca.CA
    member: EtcdMember
    root: Store  # as etcd's root user
    public: httpx.AsyncClient  # the API with no bearer token
    api: httpx.AsyncClient  # the API as an admin
    app: FastAPI


def write_one_host_pki(pki: Path) -> pki_ca.CA:
    ca = pki_ca.make_ca("test")
    pki_ca.write_ca(ca, pki / "ca.crt", pki / "ca.key")
    key, cert = certs.issue(ca, host_identity("n1", "host", "127.0.0.1"))
    certs.write_pair(pki / "host.crt", pki / "host.key", cert, key)
    key, cert = certs.issue(ca, certs.Identity.of("root"))
    certs.write_pair(pki / "admin.crt", pki / "admin.key", cert, key)
    return ca


@pytest.fixture
async def cluster() -> AsyncIterator[OneHost]:
    path = Path(tempfile.mkdtemp(prefix="corral-join-"))
    pki = path / "n1" / "pki"
    ca = write_one_host_pki(pki)
    member = EtcdMember("n1", path / "n1" / "etcd", free_port(), free_port(),
                        tls=TLSFiles.in_dir(pki, "host"))
    try:
        with running(member):
            wait_healthy([member.client_url], timeout=20, tls=member.tls)
            async with Store([member.client_url], tls=TLSFiles.in_dir(pki, "admin")) as root:
                await etcd_auth.setup(root, hosts=["n1"])
                await root.put(keys.CLUSTER_INFO, ClusterInfo(
                    name="test", ca_hash=pki_ca.spki_sha256(ca.cert)))
                [first] = await members.list_members(root)
                await root.put(keys.cluster_host("n1"), ClusterHost(
                    name="n1", address="127.0.0.1", member_id=first.id,
                    peer_urls=[member.peer_url], client_urls=[member.client_url]))
                await root.add_token(API_TOKEN)
                app = create_app([member.client_url], tls=TLSFiles.in_dir(pki, "host"),
                                 pki_dir=pki)
                async with app.router.lifespan_context(app):
                    transport = httpx.ASGITransport(app=app)
                    base = "http://api/api/v1"
                    async with httpx.AsyncClient(transport=transport, base_url=base) as public, \
                            httpx.AsyncClient(transport=transport, base_url=base,
                                              headers=AUTH) as api:
                        yield OneHost(path, pki, ca, member, root, public, api, app)
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class Joiner:
    """A host that joins: its key, and the request it sends."""

    name: str
    role: HostRole
    key: Any
    peer_port: int
    client_port: int

    @classmethod
    def make(cls, name: str, role: HostRole = "host") -> Joiner:
        return cls(name, role, certs.make_key(), free_port(), free_port())

    def body(self, token: str, **changes: Any) -> dict[str, Any]:
        csr = certs.make_csr(self.key, host_identity(self.name, self.role, "127.0.0.1"))
        body = {"token": token, "name": self.name, "role": self.role, "address": "127.0.0.1",
                "etcd_peer_port": self.peer_port, "etcd_client_port": self.client_port,
                "csr_pem": certs.csr_pem(csr).decode()}
        body.update(changes)
        return body


async def make_token(c: OneHost, purpose: HostRole = "host", ttl: int = 600) -> str:
    r = await c.api.post("/cluster/tokens", json={"purpose": purpose, "ttl_seconds": ttl})
    assert r.status_code == 201, r.text
    assert r.json()["purpose"] == purpose
    return str(r.json()["token"])


async def etcd_state(root: Store) -> tuple[Any, ...]:
    """Everything a join could change: every key (with its revision), the store's revision,
    the members and the users."""
    kvs = await root.client.get_all()
    items = sorted((kv.key, kv.value, kv.mod_revision, kv.lease) for kv in kvs)
    _, revision = await root.snapshot(keys.PREFIX)  # any write at all raises it
    users = await rpc.AuthStub(root.client.channel).UserList(rpc.AuthUserListRequest())
    member_list = sorted((m.id, m.name, m.is_learner) for m in await members.list_members(root))
    return items, revision, member_list, sorted(users.users)


def error(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}, body
    result: dict[str, Any] = body["error"]
    return result


async def wait_voter(root: Store, name: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = [m for m in await members.list_members(root) if m.name == name]
        if found and not found[0].is_learner:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"{name} is not a voter after {within:.0f}s")


def sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (set(san.get_values_for_type(x509.DNSName)),
            {str(i) for i in san.get_values_for_type(x509.IPAddress)})


async def test_a_host_joins_becomes_a_voter_and_its_token_is_used_up(cluster: OneHost) -> None:
    c = cluster
    r = await c.public.post("/cluster/tokens", json={})
    assert r.status_code == 401  # tokens are for admins
    token = await make_token(c)

    # The joining host checks the CA it is shown against its token before trusting anything.
    r = await c.public.get("/cluster/ca")
    assert r.status_code == 200
    assert tokens.check_ca(tokens.parse_token(token), r.json()["ca_hash"]) is None
    assert r.json()["ca_hash"] == pki_ca.spki_sha256(c.ca.cert)

    n2 = Joiner.make("n2")
    r = await c.public.post("/cluster/join", json=n2.body(token))
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert (bundle["cluster"], bundle["epoch"], bundle["etcd_name"]) == ("test", 1, "n2")
    cert = pem.cert_from_pem(bundle["host_cert_pem"].encode())
    assert certs.cert_common_name(cert) == "n2"
    assert sans(cert) == ({"n2", "corral-etcd", "corral-api"}, {"127.0.0.1"})
    assert cert.issuer == c.ca.cert.subject
    assert bundle["ca_key_pem"].encode() == pem.key_pem(c.ca.key)  # a full host may admit
    admin = pem.cert_from_pem(bundle["admin_cert_pem"].encode())
    assert certs.cert_common_name(admin) == "root"
    r = await c.public.get("/cluster/status",
                           headers={"Authorization": f"Bearer {bundle['api_token']}"})
    assert r.status_code == 200  # its API token is a working one

    # The new host starts its etcd member from the bundle; it is promoted in the background.
    pki2 = c.dir / "n2" / "pki"
    pki2.mkdir(parents=True)
    (pki2 / "ca.crt").write_text(bundle["ca_cert_pem"])
    certs.write_pair(pki2 / "host.crt", pki2 / "host.key", cert, n2.key)
    m2 = EtcdMember("n2", c.dir / "n2" / "etcd", n2.client_port, n2.peer_port,
                    tls=TLSFiles.in_dir(pki2, "host"))
    assert bundle["etcd_endpoints"] == [c.member.client_url, m2.client_url]
    with running(m2, state="existing", pairs=parse_initial_cluster(bundle["initial_cluster"])):
        await wait_voter(c.root, "n2")
        async with Store([m2.client_url], tls=TLSFiles.in_dir(pki2, "host")) as as_n2:
            assert (await as_n2.get(keys.CLUSTER_INFO, ClusterInfo))[0] is not None
        host, _ = await c.root.get(keys.cluster_host("n2"), ClusterHost)
        assert host is not None and host.member_id is not None and host.role == "host"

        # Used once: the same token again is refused and changes nothing.
        before = await etcd_state(c.root)
        r = await c.public.post("/cluster/join", json=Joiner.make("n3").body(token))
        assert r.status_code == 403 and error(r)["code"] == "token_refused"
        assert "already used" in error(r)["message"] and error(r)["field"] == "token"
        assert await etcd_state(c.root) == before

        r = await c.api.get("/cluster/status")
        assert r.status_code == 200, r.text
        status = r.json()
        assert sorted(status["voters"]) == ["n1", "n2"] and status["learners"] == []
        assert status["quorum"] is True and status["leader"] in ("n1", "n2")
        assert status["cluster"]["name"] == "test" and status["witnesses"] == []
        assert {h["name"] for h in status["hosts"]} == {"n1", "n2"}

        # Two voters: removing either would leave one.
        r = await c.api.delete("/cluster/members/n2")
        assert r.status_code == 409, r.text
        assert "last but one voter" in error(r)["message"]
        assert await etcd_state(c.root) == before

        # A witness joins (not started here): a learner, without the CA key or an API token;
        # removing a learner is allowed and cleans up its member, user and record.
        r = await c.public.post("/cluster/join",
                                json=Joiner.make("w1", "witness").body(
                                    await make_token(c, "witness")))
        assert r.status_code == 200, r.text
        wb = r.json()
        assert wb["etcd_name"] == "witness-w1"
        assert wb["ca_key_pem"] is None and wb["api_token"] is None
        assert wb["admin_key_pem"] is None
        status = (await c.api.get("/cluster/status")).json()
        assert status["learners"] == [wb["member_id"]] and status["witnesses"] == ["w1"]
        r = await c.api.delete("/cluster/members/w1")
        assert r.status_code == 200, r.text
        assert r.json() == {"name": "w1", "member": wb["member_id"], "user": "witness-w1",
                            "record": True}
        after = await etcd_state(c.root)
        assert after[2] == before[2] and after[3] == before[3]  # members and users as before
        assert (await c.root.get(keys.cluster_host("w1"), ClusterHost))[0] is None


async def test_refused_joins_change_nothing(cluster: OneHost,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    c = cluster
    good = await make_token(c)
    witness_token = await make_token(c, "witness")
    expired = tokens.make_token(pki_ca.spki_sha256(c.ca.cert))
    await c.root.put(keys.join_token(expired.id),
                     tokens.record_for(expired, time.time() - 7200, 3600))
    parsed = tokens.parse_token(good)
    wrong_secret = str(tokens.JoinToken(parsed.id, "x" * 16, parsed.ca_hash))
    other_hash = pki_ca.spki_sha256(pki_ca.make_ca("other").cert)
    other_cluster = str(tokens.JoinToken(parsed.id, parsed.secret, other_hash))

    # The joiner itself catches a token made for another CA: the hash it is shown differs.
    shown = (await c.public.get("/cluster/ca")).json()["ca_hash"]
    mismatch = tokens.check_ca(tokens.parse_token(other_cluster), shown)
    assert mismatch is not None and "not the cluster the token was made for" in mismatch

    n2 = Joiner.make("n2")
    before = await etcd_state(c.root)
    cases: list[tuple[dict[str, Any], int, str | None, str]] = [
        (n2.body(str(expired)), 403, "token", "expired"),
        (n2.body(wrong_secret), 403, "token", "wrong secret"),
        (n2.body(other_cluster), 403, "token", "another cluster"),
        (n2.body(witness_token), 403, "role", "made for a witness"),
        (n2.body(good, name="root"), 422, "name", "reserved"),
        (n2.body(good, name="n1"), 409, "name", "already a host or witness"),
        (n2.body(good, address="n2.example"), 422, "address", "not an IP address"),
        (n2.body(good, etcd_peer_port=c.member.peer_port), 409, "address", "peer URL"),
        # A request for another identity than the cluster gives it (a CSR for n3).
        ({**n2.body(good), "csr_pem": Joiner.make("n3").body(good)["csr_pem"]}, 422,
         "csr_pem", "CN 'n3' is not 'n2'"),
    ]
    for body, code, field, says in cases:
        r = await c.public.post("/cluster/join", json=body)
        assert r.status_code == code, (body["name"], r.text)
        assert error(r)["field"] == field and says in error(r)["message"], r.text
    assert await etcd_state(c.root) == before  # nothing written, the good token still there

    # A step after the member is added fails: the member, user and record are gone again.
    async def broken(store: Store, host: str) -> None:
        raise etcd_auth.AuthSetupError("etcd auth: add user n2: broken for the test")

    monkeypatch.setattr(etcd_auth, "add_host", broken)
    r = await c.public.post("/cluster/join", json=n2.body(good))
    assert r.status_code == 503 and "removed again" in error(r)["message"], r.text
    assert "broken for the test" in error(r)["message"]
    after = await etcd_state(c.root)
    assert after[2:] == before[2:]  # members and users as before
    assert (await c.root.get(keys.cluster_host("n2"), ClusterHost))[0] is None


async def test_a_learner_that_never_starts_is_removed_again(cluster: OneHost) -> None:
    """Its member would block every later join: once it is given up on, the member, its user
    and its record go, and the next join works."""
    c = cluster
    c.app.state.cluster.admission.promote_within = 1.0
    before = await etcd_state(c.root)
    r = await c.public.post("/cluster/join",
                            json=Joiner.make("w1", "witness").body(await make_token(c, "witness")))
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 15
    while (await etcd_state(c.root))[2:] != before[2:]:
        assert time.monotonic() < deadline, "the learner that never started is still there"
        await asyncio.sleep(0.3)
    assert (await c.root.get(keys.cluster_host("w1"), ClusterHost))[0] is None
    r = await c.public.post("/cluster/join", json=Joiner.make("n2").body(await make_token(c)))
    assert r.status_code == 200, r.text


async def test_without_a_pki_directory_joins_are_unavailable_and_status_works(
        store: Store, etcd_endpoint: str) -> None:
    await store.add_token(API_TOKEN)
    async with api_client(etcd_endpoint, AUTH) as api:
        for method, path, body in [("GET", "/cluster/ca", None),
                                   ("POST", "/cluster/tokens", {}),
                                   ("DELETE", "/cluster/members/t1", None),
                                   ("POST", "/cluster/join",
                                    Joiner.make("n2").body(f"abc123.{'s' * 16}.{'a' * 64}"))]:
            r = await api.request(method, path, json=body)
            assert r.status_code == 503, (path, r.text)
            assert error(r)["code"] == "unavailable"
            assert "pki directory" in error(r)["message"]
        r = await api.get("/cluster/status")
        assert r.status_code == 200, r.text
        assert r.json()["voters"] == ["t1"] and r.json()["quorum"] is True
        assert r.json()["cluster"] is None
