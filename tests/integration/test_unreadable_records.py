"""One record in etcd that does not decode (or that a newer version wrote) does not stop the
cluster: the manager decides over the rest, the API lists with 200, HA status names it, and
a real agent keeps reporting and running tasks, and never kills the QEMU of a VM it merely
cannot read. Bad records are written as raw bytes, as a broken or newer writer would."""

from __future__ import annotations

import json
import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from agents import AgentProc, agent_fixture, wait_for  # noqa: F401  (fixture)
from fastapi import FastAPI

from corral.api.app import create_app
from corral.cluster import keys
from corral.cluster.models import (
    NodeInfo,
    Placement,
    RunState,
    StorageConfig,
    StorageType,
    Task,
    TaskState,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.store import Store
from corral.cluster.view import ClusterView
from corral.ha import store as ha_store
from corral.ha.models import FenceConfirmation, HASettings
from corral.host.processes import pid_alive
from corral.manager.election import Election
from corral.manager.loop import Manager

pytestmark = pytest.mark.integration

TOKEN = "test-token"
BROKEN = b'{"vmid": 102, "name": "vm102", "memory_mb": '  # cut short mid-write
BAD_TASK = b'{"id": "bad1", "kind": "vm.start", "node": "n1", "vmid": "one-oh-one"}'


def config(vmid: int, memory_mb: int = 96) -> VMConfig:
    return VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=memory_mb, cores=1)


def newer(cfg: VMConfig) -> bytes:
    """The config as a newer version writes it: one field this version does not know."""
    return json.dumps({**cfg.model_dump(mode="json"), "numa": {"nodes": 2}}).encode()


async def put_raw(store: Store, key: str, raw: bytes) -> None:
    await store.client.put(key.encode(), raw)


async def add_vm(store: Store, vmid: int, node: str, running: bool = True) -> None:
    state = RunState.RUNNING if running else RunState.STOPPED
    assert await store.create_vm(config(vmid), Placement(node=node, state=state))
    await store.put_runtime(vmid, VMRuntime(node=node, status=VMStatus(state.value)))


async def bad_records(store: Store) -> None:
    """A newer version's config (readable), a broken config, a key that does not parse, a
    broken task, broken host facts and broken HA settings."""
    await put_raw(store, keys.vm(101, "config"), newer(config(101)))
    await put_raw(store, keys.vm(102, "config"), BROKEN)
    await put_raw(store, "/corral/vms/abc/config", newer(config(104)))
    await put_raw(store, keys.task("bad1"), BAD_TASK)
    await put_raw(store, keys.node("n9", "info"), b'{"name": "n9", "cpus": "many"}')
    await put_raw(store, keys.ha(105), b'{"vmid": 105, "max_restart": -1}')


# --- the manager ---------------------------------------------------------------------------


async def test_the_manager_recovers_the_other_vms_and_leaves_the_unreadable_one(
        store: Store, cluster_view: ClusterView, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("n1", "n2"):
        await store.put(keys.node(name, "info"), NodeInfo(
            name=name, cpus=4, memory_mb=4096, watchdog_timeout=5, started_at=1.0))
    lease = await store.grant_lease(10)
    await store.client.put(keys.node("n1", "alive").encode(), b"1", lease=lease)
    for vmid in (101, 102, 103):
        await add_vm(store, vmid, "n2")
        await ha_store.put_settings(store, HASettings(vmid=vmid))
    await bad_records(store)
    # n2 is powered off (a fence agent says so): its HA VMs are recovered on n1 at once.
    await ha_store.confirm_fenced(store, FenceConfirmation(node="n2", at=time.time()))
    token = await Election(store, "n1", lambda: lease).win()
    manager = Manager(store, cluster_view, token)

    with caplog.at_level(logging.WARNING, logger="corral.manager.loop"):
        await manager.tick()
        await manager.tick()
    placements = {v.vmid: v.placement for v in await store.vms()}
    assert placements[101].node == "n1" and placements[103].node == "n1"
    raw = await store.client.get(keys.vm(102, "placement").encode())
    assert Placement.model_validate_json(raw.value).node == "n2"  # not moved, not deleted
    assert (await store.client.get(keys.vm(102, "config").encode())).value == BROKEN
    # The newer version's field survives (nothing rewrote the config).
    raw101 = await store.client.get(keys.vm(101, "config").encode())
    assert json.loads(raw101.value)["numa"] == {"nodes": 2}
    warned = [r.getMessage() for r in caplog.records if "does not decode" in r.getMessage()]
    assert sum(keys.vm(102, "config") in m for m in warned) == 1, warned  # once, not per tick
    assert any(keys.task("bad1") in m for m in warned)
    await lease.revoke()


# --- the API -------------------------------------------------------------------------------


@pytest.fixture
async def api(store: Store, etcd_endpoint: str) -> AsyncIterator[httpx.AsyncClient]:
    await store.add_token(TOKEN)
    await store.put(keys.node("n1", "info"), NodeInfo(name="n1", cpus=4, memory_mb=4096))
    await store.client.put(keys.node("n1", "alive").encode(), b"1")
    await store.put_storage(StorageConfig(id="local", type=StorageType.DIR, path="images"))
    app: FastAPI = create_app([etcd_endpoint])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api/api/v1",
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            yield client


async def test_the_api_lists_the_good_records_and_names_the_others(
        api: httpx.AsyncClient, store: Store) -> None:
    for vmid in (101, 102, 103):
        await add_vm(store, vmid, "n1")
    await ha_store.put_settings(store, HASettings(vmid=103))
    await bad_records(store)

    r = await api.get("/vms")
    assert r.status_code == 200, r.text
    assert [v["vmid"] for v in r.json()] == [101, 103]
    assert r.headers["Corral-Skipped-Records"].split() == [
        "/corral/vms/102/config", "/corral/vms/abc/config"]
    r = await api.get("/nodes")
    assert r.status_code == 200, r.text
    nodes = {n["name"]: n for n in r.json()}
    assert nodes["n1"]["vms"] == 2 and nodes["n9"]["cpus"] is None
    assert keys.node("n9", "info") in r.headers["Corral-Skipped-Records"]
    r = await api.get("/tasks")
    assert r.status_code == 200 and keys.task("bad1") in r.headers["Corral-Skipped-Records"]

    r = await api.get("/ha/status")
    assert r.status_code == 200, r.text
    skipped = {s["key"]: s["problem"] for s in r.json()["skipped"]}
    assert set(skipped) == {keys.vm(102, "config"), "/corral/vms/abc/config",
                            keys.task("bad1"), keys.node("n9", "info"), keys.ha(105)}
    assert skipped[keys.vm(102, "config")].startswith("not JSON")
    assert skipped[keys.ha(105)].startswith("max_restart")

    # A newer version's field is shown with the record; the unreadable VM is a clear refusal.
    r = await api.get("/vms/101")
    assert r.status_code == 200 and r.json()["config"]["numa"] == {"nodes": 2}
    r = await api.get("/vms/102")
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "unreadable_record"
    assert keys.vm(102, "config") in r.json()["error"]["message"]
    r = await api.post("/vms/102/status/start")
    assert r.status_code == 409 and r.json()["error"]["code"] == "unreadable_record"
    r = await api.post("/vms/102/migrate", json={"target": "n1"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "unreadable_record"
    # Its console needs only the placement: past the VM read, to the host's agent.
    r = await api.get("/vms/102/console")
    assert r.status_code == 502 and "agent URL" in r.json()["error"]["message"]
    # Settings that do not decode can be removed (a repair), and nothing else went.
    assert (await api.delete("/ha/resources/105")).status_code == 204
    assert await store.client.get(keys.vm(102, "config").encode()) is not None


async def test_request_bodies_still_refuse_unknown_fields(api: httpx.AsyncClient,
                                                           store: Store) -> None:
    await add_vm(store, 101, "n1")
    r = await api.post("/ha/resources", json={"vmid": 101, "max_restrat": 2})
    assert r.status_code == 422 and r.json()["error"]["field"] == "max_restrat"
    r = await api.post("/ha/rules", json={"name": "r", "kind": "node-preference",
                                          "vms": [101], "nodes": {"n1": 1}, "stirct": True})
    assert r.status_code == 422 and r.json()["error"]["field"] == "stirct"
    r = await api.put("/ha/resources/101", json={"state": "started"})
    assert r.status_code == 404  # not managed yet; the body itself was fine
    r = await api.post("/nodes/n1/bulk", json={"action": "start", "paralel": 2})
    assert r.status_code == 422 and r.json()["error"]["field"] == "paralel"
    assert await store.client.get(keys.ha(101).encode()) is None


# --- a real agent --------------------------------------------------------------------------


async def run_task(store: Store, kind: str, vmid: int, wait: float = 60.0) -> Task:
    task = Task(id=uuid.uuid4().hex[:16], kind=kind, node="n1", vmid=vmid)
    await store.put_task(task)

    async def finished() -> Task | None:
        t = await store.task(task.id)
        return t if t is not None and t.state.finished else None

    done: Task = await wait_for(finished, wait, f"task {kind} on VM {vmid}")
    return done


async def test_the_agent_keeps_working_beside_records_it_cannot_read(
        store: Store, agent: AgentProc) -> None:
    pids = {}
    for vmid in (100, 101):
        assert await store.create_vm(config(vmid), Placement(node="n1"))
        started = await run_task(store, "vm.start", vmid)
        assert started.state is TaskState.OK, started.error
        pids[vmid] = started.result["pid"]
    # VM 101's config is cut short mid-write, and a task record is broken.
    await put_raw(store, keys.vm(101, "config"), b'{"vmid": 101, "name": "vm101", "mem')
    await put_raw(store, keys.task("bad1"), BAD_TASK)

    # Tasks still run; one on the unreadable VM fails clearly and leaves its QEMU alone.
    refused = await run_task(store, "vm.shutdown", 101)
    assert refused.state is TaskState.ERROR and "cannot be read" in (refused.error or "")
    assert pid_alive(pids[101])

    # The monitor still reports: a stale runtime of VM 100 is corrected on its next pass.
    async def reported() -> bool:
        vm = await store.vm(100)
        return bool(vm and vm.runtime and vm.runtime.status is VMStatus.RUNNING
                    and vm.runtime.pid == pids[100])

    await store.put_runtime(100, VMRuntime(node="n1", status=VMStatus.STOPPED))
    await wait_for(reported, 20, "the monitor to report VM 100 running")
    # And good tasks still run.
    for kind in ("vm.suspend", "vm.resume"):
        done = await run_task(store, kind, 100)
        assert done.state is TaskState.OK, done.error

    # A restart reconciles without killing what it cannot read: not an orphan.
    agent.kill(signal.SIGKILL)
    agent.start()

    log = agent.data_dir / "agent.log"

    async def reconciled() -> bool:
        return log.read_text().count("startup: adopt VM 100") == 1

    await wait_for(reconciled, 30, "the restarted agent to adopt VM 100")
    assert "VM 101 runs here but its record does not decode" in log.read_text()
    assert pid_alive(pids[101]), "the QEMU of a VM with an unreadable config was killed"

    await store.put_runtime(100, VMRuntime(node="n1", status=VMStatus.STOPPED))
    await wait_for(reported, 20, "the restarted agent's monitor to report VM 100")
    assert pid_alive(pids[101]) and agent.proc is not None and agent.proc.poll() is None


async def test_a_name_claim_that_does_not_decode_still_counts_as_taken(
        api: httpx.AsyncClient, store: Store) -> None:
    await put_raw(store, keys.name("web9"), b"not-a-vmid")
    r = await api.post("/vms", json={"name": "web9", "memory_mb": 64, "cores": 1,
                                     "node": "n1"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "unreadable_record", r.text
    assert await store.raw_prefix(keys.VMS) == []


async def test_a_lone_config_that_does_not_decode_is_named_not_taken_for_absent(
        api: httpx.AsyncClient, store: Store) -> None:
    """No placement beside it, so it is no VM; but a broken record is reported, and its id
    stays taken (a repair, not a new VM, is what it needs)."""
    await store.client.put(keys.vm(999, "config").encode(), b'{"bad json')
    r = await api.get("/vms/999")
    assert r.status_code == 409 and r.json()["error"]["code"] == "unreadable_record", r.text
    assert keys.vm(999, "config") in r.json()["error"]["message"]
    r = await api.get("/vms")
    assert r.status_code == 200 and r.json() == []
    assert r.headers["Corral-Skipped-Records"].split() == [keys.vm(999, "config")]
    skipped = [s["key"] for s in (await api.get("/ha/status")).json()["skipped"]]
    assert skipped == [keys.vm(999, "config")]
    body = {"vmid": 999, "name": "web1", "memory_mb": 128, "cores": 1, "node": "n1"}
    assert (await api.post("/vms", json=body)).status_code == 409
