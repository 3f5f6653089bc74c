"""The REST API against a real etcd: auth, refusals that leave etcd untouched, task queueing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from corral.api import paging, wire
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
from corral.cluster.store import Store, token_digest

pytestmark = pytest.mark.integration

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def seed(store: Store) -> None:
    await store.add_token(TOKEN)
    await store.put(keys.node("n1", "info"), NodeInfo(name="n1", cpus=4, memory_mb=4096))
    await store.client.put(keys.node("n1", "alive").encode(), b"1")
    await store.put(keys.node("n2", "info"), NodeInfo(name="n2", cpus=2, memory_mb=2048))
    await store.put_storage(StorageConfig(id="local", type=StorageType.DIR, path="images"))


@pytest.fixture
async def app(store: Store, etcd_endpoint: str) -> AsyncIterator[FastAPI]:
    await seed(store)
    app = create_app([etcd_endpoint])
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api/api/v1", headers=AUTH
    ) as client:
        yield client


async def add_vm(
    store: Store, vmid: int = 101, status: VMStatus | None = None, node: str = "n1"
) -> None:
    state = RunState.RUNNING if status == VMStatus.RUNNING else RunState.STOPPED
    cfg = VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=128, cores=1)
    assert await store.create_vm(cfg, Placement(node=node, state=state))
    if status is not None:
        await store.put_runtime(vmid, VMRuntime(node=node, status=status, pid=42))


def err(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "field"}, body
    result: dict[str, Any] = body["error"]
    return result


async def test_auth_required_but_health_and_openapi_public(api: httpx.AsyncClient) -> None:
    r = await api.get("/vms", headers={"Authorization": ""})
    assert r.status_code == 401 and err(r)["code"] == "unauthorized"
    r = await api.get("/vms", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and err(r)["message"] == "invalid token"
    assert (await api.get("/health", headers={"Authorization": ""})).json() == {"ok": True}
    r = await api.get("/openapi.json", headers={"Authorization": ""})
    assert r.status_code == 200 and "/api/v1/vms" in r.json()["paths"]


async def test_a_new_token_works_at_once_and_a_revoked_one_stops(
        api: httpx.AsyncClient, app: FastAPI, store: Store) -> None:
    await store.add_token("fresh-token")  # the view may not have it yet: etcd is asked
    r = await api.get("/vms", headers={"Authorization": "Bearer fresh-token"})
    assert r.status_code == 200
    await store.client.delete(keys.token(token_digest("fresh-token")).encode())
    await app.state.view.current(0.0)  # the delete has reached the API's view
    r = await api.get("/vms", headers={"Authorization": "Bearer fresh-token"})
    assert r.status_code == 401 and err(r)["message"] == "invalid token"


async def test_the_kept_vm_list_follows_every_change_it_shows(
        api: httpx.AsyncClient, app: FastAPI, store: Store) -> None:
    await add_vm(store, 101, VMStatus.RUNNING)
    assert [v["status"] for v in (await api.get("/vms")).json()] == ["running"]
    kept = app.state.answers.vm_list_json()
    # A usage sample changes nothing a VM list shows: the encoded list is not built again.
    await store.client.put(keys.node("n1", "usage").encode(), b"{}")
    assert (await api.get("/vms")).status_code == 200
    assert app.state.answers.vm_list_json() is kept
    await add_vm(store, 102, VMStatus.STOPPED)  # a new VM, read right after its write
    assert [v["vmid"] for v in (await api.get("/vms")).json()] == [101, 102]
    await store.client.delete(keys.node("n1", "alive").encode())  # its host goes away
    assert [v["status"] for v in (await api.get("/vms")).json()] == ["unknown", "stopped"]
    r = await api.get("/vms", params={"status": "unknown"})  # the pages read the same
    assert [v["vmid"] for v in r.json()] == [101]


async def test_nodes_and_storage(api: httpx.AsyncClient, store: Store) -> None:
    await add_vm(store, 101, VMStatus.RUNNING)
    await add_vm(store, 102)
    nodes = {n["name"]: n for n in (await api.get("/nodes")).json()}
    assert nodes["n1"]["online"] and not nodes["n2"]["online"]
    assert (nodes["n1"]["vms"], nodes["n1"]["vms_running"], nodes["n1"]["cpus"]) == (2, 1, 4)
    assert (await api.get("/nodes/n2")).json()["vms"] == 0
    assert (await api.get("/nodes/nope")).status_code == 404
    assert [s["id"] for s in (await api.get("/storage")).json()] == ["local"]


BAD_CREATES: list[tuple[dict[str, Any], int, str | None]] = [
    ({"memory_mb": 0}, 422, "memory_mb"),
    ({"cores": -1}, 422, "cores"),
    ({"disks": ["nfs:1G"]}, 422, "disks[0]"),
    ({"disks": ["local:1G", "local:../../etc/passwd"]}, 422, "disks[1]"),
    ({"disks": ["../x:1G"]}, 422, "disks[0]"),
    ({"disks": ["/var/lib/x.qcow2"]}, 422, "disks[0]"),
    ({"node": "n9"}, 422, "node"),
    ({"node": "n2"}, 409, "node"),
    ({"name": "bad name!"}, 422, "name"),
    ({"name": "vm101"}, 409, "name"),
    ({"vmid": 101}, 409, "vmid"),
    ({"vmid": 5}, 422, "vmid"),
    ({"image": "../../etc/passwd"}, 422, "image"),
    ({"bogus": 1}, 422, "bogus"),
]


@pytest.mark.parametrize(("change", "status", "field"), BAD_CREATES)
async def test_bad_create_is_refused_and_writes_nothing(
    api: httpx.AsyncClient, store: Store, change: dict[str, Any], status: int, field: str | None
) -> None:
    await add_vm(store, 101)
    before = await store.raw_prefix(keys.PREFIX)
    body = {"name": "web1", "memory_mb": 128, "cores": 1, "disks": ["local:1G"], "node": "n1"}
    r = await api.post("/vms", json=body | change)
    assert r.status_code == status, r.text
    assert err(r)["field"] == field
    assert await store.raw_prefix(keys.PREFIX) == before


async def test_unparseable_body_is_a_422(api: httpx.AsyncClient) -> None:
    r = await api.post("/vms", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and err(r)["code"] == "invalid"


async def test_valid_create_writes_config_placement_and_task(
    api: httpx.AsyncClient, store: Store
) -> None:
    r = await api.post(
        "/vms",
        json={"name": "web1", "memory": 256, "cores": 2, "disks": ["local:1G"], "node": "n1"},
    )
    assert r.status_code == 202, r.text
    vmid, task_id = r.json()["vmid"], r.json()["task"]
    assert vmid == 100
    vm = await store.vm(vmid)
    assert vm is not None and vm.placement.node == "n1" and vm.placement.state == "stopped"
    assert vm.config.memory_mb == 256
    assert [d.volume for d in vm.config.disks] == ["local:vm-100-disk-0.qcow2"]
    assert vm.config.disks[0].size_mb == 1024
    task = await store.task(task_id)
    assert task is not None and (task.kind, task.node, task.vmid) == ("vm.create", "n1", 100)
    # One transaction: no moment, nor crash of the API, leaves the VM without its task.
    config_kv = await store.client.get(keys.vm(vmid, "config").encode())
    task_kv = await store.client.get(keys.task(task_id).encode())
    assert config_kv is not None and task_kv is not None
    assert config_kv.mod_revision == task_kv.mod_revision
    listed = (await api.get("/vms")).json()
    assert [(v["vmid"], v["status"], v["state"]) for v in listed] == [(100, "unknown", "stopped")]
    shown = (await api.get(f"/vms/{vmid}")).json()
    assert shown["config"]["name"] == "web1"
    tasks = (await api.get("/tasks", params={"vmid": vmid})).json()
    assert [t["id"] for t in tasks] == [task_id]
    assert (await api.get(f"/tasks/{task_id}")).json()["kind"] == "vm.create"


async def test_create_skips_ids_left_by_a_half_deleted_vm_and_refuses_an_unreadable_claim(
    api: httpx.AsyncClient, store: Store
) -> None:
    # The id and the name come from the API's view: written straight to etcd just before,
    # they must count all the same.
    await store.client.put(keys.vm(100, "runtime").encode(), b"{}")  # a VM half deleted
    await add_vm(store, 101)
    body = {"name": "web1", "memory_mb": 128, "cores": 1, "node": "n1"}
    r = await api.post("/vms", json=body)
    assert r.status_code == 202 and r.json()["vmid"] == 102, r.text
    r = await api.post("/vms", json=body | {"vmid": 100, "name": "web3"})
    assert r.status_code == 409 and err(r)["field"] == "vmid"
    await store.client.put(keys.name("web2").encode(), b"garbage")
    before = await store.raw_prefix(keys.PREFIX)
    r = await api.post("/vms", json=body | {"name": "web2"})
    assert r.status_code == 409 and "not a VM id" in err(r)["message"], r.text
    assert await store.raw_prefix(keys.PREFIX) == before


async def test_unknown_ids_are_404(api: httpx.AsyncClient) -> None:
    for r in [
        await api.get("/vms/555"),
        await api.post("/vms/555/status/start"),
        await api.delete("/vms/555"),
        await api.get("/tasks/abc"),
    ]:
        assert r.status_code == 404 and err(r)["code"] == "not_found"
    r = await api.get("/vms/abc")
    assert r.status_code == 422 and err(r)["field"] == "vmid"
    r = await api.post("/vms/101/status/explode")
    assert r.status_code == 422 and err(r)["field"] == "action"


async def test_action_refusals(api: httpx.AsyncClient, store: Store) -> None:
    await add_vm(store, 101, VMStatus.RUNNING)
    await add_vm(store, 102, VMStatus.STOPPED)
    await add_vm(store, 103, VMStatus.STOPPED, node="n2")
    before = await store.raw_prefix(keys.PREFIX)
    cases = [
        (101, "start", "VM 101 is already running"),
        (101, "resume", "VM 101 is not paused"),
        (102, "stop", "VM 102 is not running"),
        (102, "suspend", "VM 102 is not running"),
        (103, "start", "node n2 is offline"),
    ]
    for vmid, action, message in cases:
        r = await api.post(f"/vms/{vmid}/status/{action}")
        assert r.status_code == 409, (action, r.text)
        assert err(r)["message"].startswith(message)
    r = await api.delete("/vms/101")
    assert r.status_code == 409 and "force" in err(r)["message"]
    r = await api.post("/vms/101/status/shutdown", json={"timeout": -1})
    assert r.status_code == 422 and err(r)["field"] == "timeout"
    assert await store.raw_prefix(keys.PREFIX) == before


async def test_actions_queue_tasks_one_at_a_time(api: httpx.AsyncClient, store: Store) -> None:
    await add_vm(store, 101, VMStatus.RUNNING)
    r = await api.post("/vms/101/status/shutdown", json={"timeout": 30})
    assert r.status_code == 202
    task = await store.task(r.json()["task"])
    assert task is not None and (task.kind, task.params) == ("vm.shutdown", {"timeout": 30.0})
    r = await api.post("/vms/101/status/stop")
    assert r.status_code == 409
    assert err(r)["message"] == f"VM 101 has a task in progress: {task.id} vm.shutdown"
    await store.put_task(task.model_copy(update={"state": TaskState.OK}))
    r = await api.delete("/vms/101", params={"force": "true"})
    assert r.status_code == 202
    deleted = await store.task(r.json()["task"])
    assert deleted is not None and deleted.params == {"force": True}


async def test_tasks_newest_first_and_filtered(api: httpx.AsyncClient, store: Store) -> None:
    for i, node in enumerate(["n1", "n2", "n1"]):
        await store.put_task(Task(id=f"t{i}", kind="vm.start", node=node, created_at=i))
    assert [t["id"] for t in (await api.get("/tasks")).json()] == ["t2", "t1", "t0"]
    assert [t["id"] for t in (await api.get("/tasks?node=n1&limit=1")).json()] == ["t2"]
    r = await api.get("/tasks?limit=0")
    assert r.status_code == 422 and err(r)["field"] == "limit"


async def test_console_unreachable_agent_is_502(api: httpx.AsyncClient, store: Store) -> None:
    await store.put(
        keys.node("n1", "info"),
        NodeInfo(name="n1", cpus=4, memory_mb=4096, agent_url="http://127.0.0.1:1"),
    )
    await add_vm(store, 101, VMStatus.RUNNING)
    r = await api.get("/vms/101/console")
    assert r.status_code == 502 and "n1" in err(r)["message"]


async def test_console_is_proxied_to_the_agent(
    app: FastAPI, api: httpx.AsyncClient, store: Store
) -> None:
    seen: list[httpx.Request] = []

    def agent(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/vms/101/console":
            return httpx.Response(200, json={"data": "login: ", "offset": 7})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})

    app.state.http = httpx.AsyncClient(transport=httpx.MockTransport(agent))
    await store.put(
        keys.node("n1", "info"),
        NodeInfo(name="n1", cpus=4, memory_mb=4096, agent_url="http://agent:9000/"),
    )
    await add_vm(store, 101, VMStatus.RUNNING)
    r = await api.get("/vms/101/console", params={"offset": 3})
    assert r.status_code == 200 and r.json() == {"data": "login: ", "offset": 7}
    assert seen[0].url.params["offset"] == "3"
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"


async def test_a_vm_on_an_offline_host_is_not_shown_as_running(
    api: httpx.AsyncClient, store: Store
) -> None:
    """Its last report came from a host that is gone: the API must not vouch for it."""
    await add_vm(store, 104, VMStatus.RUNNING, node="n2")
    listed = {v["vmid"]: v for v in (await api.get("/vms")).json()}
    assert listed[104]["status"] == "unknown" and "n2 is offline" in listed[104]["message"]
    detail = (await api.get("/vms/104")).json()
    assert detail["status"] == "unknown"
    await store.client.put(keys.node("n2", "alive").encode(), b"1")
    assert (await api.get("/vms/104")).json()["status"] == "running"


async def pages(api: httpx.AsyncClient, path: str, **params: Any) -> list[list[Any]]:
    """Every page of a list, following the next-page cursor header."""
    out: list[list[Any]] = []
    while True:
        r = await api.get(path, params=params)
        assert r.status_code == 200, r.text
        out.append(r.json())
        cursor = r.headers.get(wire.NEXT_CURSOR_HEADER)
        if cursor is None:
            return out
        params["cursor"] = cursor
        assert len(out) < 20, "the cursor does not move on"


async def test_vms_are_paged_with_a_cursor_and_filtered(
        api: httpx.AsyncClient, store: Store) -> None:
    await store.client.put(keys.node("n2", "alive").encode(), b"1")
    for vmid, node, status in [(105, "n1", VMStatus.RUNNING), (101, "n1", None),
                               (103, "n2", VMStatus.RUNNING), (102, "n2", None),
                               (104, "n1", VMStatus.RUNNING)]:
        await add_vm(store, vmid, status, node)
    whole = await api.get("/vms")
    assert [v["vmid"] for v in whole.json()] == [101, 102, 103, 104, 105]
    assert wire.NEXT_CURSOR_HEADER not in whole.headers  # no limit: all, as before paging
    got = [[v["vmid"] for v in page] for page in await pages(api, "/vms", limit=2)]
    assert got == [[101, 102], [103, 104], [105]]
    got = [[v["vmid"] for v in p] for p in await pages(api, "/vms", limit=2, node="n1")]
    assert got == [[101, 104], [105]]
    running = (await api.get("/vms", params={"status": "running", "node": "n2"})).json()
    assert [v["vmid"] for v in running] == [103]
    assert (await api.get("/vms", params={"node": "n9"})).json() == []


async def test_a_vm_created_between_pages_is_not_served_twice(
        api: httpx.AsyncClient, store: Store) -> None:
    for vmid in (101, 103, 105):
        await add_vm(store, vmid)
    first = await api.get("/vms", params={"limit": 2})
    assert [v["vmid"] for v in first.json()] == [101, 103]
    await add_vm(store, 102)  # before the cursor: the next pages do not shift
    await add_vm(store, 104)
    rest = await pages(api, "/vms", limit=2,
                       cursor=first.headers[wire.NEXT_CURSOR_HEADER])
    assert [[v["vmid"] for v in page] for page in rest] == [[104, 105]]


async def test_nodes_and_tasks_are_paged(api: httpx.AsyncClient, store: Store) -> None:
    assert [[n["name"] for n in p] for p in await pages(api, "/nodes", limit=1)] == [
        ["n1"], ["n2"]]
    for i, state in enumerate([TaskState.OK, TaskState.ERROR, TaskState.OK]):
        await store.put_task(Task(id=f"t{i}", kind="vm.start", node="n1", created_at=i,
                                  state=state))
    assert [[t["id"] for t in p] for p in await pages(api, "/tasks", limit=2)] == [
        ["t2", "t1"], ["t0"]]
    assert [t["id"] for t in (await api.get("/tasks?state=ok")).json()] == ["t2", "t0"]


BAD_LIST_PARAMS: list[tuple[str, dict[str, Any], str]] = [
    ("/vms", {"limit": 0}, "limit"),
    ("/vms", {"limit": 100_000}, "limit"),
    ("/vms", {"limit": "two"}, "limit"),
    ("/vms", {"cursor": "garbage"}, "cursor"),
    ("/vms", {"cursor": paging.encode_cursor("nodes", ("n1",))}, "cursor"),
    ("/vms", {"status": "sleeping"}, "status"),
    ("/nodes", {"limit": 0}, "limit"),
    ("/nodes", {"cursor": paging.encode_cursor("vms", (101,))}, "cursor"),
    ("/tasks", {"limit": 10_001}, "limit"),
    ("/tasks", {"state": "done"}, "state"),
]


@pytest.mark.parametrize(("path", "params", "field"), BAD_LIST_PARAMS)
async def test_bad_list_parameters_are_refused_naming_the_field(
        api: httpx.AsyncClient, store: Store, path: str, params: dict[str, Any],
        field: str) -> None:
    await add_vm(store, 101)
    before = await store.raw_prefix("/corral/")
    r = await api.get(path, params=params)
    assert r.status_code == 422 and err(r)["field"] == field, r.text
    assert await store.raw_prefix("/corral/") == before


async def test_beyond_the_bound_in_flight_a_request_is_refused_at_once(
        store: Store, etcd_endpoint: str) -> None:
    await seed(store)
    app = create_app([etcd_endpoint], max_in_flight=1)
    entered, release = asyncio.Event(), asyncio.Event()

    @app.get("/api/v1/test/hold")  # a request that stays in flight until released
    async def hold() -> dict[str, bool]:
        entered.set()
        await release.wait()
        return {"held": True}

    transport = httpx.ASGITransport(app=app)
    async with (app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url="http://api/api/v1",
                                  headers=AUTH) as api):
        shed_before = REGISTRY.get_sample_value("corral_api_requests_shed_total") or 0.0
        held = asyncio.create_task(api.get("/test/hold"))
        await asyncio.wait_for(entered.wait(), 10)
        refused = await api.get("/vms")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert err(refused)["code"] == "overloaded"
        health = await api.get("/health")  # still says the process lives
        assert health.status_code == 200 and health.json() == {"ok": True}
        assert app.state.in_flight.refused == 1
        assert REGISTRY.get_sample_value("corral_api_requests_shed_total") == shed_before + 1
        release.set()
        assert (await asyncio.wait_for(held, 10)).json() == {"held": True}
        assert (await api.get("/vms")).status_code == 200  # the place is free again
        assert app.state.in_flight.current == 0
