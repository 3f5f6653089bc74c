"""GET /nodes/{node}/usage and /vms/{vmid}/usage against a real etcd: refusals, and the
answers when the host that keeps the history cannot be reached. The relay to a real agent is
in test_usage_history."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from api_thread import api_client

from corral.cluster import keys
from corral.cluster.models import NodeInfo, Placement, VMConfig
from corral.cluster.store import Store

pytestmark = pytest.mark.integration

TOKEN = "usage-token"


def closed_port() -> int:
    """A port nothing listens on (it was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
async def api(store: Store, etcd_endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    await store.add_token(TOKEN)
    await store.put(keys.node("n1", "info"), NodeInfo(
        name="n1", cpus=2, memory_mb=2048, agent_url=f"http://127.0.0.1:{closed_port()}"))
    await store.client.put(keys.node("n1", "alive").encode(), b"1")
    await store.put(keys.node("n2", "info"), NodeInfo(name="n2", cpus=2, memory_mb=2048))
    assert await store.create_vm(VMConfig(vmid=101, name="web", memory_mb=64, cores=1),
                                 Placement(node="n1"))
    assert await store.create_vm(VMConfig(vmid=102, name="db", memory_mb=64, cores=1),
                                 Placement(node="n2"))
    async with api_client(etcd_endpoint, {"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def error(r: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = r.json()["error"]
    return body


@pytest.mark.parametrize("path", ["/nodes/n1/usage", "/vms/101/usage"])
async def test_a_bad_range_is_refused_naming_the_field(api: httpx.AsyncClient,
                                                       path: str) -> None:
    r = await api.get(path, params={"range": "decade"})
    assert r.status_code == 422 and error(r)["field"] == "range", r.text
    assert "hour" in error(r)["message"]


async def test_unknown_node_and_vm_are_404(api: httpx.AsyncClient) -> None:
    r = await api.get("/nodes/n9/usage")
    assert r.status_code == 404 and "n9" in error(r)["message"]
    r = await api.get("/vms/999/usage", params={"range": "day"})
    assert r.status_code == 404 and "999" in error(r)["message"]


async def test_a_host_that_cannot_be_reached_is_503_with_the_reason(
        api: httpx.AsyncClient) -> None:
    r = await api.get("/nodes/n1/usage")
    assert r.status_code == 503 and error(r)["code"] == "agent_unreachable"
    assert "n1" in error(r)["message"] and "cannot be reached" in error(r)["message"]
    r = await api.get("/vms/101/usage", params={"range": "week"})
    assert r.status_code == 503 and "cannot be reached" in error(r)["message"]
    # n2 never published its agent's address (its agent never ran).
    r = await api.get("/vms/102/usage")
    assert r.status_code == 503 and "n2 publishes no address" in error(r)["message"]


async def test_usage_needs_the_token(api: httpx.AsyncClient) -> None:
    r = await api.get("/nodes/n1/usage", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
