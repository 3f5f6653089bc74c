"""Recent usage in etcd: the record a host publishes at /corral/nodes/<node>/recent reaches a
watch-fed view's snapshot (what the manager's load balancer reads), a malformed one is a
problem there, and a real agent publishes its guests' CPU demand from real QEMU processes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from agents import AgentProc, agent_fixture, wait_for

from corral.cluster import keys
from corral.cluster.models import Placement, RecentUsage, Task, TaskState, VMConfig, VmRecent
from corral.cluster.records import dump
from corral.cluster.store import Store
from corral.cluster.view import ClusterView

pytestmark = pytest.mark.integration
__all__ = ["agent_fixture"]  # the `agent` fixture, used by name

# Samples every 10 s, published every 30 s; a loaded machine boots guests slowly.
PUBLISH_WAIT = 180.0
BURNER, IDLE = 150, 151


def record(cores: float) -> RecentUsage:
    return RecentUsage(step_seconds=60, last_at=time.time(), cpu_avg=[0.25, 0.5],
                       cpu_max=[0.3, 0.9], memory_used_mib=[900, 950],
                       other_cores=[None, 0.1],
                       vms={101: VmRecent(cores_avg=[None, cores], cores_max=[None, cores],
                                          memory_mib=120)})


async def recent_in_view(view: ClusterView, node: str = "n1") -> RecentUsage | None:
    n = (await view.current(time.time())).nodes.get(node)
    return n.recent if n is not None else None


async def test_a_hosts_recent_usage_reaches_the_views_snapshot_and_goes_with_its_lease(
        store: Store, cluster_view: ClusterView) -> None:
    lease = await store.grant_lease(30)
    key = keys.node("n1", "recent").encode()
    await store.client.put(keys.node("n1", "alive").encode(), b"1", lease=lease)
    sent = record(0.75)
    await store.client.put(key, dump(sent), lease=lease)
    assert await recent_in_view(cluster_view) == sent
    assert (await store.node("n1")).recent == sent  # type: ignore[union-attr]

    newer = record(1.5)
    await store.client.put(key, dump(newer), lease=lease)
    got = await recent_in_view(cluster_view)
    assert got is not None and got.vms[101].cores_avg == [None, 1.5]

    await store.revoke_lease(lease)  # the host is gone: so are its figures
    assert await recent_in_view(cluster_view) is None


async def test_a_malformed_recent_record_is_a_problem_and_the_host_still_reads(
        store: Store, cluster_view: ClusterView) -> None:
    await store.client.put(keys.node("n1", "alive").encode(), b"1")
    await store.client.put(keys.node("n1", "recent").encode(),
                           b'{"step_seconds": 60, "last_at": 1, "cpu_avg": [0.1]}')
    snap = await cluster_view.current(time.time())
    assert snap.nodes["n1"].alive and snap.nodes["n1"].recent is None
    assert [p.key for p in snap.problems] == ["/corral/nodes/n1/recent"]
    await store.client.put(keys.node("n1", "recent").encode(), b"not json")
    snap = await cluster_view.current(time.time())
    assert snap.nodes["n1"].alive and "not JSON" in snap.problems[0].what


async def run_task(store: Store, kind: str, vmid: int) -> None:
    task = Task(id=f"{kind}-{vmid}-{time.monotonic_ns()}", kind=kind, node="n1", vmid=vmid)
    await store.put_task(task)

    async def finished() -> Task | None:
        t = await store.task(task.id)
        return t if t is not None and t.state.finished else None

    done: Task = await wait_for(finished, 60, f"task {kind} of {vmid}")
    assert done.state is TaskState.OK, done.error


def newest(series: list[Any]) -> float | None:
    return next((v for v in reversed(series) if v is not None), None)


async def test_the_agent_publishes_its_guests_cpu_demand(
        store: Store, agent: AgentProc, cluster_view: ClusterView) -> None:
    for vmid, append in ((BURNER, "corral.burn=1"), (IDLE, "")):
        cfg = VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=96, cores=1, append=append)
        assert await store.create_vm(cfg, Placement(node="n1"))
        await run_task(store, "vm.start", vmid)

    async def demand_shows() -> RecentUsage | None:
        rec = await recent_in_view(cluster_view)
        if rec is None or not {BURNER, IDLE} <= set(rec.vms):
            return None
        burner, idle = newest(rec.vms[BURNER].cores_avg), newest(rec.vms[IDLE].cores_avg)
        # The idle guest's boot takes CPU too: wait until its newest point is past it.
        if burner is None or idle is None or burner <= 0.5 or idle >= 0.2:
            return None
        return rec

    rec = await wait_for(demand_shows, PUBLISH_WAIT, "the burner busy and the idle VM idle")
    assert rec.step_seconds == 60 and rec.points == 15
    assert abs(rec.last_at - time.time()) < 120
    assert len(rec.vms[BURNER].cores_max) == 15
    assert max(v for v in rec.vms[BURNER].cores_max if v is not None) > 0.5
    burner_mib = rec.vms[BURNER].memory_mib
    assert burner_mib is not None and 1 < burner_mib < 600
    assert newest(rec.cpu_avg) is not None and newest(rec.memory_used_mib) is not None
    assert all(v is None or v >= 0 for v in rec.other_cores)

    # A VM stopped leaves the host's record at its next write.
    await run_task(store, "vm.stop", IDLE)

    async def idle_gone() -> bool:
        got = await recent_in_view(cluster_view)
        return got is not None and IDLE not in got.vms and BURNER in got.vms

    await wait_for(idle_gone, 90, "the stopped VM to leave the record")
