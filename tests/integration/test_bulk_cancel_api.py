"""Cancelling a bulk job through the API against a real etcd: the records it writes, what it
leaves alone, and refusals naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_thread import api_client

from corral.cluster import keys
from corral.cluster.models import NodeInfo, Placement, RunState, Task, TaskState, VMConfig
from corral.cluster.store import Store
from corral.manager.bulk import marker_id

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer t"}


@pytest.fixture
async def api(store: Store, etcd_endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    await store.add_token("t")
    for name in ("n1", "n2"):
        await store.put(keys.node(name, "info"), NodeInfo(name=name, cpus=2, memory_mb=4096))
        await store.client.put(keys.node(name, "alive").encode(), b"1")
    for vmid in (101, 102, 103):
        await store.create_vm(VMConfig(vmid=vmid, name=f"v{vmid}", memory_mb=64, cores=1),
                              Placement(node="n1", state=RunState.RUNNING))
    async with api_client(etcd_endpoint, AUTH) as client:
        yield client


async def running_job(store: Store) -> None:
    """A migrate job the manager planned: 101 migrating (claimed), 102 queued, 103 waiting."""
    await store.put_task(Task(
        id="b1", kind="node.bulk", node="n1", state=TaskState.RUNNING,
        params={"action": "migrate", "target": "n2", "parallel": 2},
        result={"plan": [101, 102, 103], "succeeded": [], "failed": {}, "skipped": {}}))
    for vmid, state in ((101, TaskState.RUNNING), (102, TaskState.QUEUED)):
        await store.put_task(Task(id=f"b1-{vmid}", kind="vm.migrate", node="n1", vmid=vmid,
                                  parent="b1", state=state, params={"target": "n2"}))


async def test_a_whole_cancel_ends_what_has_not_begun_and_leaves_the_migration(
        api: httpx.AsyncClient, store: Store) -> None:
    await running_job(store)
    r = await api.post("/tasks/b1/cancel")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["whole"] is True and body["cancelled"] == [102, 103]
    assert "101" in body["begun"]
    migrating = await store.task("b1-101")
    assert migrating is not None and migrating.state is TaskState.RUNNING  # untouched
    for vmid in (102, 103):
        child = await store.task(f"b1-{vmid}")
        assert child is not None and child.state is TaskState.ERROR
        assert child.result.get("cancelled") is True
    assert await store.task(marker_id("b1")) is not None
    again = (await api.post("/tasks/b1/cancel")).json()
    assert again["cancelled"] == [] and again["finished"] == {"102": "already cancelled",
                                                              "103": "already cancelled"}


async def test_a_cancel_naming_a_vm_under_way_is_refused_with_the_reason(
        api: httpx.AsyncClient, store: Store) -> None:
    await running_job(store)
    r = await api.post("/tasks/b1/cancel", json={"vms": [101]})
    assert r.status_code == 409, r.text
    assert r.json()["error"]["field"] == "vms"
    assert "VM 101: its vm.migrate has begun" in r.json()["error"]["message"]
    r = await api.post("/tasks/b1/cancel", json={"vms": [103]})
    assert r.status_code == 200 and r.json()["cancelled"] == [103]
    assert await store.task(marker_id("b1")) is None  # only that VM
    queued = await store.task("b1-102")
    assert queued is not None and queued.state is TaskState.QUEUED


async def test_a_job_not_planned_yet_is_cancelled_for_every_vm_of_the_host(
        api: httpx.AsyncClient, store: Store) -> None:
    r = await api.post("/nodes/n1/bulk", json={"action": "shutdown"})
    task_id = r.json()["task"]
    body = (await api.post(f"/tasks/{task_id}/cancel", json=None)).json()
    assert body["cancelled"] == [101, 102, 103]


@pytest.mark.parametrize(("task_id", "body", "status", "field"), [
    ("nope", None, 404, None),
    ("t-start", None, 409, None),
    ("b1", {"vms": [555]}, 422, "vms"),
    ("b1", {"vms": []}, 422, "vms"),
    ("b1", {"vms": [101], "force": True}, 422, "force"),
])
async def test_refusals_name_the_field(api: httpx.AsyncClient, store: Store, task_id: str,
                                       body: dict[str, object] | None, status: int,
                                       field: str | None) -> None:
    await running_job(store)
    await store.put_task(Task(id="t-start", kind="vm.start", node="n1", vmid=101))
    r = await api.post(f"/tasks/{task_id}/cancel", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == field
