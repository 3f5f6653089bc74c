"""The HA API against a real etcd: resources, rules, status, and VM actions HA follows."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from api_thread import api_client

from corral.cluster import keys
from corral.cluster.models import NodeInfo, Placement, RunState, VMConfig, VMRuntime, VMStatus
from corral.cluster.store import Store
from corral.ha import store as ha_store
from corral.ha.machine import decide_ha
from corral.ha.models import FenceConfirmation, HAState, HATiming, NodeHAState, NodeStatusHA

pytestmark = pytest.mark.integration

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def seed(store: Store) -> None:
    await store.add_token(TOKEN)
    for name in ("n1", "n2"):
        await store.put(keys.node(name, "info"), NodeInfo(name=name, cpus=2, memory_mb=4096))
    await store.client.put(keys.node("n1", "alive").encode(), b"1")
    for vmid, status in ((101, VMStatus.RUNNING), (102, VMStatus.STOPPED)):
        state = RunState.RUNNING if status is VMStatus.RUNNING else RunState.STOPPED
        cfg = VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=128, cores=1)
        assert await store.create_vm(cfg, Placement(node="n1", state=state))
        await store.put_runtime(vmid, VMRuntime(node="n1", status=status, pid=42))


@pytest.fixture
async def api(store: Store, etcd_endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    await seed(store)
    async with api_client(etcd_endpoint, AUTH) as client:
        yield client


async def test_resources_crud(api: httpx.AsyncClient, store: Store) -> None:
    r = await api.post("/ha/resources", json={"vmid": 101})
    assert r.status_code == 201 and r.json()["state"] == "started"
    assert (await api.post("/ha/resources", json={"vmid": 101})).status_code == 409
    r = await api.put("/ha/resources/101", json={"max_restart": 3, "state": "stopped"})
    assert r.status_code == 200 and (r.json()["max_restart"], r.json()["state"]) == (3, "stopped")
    assert (await ha_store.get_settings(store, 101)) is not None
    assert [s["vmid"] for s in (await api.get("/ha/resources")).json()] == [101]
    assert (await api.delete("/ha/resources/101")).status_code == 204
    assert (await api.get("/ha/resources/101")).status_code == 404
    assert (await api.delete("/ha/resources/101")).status_code == 404


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/ha/resources", {"vmid": 999}, "vmid"),
    ("/ha/resources", {"vmid": 101, "state": "sleeping"}, "state"),
    ("/ha/resources", {"vmid": 101, "max_restart": -1}, "max_restart"),
    ("/ha/rules", {"name": "x", "kind": "anti-affinity", "vms": [101]}, None),
    ("/ha/rules", {"name": "x", "kind": "anti-affinity", "vms": [101, 555]}, "vms"),
    ("/ha/rules", {"name": "x", "kind": "node-preference", "vms": [101],
                   "nodes": {"n9": 1}}, "nodes"),
    ("/ha/rules", {"name": "-bad", "kind": "anti-affinity", "vms": [101, 102]}, "name"),
])
async def test_bad_input_names_the_field(api: httpx.AsyncClient, path: str,
                                         body: dict[str, object], field: str | None) -> None:
    r = await api.post(path, json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    if field is not None:
        assert err["field"] == field, err
    else:
        assert "vms" in err["message"], err


async def test_rules(api: httpx.AsyncClient) -> None:
    r = await api.post("/ha/rules", json={"name": "apart", "kind": "anti-affinity",
                                          "vms": [101, 102]})
    assert r.status_code == 201
    r = await api.post("/ha/rules", json={"name": "big", "kind": "node-preference",
                                          "vms": [101], "nodes": {"n1": 2, "n2": 1},
                                          "strict": True})
    assert r.status_code == 201
    assert [x["name"] for x in (await api.get("/ha/rules")).json()] == ["apart", "big"]
    assert (await api.post("/ha/rules", json={"name": "apart", "kind": "anti-affinity",
                                              "vms": [101, 102]})).status_code == 409
    assert (await api.delete("/ha/rules/apart")).status_code == 204
    assert (await api.delete("/ha/rules/apart")).status_code == 404


async def test_status_from_the_persisted_state(api: httpx.AsyncClient, store: Store) -> None:
    await api.post("/ha/resources", json={"vmid": 101})
    await api.post("/ha/resources", json={"vmid": 102, "state": "stopped"})
    r = (await api.get("/ha/status")).json()
    assert {v["vmid"]: v["status"] for v in r["vms"]} == {101: "started", 102: "pending"}
    # What the manager would persist, read back by the status endpoint.
    snap, inputs = await ha_store.read_all(store, 100.0)
    _, state = decide_ha(snap, inputs, HATiming())
    await ha_store.put_state(store, state)
    r = (await api.get("/ha/status")).json()
    assert {v["vmid"]: v["status"] for v in r["vms"]} == {101: "started", 102: "stopped"}
    assert {n["node"]: n["status"] for n in r["nodes"]} == {"n1": "online", "n2": "fence"}
    await ha_store.put_state(store, HAState(nodes={"n2": NodeHAState(
        status=NodeStatusHA.FENCED, lost_at=1.0)}))
    assert (await ha_store.read_inputs(store)).state.nodes["n2"].lost_at == 1.0


async def test_vm_actions_carry_the_ha_request(api: httpx.AsyncClient, store: Store) -> None:
    await api.post("/ha/resources", json={"vmid": 101})
    assert (await api.post("/vms/101/status/shutdown")).status_code == 202
    assert (await ha_store.get_settings(store, 101)).state == "stopped"  # type: ignore[union-attr]
    await api.post("/ha/resources", json={"vmid": 102, "state": "stopped"})
    assert (await api.post("/vms/102/status/start")).status_code == 202
    assert (await ha_store.get_settings(store, 102)).state == "started"  # type: ignore[union-attr]


async def test_operator_confirms_a_lost_host_is_off(api: httpx.AsyncClient, store: Store) -> None:
    # n1 holds its lease: confirming it off would let its VMs run twice.
    refused = await api.post("/ha/fenced/n1")
    assert refused.status_code == 409 and refused.json()["error"]["field"] == "node"
    assert (await api.post("/ha/fenced/n9")).status_code == 404
    await store.client.delete(keys.node("n1", "alive").encode())
    ok = await api.post("/ha/fenced/n1")
    assert ok.status_code == 201
    inputs = await ha_store.read_inputs(store)
    assert inputs.fenced["n1"].by == "operator"


async def test_a_confirmation_is_refused_in_the_writing_transaction(store: Store) -> None:
    """The store refuses by itself, at the revision it writes: no caller can confirm a host
    that holds its lease, whatever it read before."""
    await store.put(keys.node("n3", "info"), NodeInfo(name="n3", cpus=2, memory_mb=4096))
    lease = await store.grant_lease(5)
    await store.client.put(keys.node("n3", "alive").encode(), b"1", lease=lease)
    conf = FenceConfirmation(node="n3", at=time.time(), by="ipmi")
    assert not await ha_store.confirm_fenced(store, conf)
    assert "n3" not in (await ha_store.read_inputs(store)).fenced
    await lease.revoke()  # the lease expires: the host is off as far as etcd knows
    assert await ha_store.confirm_fenced(store, conf)
    assert (await ha_store.read_inputs(store)).fenced["n3"].by == "ipmi"


async def test_an_operator_migration_that_breaks_an_ha_rule_is_refused(
        api: httpx.AsyncClient, store: Store) -> None:
    await store.client.put(keys.node("n2", "alive").encode(), b"1")
    cfg = VMConfig(vmid=103, name="vm103", memory_mb=128, cores=1)
    assert await store.create_vm(cfg, Placement(node="n2", state=RunState.RUNNING))
    assert (await api.post("/ha/rules", json={"name": "apart", "kind": "anti-affinity",
                                              "vms": [101, 103]})).status_code == 201
    r = await api.post("/vms/101/migrate", json={"target": "n2"})
    assert r.status_code == 409, r.text
    assert "rule apart: VM 103 runs on n2" in r.json()["error"]["message"]
    await api.delete("/ha/rules/apart")
    assert (await api.post("/ha/rules", json={
        "name": "home", "kind": "node-preference", "vms": [101], "nodes": {"n1": 1},
        "strict": True})).status_code == 201
    r = await api.post("/vms/101/migrate", json={"target": "n2"})
    assert r.status_code == 409 and "rule home: n2 is not among its nodes" in r.text
    # A VM no rule names moves as before.
    assert (await api.post("/vms/103/migrate", json={"target": "n1"})).status_code == 202
