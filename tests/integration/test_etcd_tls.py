"""etcd over mutual TLS with the cluster CA, against real etcd processes: the store with a
host certificate, what is refused (plain HTTP, another CA's certificate), a learner that joins
and is promoted, member removal, and etcd's users named by certificate CN."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aetcd.exceptions
import httpx
import pytest

from corral.cluster import etcd_auth, members
from corral.cluster import store as store_module
from corral.cluster.health import healthy
from corral.cluster.membership import initial_cluster, summarize
from corral.cluster.store import Store
from corral.lab.etcd import ClusterState, EtcdMember, free_port, wait_healthy
from corral.pki import ca as pki_ca
from corral.pki import certs
from corral.pki.files import TLSFiles

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class PKI:
    dir: Path

    def files(self, name: str) -> TLSFiles:
        return TLSFiles.in_dir(self.dir, name)


def host_identity(name: str) -> certs.Identity:
    return certs.Identity.of(name, dns=[name, "corral-etcd", "corral-api"], ips=["127.0.0.1"])


@pytest.fixture(scope="module")
def pki() -> Iterator[PKI]:
    """A cluster CA with certificates for hosts n1, n2, n3, root and witness w1; "foreign" is
    a certificate for n1 from another CA."""
    path = Path(tempfile.mkdtemp(prefix="corral-pki-"))
    cluster = pki_ca.make_ca("test")
    pki_ca.write_ca(cluster, path / "ca.crt", path / "ca.key")
    for name in ("n1", "n2", "n3", "root", etcd_auth.witness_user("w1")):
        key, cert = certs.issue(cluster, host_identity(name))
        certs.write_pair(path / f"{name}.crt", path / f"{name}.key", cert, key)
    key, cert = certs.issue(pki_ca.make_ca("test"), host_identity("n1"))
    certs.write_pair(path / "foreign.crt", path / "foreign.key", cert, key)
    yield PKI(path)
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def running(member: EtcdMember, cluster: Sequence[EtcdMember] = (), *,
            state: ClusterState = "new", pairs: Sequence[tuple[str, str]] | None = None
            ) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        member.command(cluster or [member], state=state, initial_cluster=pairs),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def tls_member(pki: PKI, name: str = "n1") -> Iterator[EtcdMember]:
    data = Path(tempfile.mkdtemp(prefix="corral-etcd-"))
    member = EtcdMember(name, data / name, free_port(), free_port(), tls=pki.files(name))
    try:
        with running(member):
            wait_healthy([member.client_url], timeout=20, tls=member.tls)
            yield member
    finally:
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_member(pki: PKI) -> Iterator[EtcdMember]:
    """One TLS member for the tests that only read and write."""
    with tls_member(pki) as member:
        yield member


@pytest.fixture
def own_member(pki: PKI) -> Iterator[EtcdMember]:
    """A TLS member of the test's own: for tests that change membership or auth."""
    with tls_member(pki) as member:
        yield member


@pytest.fixture
async def root_store(pki: PKI, own_member: EtcdMember) -> AsyncIterator[Store]:
    async with Store([own_member.client_url], tls=pki.files("root")) as store:
        yield store


async def test_the_store_works_over_tls_with_a_host_certificate(
        pki: PKI, shared_member: EtcdMember) -> None:
    assert shared_member.client_url.startswith("https://127.0.0.1:")
    async with Store([shared_member.client_url], tls=pki.files("n2")) as store:
        await store.client.put(b"/corral/tls-test", b"hello")
        kv = await store.client.get(b"/corral/tls-test")
        assert kv is not None and kv.value == b"hello"


def test_plain_http_to_the_client_and_peer_ports_is_refused(shared_member: EtcdMember) -> None:
    for port in (shared_member.client_port, shared_member.peer_port):
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0)


@pytest.fixture
def no_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused connection looks like a member down, which the store retries for seconds."""
    monkeypatch.setattr(store_module, "RETRY_FOR_SECONDS", 0.0)


@pytest.mark.usefixtures("no_retry")
async def test_a_plain_grpc_client_is_refused(shared_member: EtcdMember) -> None:
    async with Store([f"http://127.0.0.1:{shared_member.client_port}"], timeout=1.0) as store:
        with pytest.raises(aetcd.exceptions.ClientError):
            await store.client.get(b"/corral/tls-test")


def foreign_files(pki: PKI) -> TLSFiles:
    return TLSFiles(ca=pki.dir / "ca.crt", cert=pki.dir / "foreign.crt",
                    key=pki.dir / "foreign.key")


def test_over_https_a_certificate_of_another_ca_or_none_is_refused(
        pki: PKI, shared_member: EtcdMember) -> None:
    assert healthy(shared_member.client_url, tls=pki.files("n1"))
    assert not healthy(shared_member.client_url, tls=foreign_files(pki))
    # Trusting the cluster CA but showing no certificate at all is refused as well.
    no_cert = ssl.create_default_context(cafile=str(pki.dir / "ca.crt"))
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{shared_member.client_url}/health", verify=no_cert, timeout=2.0)


@pytest.mark.usefixtures("no_retry")
async def test_over_grpc_a_client_certificate_of_another_ca_is_refused(
        pki: PKI, shared_member: EtcdMember) -> None:
    async with Store([shared_member.client_url], timeout=1.0, tls=foreign_files(pki)) as store:
        with pytest.raises(aetcd.exceptions.ClientError):
            await store.client.get(b"/corral/tls-test")


async def test_a_learner_joins_is_promoted_once_caught_up_and_is_removed(
        pki: PKI, own_member: EtcdMember, root_store: Store) -> None:
    await root_store.client.put(b"/corral/before-join", b"x" * 1000)
    data = own_member.data_dir.parent
    joiner = EtcdMember("n2", data / "n2", free_port(), free_port(), tls=pki.files("n2"))

    new, after_add = await members.add_learner(root_store, [joiner.peer_url])
    assert new.is_learner and not new.started
    pairs = initial_cluster(after_add, new.id, "n2")
    assert sorted(pairs) == sorted([("n1", own_member.peer_url), ("n2", joiner.peer_url)])
    with running(joiner, state="existing", pairs=pairs):
        voters = await members.promote(root_store, new.id, within=20.0, every=0.2)
        assert {(m.name, m.is_learner) for m in voters} == {("n1", False), ("n2", False)}
        # The joined member serves the data written before it came.
        async with Store([joiner.client_url], tls=pki.files("n3")) as via_joiner:
            kv = await via_joiner.client.get(b"/corral/before-join")
            assert kv is not None and kv.value == b"x" * 1000
        dead = f"https://127.0.0.1:{free_port()}"
        statuses = await members.endpoint_statuses(
            [own_member.client_url, joiner.client_url, dead], tls=pki.files("root"))
        assert statuses[2] is None and all(s is not None for s in statuses[:2])
        assert {s.is_learner for s in statuses[:2] if s} == {False}
        assert len({s.leader for s in statuses[:2] if s}) == 1
        summary = summarize(await members.list_members(root_store),
                            [s for s in statuses if s is not None])
        assert set(summary.voters) == {"n1", "n2"} and summary.learners == ()
        assert summary.has_quorum and summary.leader in ("n1", "n2")

        after_remove = await members.remove(root_store, new.id)
        assert [m.name for m in after_remove] == ["n1"]
    assert [m.name for m in await members.list_members(root_store)] == ["n1"]
    kv = await root_store.client.get(b"/corral/before-join")
    assert kv is not None  # the remaining member still serves (a one-voter majority)


async def test_promoting_a_learner_that_never_started_gives_up_with_etcds_reason(
        own_member: EtcdMember, root_store: Store) -> None:
    new, _ = await members.add_learner(root_store, [f"https://127.0.0.1:{free_port()}"])
    with pytest.raises(members.MembershipError, match="promote"):
        await members.promote(root_store, new.id, within=1.0, every=0.2)
    await members.remove(root_store, new.id)


async def test_with_auth_on_a_host_writes_only_corral_keys_and_only_root_changes_members(
        pki: PKI, own_member: EtcdMember, root_store: Store) -> None:
    url = own_member.client_url
    await etcd_auth.setup(root_store, hosts=["n1"], witnesses=["w1"])
    await etcd_auth.setup(root_store, hosts=["n1"], witnesses=["w1"])  # again: no change
    async with Store([url], tls=pki.files("n1")) as host:
        await host.client.put(b"/corral/x", b"1")
        assert (await host.client.get(b"/corral/x")) is not None
        with pytest.raises(aetcd.exceptions.ClientError, match="permission denied"):
            await host.client.put(b"/other", b"1")
        with pytest.raises(members.MembershipError, match="permission denied"):
            await members.add_learner(host, [f"https://127.0.0.1:{free_port()}"])
        with pytest.raises(etcd_auth.AuthSetupError, match="permission denied"):
            await etcd_auth.add_host(host, "n3")
    async with Store([url], tls=pki.files(etcd_auth.witness_user("w1"))) as witness:
        with pytest.raises(aetcd.exceptions.ClientError, match="permission denied"):
            await witness.client.get(b"/corral/x")
    # A host without a user yet (it is joining) gets nothing until root adds it.
    async with Store([url], tls=pki.files("n3")) as late:
        with pytest.raises(aetcd.exceptions.ClientError):
            await late.client.put(b"/corral/n3", b"1")
        await etcd_auth.add_host(root_store, "n3")
        await late.client.put(b"/corral/n3", b"1")
    # Root may do all of it.
    await root_store.client.put(b"/other", b"1")
    new, _ = await members.add_learner(root_store, [f"https://127.0.0.1:{free_port()}"])
    await members.remove(root_store, new.id)
    await etcd_auth.remove_user(root_store, "n3")
    async with Store([url], tls=pki.files("n3")) as removed:
        with pytest.raises(aetcd.exceptions.ClientError):
            await removed.client.put(b"/corral/n3", b"2")
    assert healthy(url, tls=pki.files("n1"))  # the health endpoint stays open to a member


async def test_with_auth_on_a_host_does_what_an_agent_does_on_its_keys(
        pki: PKI, own_member: EtcdMember, root_store: Store) -> None:
    """Leases, lease-bound keys, transactions and watches under /corral/, as a host's
    certificate (the CN is the user) over TLS."""
    await etcd_auth.setup(root_store, hosts=["n1"])
    async with Store([own_member.client_url], tls=pki.files("n1")) as host:
        _, revision = await host.snapshot("/corral/nodes/")
        watch = host.watch_prefix("/corral/nodes/", start_revision=revision + 1)
        lease = await host.grant_lease(5)
        await host.client.put(b"/corral/nodes/n1/alive", b"{}", lease=lease)
        assert await host.refresh_lease(lease) > 0
        t = host.client.transactions
        ok, _ = await host.client.transaction(
            compare=[t.version(b"/corral/nodes/n1/alive") > 0],
            success=[t.put(b"/corral/nodes/n1/usage", b"{}")], failure=[])
        assert ok
        event = await asyncio.wait_for(anext(watch), 5.0)
        assert event.key == "/corral/nodes/n1/alive"
        await lease.revoke()
        assert await host.client.get(b"/corral/nodes/n1/alive") is None
        assert isinstance(watch, AsyncGenerator)  # Store.watch_prefix is one
        await watch.aclose()
