"""The balancer's API against a real etcd: settings (bad values refused naming the field,
nothing changed), on/off, a plan that queues nothing, and apply that queues migration tasks
saying why, once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_thread import api_client

from corral.balancer.model import BalanceConfig
from corral.cluster import keys
from corral.cluster.models import (
    NodeInfo,
    Placement,
    RecentUsage,
    RunState,
    Series,
    TaskState,
    VMConfig,
    VmRecent,
    VMRuntime,
    VMStatus,
)
from corral.cluster.records import dump
from corral.cluster.store import Store

pytestmark = pytest.mark.integration

TOKEN = "balance-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BUSY = (101, 102, 103, 104)
OPTED_OUT = 105


def recent(demand: dict[int, float]) -> RecentUsage:
    flat: Series = [0.1] * 10
    return RecentUsage(step_seconds=60, last_at=1e9, cpu_avg=flat, cpu_max=flat,
                       memory_used_mib=[500] * 10, other_cores=[0.0] * 10,
                       vms={v: VmRecent(cores_avg=[c] * 10, cores_max=[c] * 10, memory_mib=100)
                            for v, c in demand.items()})


async def seed(store: Store) -> None:
    """Five busy VMs on n1 (one opted out of balancing), n2 and n3 idle."""
    await store.add_token(TOKEN)
    lease = await store.grant_lease(60)
    demand = dict.fromkeys((*BUSY, OPTED_OUT), 1.9)
    for name in ("n1", "n2", "n3"):
        await store.put(keys.node(name, "info"), NodeInfo(name=name, cpus=4, memory_mb=8192))
        await store.client.put(keys.node(name, "alive").encode(), b"1", lease=lease)
        await store.client.put(keys.node(name, "recent").encode(),
                               dump(recent(demand if name == "n1" else {})), lease=lease)
    for vmid in demand:
        cfg = VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=256, cores=2,
                       balance=vmid != OPTED_OUT)
        assert await store.create_vm(cfg, Placement(node="n1", state=RunState.RUNNING))
        await store.put_runtime(vmid, VMRuntime(node="n1", status=VMStatus.RUNNING, pid=42))


@pytest.fixture
async def api(store: Store, etcd_endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    await seed(store)
    async with api_client(etcd_endpoint, AUTH) as client:
        yield client


async def test_settings_change_in_part_and_bad_ones_change_nothing(
        api: httpx.AsyncClient, store: Store) -> None:
    r = await api.get("/balance")
    assert r.status_code == 200
    assert r.json()["config"] == BalanceConfig().model_dump() and r.json()["last_round"] is None
    r = await api.put("/balance/config", json={"cpu_weight": 2, "max_concurrent": 3})
    assert r.status_code == 200 and (r.json()["cpu_weight"], r.json()["max_concurrent"]) == (2, 3)
    for body, field in (({"threshold": -1}, "threshold"), ({"max_concurrent": "many"},
                        "max_concurrent"), ({"thresold": 0.1}, "thresold"),
                        ({"cpu_weight": 0, "memory_weight": 0}, "cpu_weight")):
        r = await api.put("/balance/config", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["field"] == field, r.json()
        assert field in r.json()["error"]["message"]
    stored, _ = await store.get(keys.BALANCE_CONFIG, BalanceConfig)
    assert stored is not None and (stored.cpu_weight, stored.max_concurrent) == (2, 3)
    assert stored.threshold == BalanceConfig().threshold
    assert (await api.post("/balance/enable")).json()["enabled"] is True
    assert (await api.get("/balance/config")).json()["enabled"] is True
    assert (await api.post("/balance/disable")).json()["enabled"] is False


async def test_a_plan_queues_nothing_and_apply_queues_each_move_once(
        api: httpx.AsyncClient, store: Store) -> None:
    r = await api.get("/balance/plan")
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["moves"], plan
    assert {m["source"] for m in plan["moves"]} == {"n1"}
    assert {m["vmid"] for m in plan["moves"]} <= set(BUSY)
    assert "opted out" in plan["held"][str(OPTED_OUT)]
    assert not [t for t in await store.tasks() if t.kind == "vm.migrate"]

    dry = (await api.post("/balance/apply", json={"dry_run": True})).json()
    assert not dry["applied"] and dry["moves"] == plan["moves"]
    assert not [t for t in await store.tasks() if t.kind == "vm.migrate"]

    applied = (await api.post("/balance/apply", json={})).json()
    assert applied["applied"] and [m["vmid"] for m in applied["moves"]] == \
        [m["vmid"] for m in plan["moves"]]
    tasks = {t.id: t for t in await store.tasks() if t.kind == "vm.migrate"}
    assert {m["task"] for m in applied["moves"]} == set(tasks)
    for m in applied["moves"]:
        task = tasks[m["task"]]
        assert task.state is TaskState.QUEUED and task.node == "n1"
        assert task.params["target"] == m["target"]
        assert task.params["reason"].startswith("load balancing: ")
    # The same plan again (nothing ran the tasks): the moves in flight count against
    # max_concurrent, and no VM gets a second task.
    again = (await api.post("/balance/apply", json={})).json()
    assert not {m["vmid"] for m in again["moves"]} & {m["vmid"] for m in applied["moves"]}
    assert len([t for t in await store.tasks() if t.kind == "vm.migrate"]) <= \
        BalanceConfig().max_concurrent


async def test_a_vm_created_without_a_host_goes_where_the_balancer_would_put_it(
        api: httpx.AsyncClient, store: Store) -> None:
    r = await api.post("/vms", json={"name": "placed", "memory_mb": 256, "cores": 2})
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["node"] in ("n2", "n3"), created  # n1 is the busy one
    vm = await store.vm(created["vmid"])
    assert vm is not None and vm.placement.node == created["node"]
    # Nowhere has room: refused naming the field, every host's reason given, nothing made.
    r = await api.post("/vms", json={"name": "huge", "memory_mb": 16384, "cores": 1})
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["field"] == "node" and "not enough free memory on n2" in error["message"]
    assert await store.name_taken("huge") is None
