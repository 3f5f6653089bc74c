"""`cluster create` and `join` with the host's real services (etcd, agent, API) as child
processes on loopback: two hosts make a cluster whose etcd, API and agent traffic is TLS of
the cluster's CA only; a join with a bad token changes nothing."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from host_processes import ProcessServices
from tls_certs import make_ca, make_host_cert

from corral.cluster import members
from corral.cluster.store import Store
from corral.host.config import HostConfig
from corral.lab.etcd import free_port
from corral.pki import tokens
from corral.setup import local
from corral.setup.create import create_cluster
from corral.setup.join import join_cluster
from corral.setup.local import SetupError
from corral.setup.status import gather

pytestmark = pytest.mark.integration

STARTUP = 60.0


def lab_host(root: Path, name: str, images: Path) -> HostConfig:
    return HostConfig.for_lab(root, name, cluster="setup", address="127.0.0.1",
                              etcd_client_port=free_port(), etcd_peer_port=free_port(),
                              agent_port=free_port(), api_port=free_port(),
                              images_dir=images, watchdog_timeout=0, accel="tcg")


def say(message: str) -> None:
    print(message)


async def until(ok: Callable[[], Any], what: str, timeout: float = STARTUP) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await ok()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
        await asyncio.sleep(0.3)


def trust(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


@dataclass
class Cluster:
    h1: HostConfig
    h2: HostConfig
    s1: ProcessServices
    s2: ProcessServices
    api_token: str

    def api(self) -> httpx.AsyncClient:
        assert self.h1.tls is not None
        return httpx.AsyncClient(base_url=self.h1.api_url + "/api/v1",
                                 verify=trust(self.h1.tls.ca_cert), timeout=30.0,
                                 headers={"Authorization": f"Bearer {self.api_token}"})

    def admin(self) -> Store:
        return Store([self.h1.local_client_url], tls=local.admin_tls(self.h1))


async def api_up(config: HostConfig) -> bool:
    assert config.tls is not None
    try:
        async with httpx.AsyncClient(verify=trust(config.tls.ca_cert), timeout=2.0) as c:
            return (await c.get(config.api_url + "/api/v1/health")).status_code == 200
    except httpx.HTTPError:
        return False


async def snapshot(store: Store) -> tuple[dict[bytes, bytes], list[int]]:
    """Every key and value, and the members: what a refused join must leave alone."""
    kvs = {kv.key: kv.value for kv in await store.client.get_prefix(b"/")}
    return kvs, sorted(m.id for m in await members.list_members(store))


@pytest.fixture
async def cluster(short_tmp: Path) -> AsyncIterator[Cluster]:
    images = short_tmp / "images"
    images.mkdir()
    h1, h2 = lab_host(short_tmp, "h1", images), lab_host(short_tmp, "h2", images)
    s1, s2 = ProcessServices(short_tmp / "logs-h1"), ProcessServices(short_tmp / "logs-h2")
    try:
        created = await create_cluster(h1, s1, say)
        await until(lambda: api_up(h1), "the API of h1")
        yield Cluster(h1, h2, s1, s2, created.api_token)
    finally:
        s2.close()
        s1.close()
        for name in ("corral-etcd", "corral-agent", "corral-api"):
            print(f"--- h1 {name}\n{s1.log(name)}\n--- h2 {name}\n{s2.log(name)}")


async def test_create_then_join_makes_a_two_voter_tls_cluster(cluster: Cluster) -> None:
    h1, h2 = cluster.h1, cluster.h2
    async with cluster.api() as api:
        reply = await api.post("/cluster/tokens", json={"ttl_seconds": 600})
        assert reply.status_code == 201, reply.text
        token = reply.json()["token"]
        async with cluster.admin() as admin:
            before = await snapshot(admin)
            # A wrong secret: refused by the cluster, and nothing written anywhere.
            wrong = tokens.parse_token(token)
            bad = f"{wrong.id}.{'x' * len(wrong.secret)}.{wrong.ca_hash}"
            with pytest.raises(SetupError, match="wrong secret"):
                await join_cluster(f"127.0.0.1:{h1.api_port}", bad, h2, cluster.s2, say)
            assert await snapshot(admin) == before
            assert not h2.config_path.exists() and not cluster.s2.procs

            joined = await join_cluster(f"127.0.0.1:{h1.api_port}", token, h2, cluster.s2,
                                        say)
            assert joined.cluster == "setup" and joined.api_token

            async def both_voters_and_agents() -> Any:
                status = await gather(admin, local.host_tls(h1))
                online = {h.name for h in status.hosts if h.agent_online}
                return status if (status.quorum and len(status.voters) == 2
                                  and not status.learners and online == {"h1", "h2"}) else None

            status = await until(both_voters_and_agents, "two voters and both agents online")
            assert status.cluster is not None and status.cluster.epoch == 1
            assert {h.name for h in status.hosts if h.in_etcd} == {"h1", "h2"}

            # The used token admits nobody else.
            after = await snapshot(admin)
            with pytest.raises(SetupError, match="unknown or already used"):
                await join_cluster(f"127.0.0.1:{h1.api_port}", token,
                                   lab_host(h1.data_dir.parent.parent, "h3", h1.images_dir),
                                   ProcessServices(h1.data_dir.parent / "logs-h3"), say)
            assert (await snapshot(admin))[1] == after[1]

        # The last but one voter stays.
        reply = await api.delete("/cluster/members/h2")
        assert reply.status_code == 409 and "last but one voter" in reply.text

    # h2's own API answers with what the join gave it.
    assert await until(lambda: api_up(h2), "the API of h2")


async def test_every_port_refuses_plain_http_and_foreign_certificates(
        cluster: Cluster, short_tmp: Path) -> None:
    h1 = cluster.h1
    assert h1.tls is not None
    # The agent publishes its endpoint once it holds its lease.
    async with cluster.admin() as admin:
        async def agent_url() -> str | None:
            node = await admin.node("h1")
            return node.info.agent_url if node and node.alive and node.info else None

        agent = await until(agent_url, "the agent of h1 registered")
    assert agent.startswith("https://")
    ports = {"etcd": h1.local_client_url, "api": h1.api_url, "agent": agent}
    foreign = short_tmp / "foreign"
    foreign.mkdir()
    other_ca = make_ca(foreign / "ca.crt", foreign / "ca.key", cn="another-ca")
    make_host_cert(other_ca, "h1", foreign / "h.crt", foreign / "h.key")
    # A client whose certificate another CA signed (it trusts ours, so only its own
    # certificate can be what is refused).
    ctx = trust(h1.tls.ca_cert, foreign / "h.crt", foreign / "h.key")
    async with httpx.AsyncClient(timeout=3.0) as plain, \
            httpx.AsyncClient(timeout=3.0, verify=ctx) as impostor:
        for what, url in ports.items():
            path = "/api/v1/nodes" if what == "api" else "/health"
            with pytest.raises(httpx.HTTPError):
                r = await plain.get(url.replace("https://", "http://") + path)
                # Go answers a plain request on a TLS port with a 400 of its own: a refusal
                # too, never a served page.
                assert r.status_code == 400, f"{what} served plain HTTP: {r.status_code}"
                raise httpx.HTTPError("refused with 400")
            # TLS 1.3 sends the refusal of a client certificate after the handshake: it
            # surfaces on the first read, as the ssl module's own error.
            with pytest.raises((httpx.HTTPError, ssl.SSLError)):
                r = await impostor.get(url + path)
                raise AssertionError(f"{what} answered another CA's client: {r.status_code}")
