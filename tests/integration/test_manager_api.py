"""Maintenance and bulk endpoints against a real etcd: validation naming fields, stored
requests, status from a fresh snapshot."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_thread import api_client

from corral.cluster import keys
from corral.cluster.models import NodeInfo, NodeRequest, Placement, RunState, VMConfig
from corral.cluster.store import Store

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer t"}


@pytest.fixture
async def api(store: Store, etcd_endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    await store.add_token("t")
    for name, alive in (("n1", True), ("n2", True), ("n3", False)):
        await store.put(keys.node(name, "info"), NodeInfo(name=name, cpus=2, memory_mb=4096))
        if alive:
            await store.client.put(keys.node(name, "alive").encode(), b"1")
    for vmid in (101, 102):
        await store.create_vm(VMConfig(vmid=vmid, name=f"v{vmid}", memory_mb=64, cores=1),
                              Placement(node="n1", state=RunState.RUNNING))
    async with api_client(etcd_endpoint, AUTH) as client:
        yield client


async def test_enable_stores_the_request_and_reports_evacuating(
        api: httpx.AsyncClient, store: Store) -> None:
    r = await api.post("/nodes/n1/maintenance", json={"enable": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "evacuating" and body["to_move"] == [101, 102]
    req, _ = await store.get(keys.node("n1", "request"), NodeRequest)
    assert req is not None and req.maintenance
    # Enabling again keeps the request's time (the manager's task ids derive from it).
    await api.post("/nodes/n1/maintenance", json={"enable": True})
    again, _ = await store.get(keys.node("n1", "request"), NodeRequest)
    assert again is not None and again.requested_at == req.requested_at
    listed = (await api.get("/maintenance")).json()
    assert [(s["node"], s["state"]) for s in listed] == [
        ("n1", "evacuating"), ("n2", "off"), ("n3", "off")]


async def test_maintenance_refusals(api: httpx.AsyncClient) -> None:
    r = await api.post("/nodes/nope/maintenance", json={"enable": True})
    assert r.status_code == 404
    assert (await api.get("/nodes/nope/maintenance")).status_code == 404
    r = await api.post("/nodes/n1/maintenance", json={"enable": True, "no_return": True})
    assert r.status_code == 422 and r.json()["error"]["field"] == "no_return"
    r = await api.post("/nodes/n1/maintenance", json={"enable": True, "parallel": 0})
    assert r.status_code == 422 and r.json()["error"]["field"] == "parallel"


async def test_maintenance_is_refused_for_an_offline_host(api: httpx.AsyncClient,
                                                         store: Store) -> None:
    """Nothing can be moved live off a host that is down (Proxmox refuses it too); turning
    maintenance off stays possible."""
    r = await api.post("/nodes/n3/maintenance", json={"enable": True})
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["field"] == "node" and "n3 is offline" in err["message"]
    req, _ = await store.get(keys.node("n3", "request"), NodeRequest)
    assert req is None
    assert (await api.post("/nodes/n3/maintenance", json={"enable": False})).status_code == 200


async def test_bulk_creates_a_parent_task_for_the_manager(api: httpx.AsyncClient) -> None:
    r = await api.post("/nodes/n1/bulk", json={"action": "shutdown", "vms": [102],
                                               "timeout": 30})
    assert r.status_code == 202, r.text
    task = (await api.get(f"/tasks/{r.json()['task']}")).json()
    assert task["kind"] == "node.bulk" and task["node"] == "n1" and task["state"] == "queued"
    assert task["params"]["vms"] == [102] and task["params"]["parallel"] == 4
    # Children's ids carry a '-': they must be readable too.
    assert (await api.get(f"/tasks/{task['id']}-102")).status_code == 404


@pytest.mark.parametrize(("node", "body", "status", "field"), [
    ("nope", {"action": "start"}, 404, None),
    ("n3", {"action": "start"}, 409, None),
    ("n1", {"action": "migrate"}, 422, "target"),
    ("n1", {"action": "migrate", "target": "n1"}, 422, "target"),
    ("n1", {"action": "migrate", "target": "zz"}, 422, "target"),
    ("n1", {"action": "migrate", "target": "n3"}, 409, "target"),
    ("n1", {"action": "start", "target": "n2"}, 422, "target"),
    ("n1", {"action": "start", "parallel": 0}, 422, "parallel"),
    ("n1", {"action": "start", "vms": [101, 555]}, 422, "vms"),
    ("n1", {"action": "dance"}, 422, "action"),
])
async def test_bulk_refusals_name_the_field(api: httpx.AsyncClient, node: str,
                                            body: dict[str, object], status: int,
                                            field: str | None) -> None:
    r = await api.post(f"/nodes/{node}/bulk", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == field
