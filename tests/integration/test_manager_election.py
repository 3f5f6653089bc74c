"""Manager election and the fenced manager loop against a real etcd."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from corral.cluster import keys
from corral.cluster.actions import QueueTask, SetPlacement, UpdateTask
from corral.cluster.models import (
    NodeInfo,
    NodeRequest,
    Placement,
    RunState,
    Task,
    TaskState,
    VMConfig,
)
from corral.cluster.store import Store
from corral.cluster.view import ClusterView
from corral.ha import store as ha_store
from corral.ha.actions import ClearFenceConfirmation
from corral.ha.models import FenceConfirmation
from corral.manager import loop
from corral.manager.election import Election
from corral.manager.loop import Manager, NotLeader

pytestmark = pytest.mark.integration


class Host:
    """A contender: its own etcd lease, as an agent's Liveness holds it."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name
        self.lease: Any = None

    async def up(self, ttl: int = 5) -> Host:
        self.lease = await self.store.grant_lease(ttl)
        return self

    def election(self) -> Election:
        return Election(self.store, self.name, lambda: self.lease)


async def test_two_contenders_one_leader(store: Store) -> None:
    a, b = await Host(store, "n1").up(), await Host(store, "n2").up()
    token_a = await a.election().campaign()
    token_b = await b.election().campaign()
    assert token_a is not None and token_b is None
    assert (await a.election().holder())[0] == "n1"


async def test_our_name_on_an_old_lease_is_not_leadership(store: Store) -> None:
    old = await Host(store, "n1").up()
    assert await old.election().campaign() is not None
    restarted = await Host(store, "n1").up()  # the same host's agent after a SIGKILL
    assert await restarted.election().campaign() is None


async def test_revoked_lease_hands_over_to_the_other_contender(store: Store) -> None:
    a, b = await Host(store, "n1").up(), await Host(store, "n2").up()
    token_a = await a.election().win()
    lost = asyncio.create_task(a.election().lost(token_a))
    waiting = asyncio.create_task(b.election().win())
    await asyncio.sleep(0.3)
    assert not waiting.done() and not lost.done()
    await a.lease.revoke()  # what etcd does when n1's agent stops renewing
    token_b = await asyncio.wait_for(waiting, 5)
    await asyncio.wait_for(lost, 5)
    assert token_b > token_a and (await b.election().holder())[0] == "n2"


async def test_a_deposed_leader_cannot_write(store: Store) -> None:
    a, b = await Host(store, "n1").up(), await Host(store, "n2").up()
    token_a = await a.election().win()
    old = Manager(store, ClusterView(store), token_a)  # applies only: no view needed
    await a.lease.revoke()
    await b.election().win()
    task = Task(id="t-1", kind="vm.start", node="n1", vmid=101)
    with pytest.raises(NotLeader):
        await old.apply(QueueTask(task))
    assert await store.task("t-1") is None


async def test_actions_apply_as_fenced_transactions(store: Store) -> None:
    a = await Host(store, "n1").up()
    m = Manager(store, ClusterView(store), await a.election().win())
    task = Task(id="t-2", kind="node.bulk", node="n1")
    assert await m.apply(QueueTask(task))
    changed = task.model_copy(update={"progress": 0.5})
    assert await m.apply(UpdateTask(changed))
    # Queuing again never overwrites what is there (an agent may have claimed it meanwhile).
    assert not await m.apply(QueueTask(task))
    assert (await store.task("t-2")) == changed
    await store.create_vm(VMConfig(vmid=101, name="a", memory_mb=64, cores=1),
                          Placement(node="n1"))
    vm = await store.vm(101)
    assert vm is not None
    moved = vm.placement.model_copy(update={"origin": "n2"})
    assert await m.apply(SetPlacement(101, moved, vm.placement_rev))
    assert not await m.apply(SetPlacement(101, moved, vm.placement_rev))  # stale revision


async def test_the_elected_manager_runs_a_maintenance_request(
        store: Store, cluster_view: ClusterView) -> None:
    for name in ("n1", "n2"):
        await store.put(keys.node(name, "info"), NodeInfo(name=name, cpus=2, memory_mb=4096))
        await store.client.put(keys.node(name, "alive").encode(), b"1")
    await store.create_vm(VMConfig(vmid=101, name="a", memory_mb=64, cores=1),
                          Placement(node="n1", state=RunState.RUNNING))
    host = await Host(store, "n2").up()
    service = asyncio.create_task(loop.serve(store, cluster_view, "n2", lambda: host.lease))
    try:
        await store.put(keys.node("n1", "request"), NodeRequest(maintenance=True))
        for _ in range(50):
            tasks = [t for t in await store.tasks() if t.kind == "vm.migrate"]
            if tasks:
                break
            await asyncio.sleep(0.1)
        [task] = tasks
        assert (task.vmid, task.node, task.params["target"]) == (101, "n1", "n2")
    finally:
        service.cancel()
        await asyncio.gather(service, return_exceptions=True)


async def test_the_manager_forgets_old_finished_tasks(store: Store,
                                                     cluster_view: ClusterView) -> None:
    a = await Host(store, "n1").up()
    m = Manager(store, cluster_view, await a.election().win())
    day_old = Task(id="old", kind="vm.start", node="n1", vmid=100, state=TaskState.OK,
                   created_at=1.0, ended_at=2.0)
    fresh = day_old.model_copy(update={"id": "new", "ended_at": time.time()})
    await store.put_task(day_old)
    await store.put_task(fresh)
    await m.tick()
    assert await store.task("old") is None
    assert await store.task("new") == fresh


async def test_the_manager_clears_the_confirmation_of_a_host_that_rejoined(
        store: Store, cluster_view: ClusterView) -> None:
    """A confirmation counts for one loss: once the host holds a lease again (its agent
    registered again) the manager deletes it, so the host's next loss waits for its
    watchdog again. Not while the host is without a lease."""
    for name in ("n1", "n2"):
        await store.put(keys.node(name, "info"), NodeInfo(name=name, cpus=2, memory_mb=4096,
                                                          started_at=0))
    a = await Host(store, "n1").up()
    await store.client.put(keys.node("n1", "alive").encode(), b"1", lease=a.lease)
    m = Manager(store, cluster_view, await a.election().win())
    conf = FenceConfirmation(node="n2", at=10.0, by="ipmi")
    assert await ha_store.confirm_fenced(store, conf)  # n2 has no lease
    assert not await m.apply(ClearFenceConfirmation("n2"))  # still without a lease: kept
    await m.tick()
    assert "n2" in (await ha_store.read_inputs(store)).fenced
    n2 = await Host(store, "n2").up()  # n2's agent registers again
    await store.client.put(keys.node("n2", "alive").encode(), b"1", lease=n2.lease)
    actions = await m.tick()
    assert ClearFenceConfirmation("n2") in actions
    assert (await ha_store.read_inputs(store)).fenced == {}
