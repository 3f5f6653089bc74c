"""The cluster store against a real etcd."""

from __future__ import annotations

import asyncio

import pytest

from corral.cluster import keys
from corral.cluster.models import (
    Placement,
    RunState,
    Task,
    TaskState,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.store import Store

pytestmark = pytest.mark.integration


def cfg(vmid: int = 100, name: str = "web1") -> VMConfig:
    return VMConfig(vmid=vmid, name=name, memory_mb=128, cores=1)


async def test_create_vm_is_unique_by_id_and_name(store: Store) -> None:
    assert await store.create_vm(cfg(), Placement(node="n1"))
    # Sent again unchanged (a retried request) it is the same VM; anything else is a clash.
    assert await store.create_vm(cfg(), Placement(node="n1"))
    assert not await store.create_vm(cfg(), Placement(node="n2"))
    assert not await store.create_vm(cfg(101, "web1"), Placement(node="n2"))
    vms = await store.vms()
    assert [(v.vmid, v.placement.node) for v in vms] == [(100, "n1")]
    assert await store.next_vmid() == 101


async def test_create_vm_queues_its_task_in_the_same_write(store: Store) -> None:
    task = Task(id="t-create-100", kind="vm.create", node="n1", vmid=100)
    assert await store.create_vm(cfg(), Placement(node="n1"), task)
    config = await store.client.get(keys.vm(100, "config").encode())
    queued = await store.client.get(keys.task(task.id).encode())
    assert config is not None and queued is not None
    assert queued.mod_revision == config.mod_revision  # one transaction
    # Sent again (an answer lost), it is the same VM, though its task was claimed meanwhile.
    await store.put_task(task.model_copy(update={"state": TaskState.RUNNING}))
    assert await store.create_vm(cfg(), Placement(node="n1"), task)
    # A refused create queues nothing.
    other = Task(id="t-create-101", kind="vm.create", node="n2", vmid=101)
    assert not await store.create_vm(cfg(101, "web1"), Placement(node="n2"), other)
    assert await store.task(other.id) is None
    assert [t.id for t in await store.tasks()] == [task.id]


async def test_placement_change_is_conditioned_on_revision(store: Store) -> None:
    await store.create_vm(cfg(), Placement(node="n1"))
    vm = await store.vm(100)
    assert vm is not None
    moved = Placement(node="n2", state=RunState.RUNNING, generation=1)
    assert await store.set_placement(100, moved, vm.placement_rev)
    # A second writer holding the same (now stale) revision loses.
    assert not await store.set_placement(100, Placement(node="n3"), vm.placement_rev)
    after = await store.vm(100)
    assert after is not None and after.placement.node == "n2"


async def test_delete_vm_frees_the_name(store: Store) -> None:
    await store.create_vm(cfg(), Placement(node="n1"))
    vm = await store.vm(100)
    assert vm is not None and await store.delete_vm(vm)
    assert await store.vm(100) is None
    assert await store.name_taken("web1") is None


async def test_lease_bound_key_disappears_when_lease_revoked(store: Store) -> None:
    lease = await store.grant_lease(5)
    await store.client.put(keys.node("n1", "alive").encode(), b"1", lease=lease)
    assert (await store.nodes())[0].alive
    assert await store.refresh_lease(lease) > 0
    await lease.revoke()
    assert await store.nodes() == []


async def test_task_claim_happens_once(store: Store) -> None:
    task = Task(id="t1", kind="vm.start", node="n1", vmid=100)
    await store.put_task(task)
    _, rev = await store.get(keys.task("t1"), Task)
    # Two claimants: their claims differ (each stamps its own start time).
    first = task.model_copy(update={"state": TaskState.RUNNING, "started_at": 1.0})
    second = task.model_copy(update={"state": TaskState.RUNNING, "started_at": 2.0})
    results = await asyncio.gather(
        store.claim_task(task, rev, first), store.claim_task(task, rev, second)
    )
    assert sorted(results) == [False, True]


async def test_watch_sees_puts_and_deletes(store: Store) -> None:
    seen: list[tuple[str, bytes | None]] = []

    async def watch() -> None:
        async for ev in store.watch_prefix(keys.TASKS):
            seen.append((ev.key, ev.value))
            if ev.value is None:
                return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.3)
    await store.put_task(Task(id="t2", kind="vm.start", node="n1"))
    await store.delete(keys.task("t2"))
    await asyncio.wait_for(watcher, 10)
    assert [k for k, _ in seen] == [keys.task("t2")] * 2
    assert seen[-1][1] is None


async def test_token_is_stored_hashed(store: Store) -> None:
    await store.add_token("s3cret")
    assert await store.token_valid("s3cret")
    assert not await store.token_valid("wrong")
    raw = await store.raw_prefix(keys.TOKENS)
    assert all(b"s3cret" not in k.encode() + v for k, v, _ in raw)


async def test_runtime_report_from_a_host_the_vm_left_is_not_written(store: Store) -> None:
    assert await store.create_vm(VMConfig(vmid=130, name="r130", memory_mb=64, cores=1),
                                 Placement(node="n1"))
    vm = await store.vm(130)
    assert vm is not None
    read_rev = vm.placement_rev
    # The VM moves (HA recovery) after n1 read it: n1's late report must not land.
    assert await store.set_placement(130, vm.placement.model_copy(update={"node": "n3"}),
                                     read_rev)
    stale = VMRuntime(node="n1", status=VMStatus.STOPPED)
    assert not await store.put_runtime(130, stale, read_rev)
    moved = await store.vm(130)
    assert moved is not None and moved.runtime is None
    assert await store.put_runtime(130, VMRuntime(node="n3", status=VMStatus.RUNNING),
                                   moved.placement_rev)
