"""POST /vms/{vmid}/migrate against a real etcd: refusals up front, and the queued task."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_thread import api_client

from corral.cluster import keys
from corral.cluster.models import (
    Disk,
    NodeInfo,
    NodeRequest,
    Placement,
    RunState,
    StorageConfig,
    StorageType,
    VMConfig,
)
from corral.cluster.store import Store

pytestmark = pytest.mark.integration
TOKEN = "test-token"


async def add_node(store: Store, name: str, memory_mb: int = 4096, alive: bool = True,
                   maintenance: bool = False) -> None:
    await store.put(keys.node(name, "info"), NodeInfo(name=name, cpus=2, memory_mb=memory_mb))
    if alive:
        await store.client.put(keys.node(name, "alive").encode(), b"1")
    if maintenance:
        await store.put(keys.node(name, "request"), NodeRequest(maintenance=True))


@pytest.fixture
async def api(store: Store, etcd_endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    await store.add_token(TOKEN)
    await store.put_storage(StorageConfig(id="local", type=StorageType.DIR, path="l"))
    await add_node(store, "n1")
    await add_node(store, "n2")
    await add_node(store, "small", memory_mb=768)
    await add_node(store, "down", alive=False)
    await add_node(store, "maint", maintenance=True)
    for vmid, disks in ((101, []), (102, [Disk(volume="local:vm-102-disk-0.qcow2", size_mb=8)])):
        cfg = VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=512, cores=1, disks=disks)
        assert await store.create_vm(cfg, Placement(node="n1", state=RunState.RUNNING))
    async with api_client(etcd_endpoint, {"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


async def refusal(api: httpx.AsyncClient, vmid: int, status: int, **body: object) -> str:
    r = await api.post(f"/vms/{vmid}/migrate", json=body)
    assert r.status_code == status, r.text
    return str(r.json()["error"]["message"])


async def test_refused_up_front_with_the_reason(api: httpx.AsyncClient, store: Store) -> None:
    assert "does not exist" in await refusal(api, 999, 404, target="n2")
    assert "n9 is unknown" in await refusal(api, 101, 409, target="n9")
    assert "down is offline" in await refusal(api, 101, 409, target="down")
    assert "maint is in maintenance" in await refusal(api, 101, 409, target="maint")
    assert "not enough free memory on small" in await refusal(api, 101, 409, target="small")
    assert "--with-local-disks" in await refusal(api, 102, 409, target="n2")
    r = await api.post("/vms/101/migrate", json={"target": "n2", "bwlimit": "fast"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "bwlimit"
    r = await api.post("/vms/101/migrate", json={"bwlimit": "1G"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "target"
    assert await store.tasks() == []  # nothing was queued by a refusal


async def test_queued_on_the_vms_host_then_already_migrating(api: httpx.AsyncClient,
                                                             store: Store) -> None:
    r = await api.post("/vms/102/migrate",
                       json={"target": "n2", "with_local_disks": True, "bwlimit": "200M"})
    assert r.status_code == 202, r.text
    task = await store.task(r.json()["task"])
    assert task is not None and task.kind == "vm.migrate" and task.node == "n1"
    assert task.params == {"target": "n2", "with_local_disks": True, "bwlimit_mbps": 200,
                           "origin": None}
    assert "already migrating" in await refusal(api, 102, 409, target="n2",
                                                with_local_disks=True)
    assert (await api.get("/vms/102/migration")).status_code == 404


async def test_targets_list_every_host_and_why_it_is_refused(api: httpx.AsyncClient) -> None:
    r = await api.get("/vms/101/targets")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["vmid"], body["node"], body["running"], body["local_disks"]) == (
        101, "n1", True, [])
    t = {row["node"]: row for row in body["targets"]}
    assert sorted(t) == ["down", "maint", "n1", "n2", "small"]
    assert t["n1"]["reasons"] == ["VM 101 is already on n1"] and t["n1"]["current"]
    assert t["n2"]["allowed"] and t["n2"]["reasons"] == []
    assert t["n2"]["free_memory_mb"] > 512 and t["n2"]["cpus"] == 2
    assert t["down"]["reasons"] == ["node down is offline"]
    assert t["maint"]["reasons"] == ["node maint is in maintenance"]
    assert "not enough free memory on small" in t["small"]["reasons"][0]
    # What the list refuses, the migration refuses with the same reason.
    for name, row in t.items():
        if not row["allowed"]:
            assert row["reasons"][0] in await refusal(api, 101, 409, target=name)


async def test_targets_follow_local_disks_and_ha_rules(api: httpx.AsyncClient) -> None:
    n2 = {row["node"]: row for row in (await api.get("/vms/102/targets")).json()["targets"]}["n2"]
    assert not n2["allowed"] and "--with-local-disks" in n2["reasons"][0]
    body = (await api.get("/vms/102/targets", params={"with_local_disks": "true"})).json()
    assert body["local_disks"] == ["local:vm-102-disk-0.qcow2"] and body["with_local_disks"]
    assert {row["node"]: row for row in body["targets"]}["n2"]["allowed"]
    r = await api.post("/ha/rules", json={"name": "home", "kind": "node-preference",
                                          "vms": [101], "nodes": {"n1": 1}, "strict": True})
    assert r.status_code == 201, r.text
    t = {row["node"]: row for row in (await api.get("/vms/101/targets")).json()["targets"]}
    assert t["n2"]["reasons"] == ["rule home: n2 is not among its nodes"]


async def test_targets_of_a_bad_vmid_are_a_clear_error(api: httpx.AsyncClient) -> None:
    r = await api.get("/vms/999/targets")
    assert r.status_code == 404
    assert r.json()["error"] == {"code": "not_found", "message": "VM 999 does not exist",
                                 "field": None}
    r = await api.get("/vms/web1/targets")
    assert r.status_code == 422 and r.json()["error"]["field"] == "vmid"
    r = await api.get("/vms/101/targets", params={"with_local_disks": "maybe"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "with_local_disks"
