"""The events stream against a real etcd, served by a real uvicorn on loopback and read with
httpx as a browser's EventSource would: events of VMs, tasks and hosts arrive, auth is
refused without a token or a valid ticket, reconnects resync, streams are bounded."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from api_thread import serving

from corral.api import routes_events
from corral.api.app import create_app
from corral.api.routes_events import EventHub
from corral.cluster import keys
from corral.cluster.models import NodeInfo, NodeUsage, Task, TaskState
from corral.cluster.store import Store

pytestmark = pytest.mark.integration

TOKEN = "events-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WAIT = 10.0  # the longest any one expected event may take


@dataclass
class Api:
    base: str
    hub: EventHub


@pytest.fixture
def api(store: Store, etcd_endpoint: str) -> Iterator[Api]:
    """The API under uvicorn in a thread of its own (its own event loop), like `corral-api`."""
    app = create_app([etcd_endpoint])
    with serving(app) as port:  # it must stop with a stream open
        yield Api(f"http://127.0.0.1:{port}/api/v1", app.state.events)


@pytest.fixture(autouse=True)
async def seeded(store: Store) -> None:
    await store.add_token(TOKEN)
    await store.put(keys.node("n1", "info"), NodeInfo(name="n1", cpus=4, memory_mb=4096))
    await store.client.put(keys.node("n1", "alive").encode(), b"1")


@dataclass
class Message:
    event: str = "message"
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


class Stream:
    """An open events stream, read message by message, each read bounded in time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = WAIT) -> Message:
        return await asyncio.wait_for(self._read(), timeout)

    async def _read(self) -> Message:
        msg = Message()
        seen = False
        while True:
            line = await anext(self._lines)
            if line == "":
                if seen and (msg.data or msg.comments):
                    return msg
                continue
            seen = True
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                msg.comments.append(value)
            elif name == "event":
                msg.event = value
            elif name == "id":
                msg.id = value
            elif name == "data":
                msg.data = value

    async def until(self, want: str, match: Any = lambda d: True, limit: int = 200
                    ) -> tuple[Message, list[Message]]:
        """The first `want` event whose data matches, and every message before it."""
        before: list[Message] = []
        for _ in range(limit):
            msg = await self.next()
            if msg.event == want and match(msg.json()):
                return msg, before
            before.append(msg)
        raise AssertionError(f"no matching {want} event in {limit} messages")


async def open_stream(client: httpx.AsyncClient, stack: AsyncExitStack, url: str,
                      headers: dict[str, str] | None = None) -> Stream:
    response = await stack.enter_async_context(client.stream(
        "GET", url, headers=headers, timeout=httpx.Timeout(WAIT, read=WAIT * 3)))
    assert response.status_code == 200, await response.aread()
    assert response.headers["content-type"].startswith("text/event-stream")
    return Stream(response)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=WAIT) as c:
        yield c


async def wait_until(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_a_vm_created_through_the_api_and_its_task_arrive(
        api: Api, client: httpx.AsyncClient, store: Store) -> None:
    async with AsyncExitStack() as stack:
        stream = await open_stream(client, stack, f"{api.base}/events", AUTH)
        first = await stream.next()
        assert first.event == "resync" and first.json()["reason"] == "connected"
        assert first.id == str(first.json()["revision"])

        r = await client.post(f"{api.base}/vms", headers=AUTH, json={
            "name": "web", "memory_mb": 64, "cores": 1, "node": "n1", "image": None})
        assert r.status_code == 202, r.text
        vmid, task_id = r.json()["vmid"], r.json()["task"]
        vm, _ = await stream.until("vm", lambda d: d["vmid"] == vmid)
        body = vm.json()["vm"]
        assert (body["name"], body["node"], body["memory_mb"]) == ("web", "n1", 64)
        listed = (await client.get(f"{api.base}/vms", headers=AUTH)).json()
        assert body == next(v for v in listed if v["vmid"] == vmid)
        assert int(vm.id or 0) > int(first.id or 0)

        task = await store.task(task_id)
        assert task is not None
        await store.put(keys.task(task_id), task.model_copy(
            update={"state": TaskState.ERROR, "error": "no disk"}))
        msg, _ = await stream.until("task", lambda d: d["id"] == task_id
                                    and d["task"]["state"] == "error")
        assert msg.json()["task"]["error"] == "no disk"


async def test_usage_samples_are_one_node_event_per_host_and_flush(
        api: Api, client: httpx.AsyncClient, store: Store) -> None:
    async with AsyncExitStack() as stack:
        stream = await open_stream(client, stack, f"{api.base}/events", AUTH)
        await stream.next()  # resync: connected
        samples = [0.1 * i for i in range(1, 11)]
        for cpu in samples:
            await store.put(keys.node("n1", "usage"), NodeUsage(
                cpu=cpu, memory_used_mb=1, memory_total_mb=2, sampled_at=time.time()))
        last, before = await stream.until(
            "node", lambda d: d["node"]["usage"]["cpu"] == samples[-1])
        nodes = [m for m in [*before, last] if m.event == "node"]
        flushes = [m.id for m in nodes]
        assert len(flushes) == len(set(flushes)), "two events of one host in one flush"
        assert len(nodes) < len(samples)  # the burst was coalesced
        assert all(m.json()["name"] == "n1" for m in nodes)


async def test_wrong_token_or_ticket_is_refused_and_a_ticket_opens_once(
        api: Api, client: httpx.AsyncClient) -> None:
    r = await client.get(f"{api.base}/events", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = await client.get(f"{api.base}/events")
    assert r.status_code == 401
    r = await client.get(f"{api.base}/events", params={"ticket": "made-up"})
    assert r.status_code == 401 and r.json()["error"]["field"] == "ticket"
    r = await client.post(f"{api.base}/events/ticket")
    assert r.status_code == 401  # a ticket is had for a token only

    r = await client.post(f"{api.base}/events/ticket", headers=AUTH)
    assert r.status_code == 201, r.text
    ticket = r.json()["ticket"]
    async with AsyncExitStack() as stack:
        stream = await open_stream(client, stack, f"{api.base}/events?ticket={ticket}")
        assert (await stream.next()).event == "resync"
    r = await client.get(f"{api.base}/events", params={"ticket": ticket})
    assert r.status_code == 401  # spent


async def test_reconnect_from_an_old_revision_resyncs_and_from_the_last_does_not(
        api: Api, client: httpx.AsyncClient, store: Store) -> None:
    async with AsyncExitStack() as stack:
        stream = await open_stream(client, stack, f"{api.base}/events", AUTH)
        last = (await stream.next()).id
        assert last is not None
    await store.put(keys.task("t-missed"), Task(id="t-missed", kind="vm.start", node="n1"))
    async with AsyncExitStack() as stack:
        stream = await open_stream(client, stack, f"{api.base}/events",
                                   AUTH | {"Last-Event-ID": last})
        msg = await stream.next()
        assert msg.event == "resync" and msg.json()["reason"] == "missed"
        assert int(msg.id or 0) > int(last)
        last = msg.id or ""
    # Nothing changed since: the stream goes on with the next change, no resync first.
    async with AsyncExitStack() as stack:
        stream = await open_stream(client, stack, f"{api.base}/events",
                                   AUTH | {"Last-Event-ID": last})
        await store.put(keys.task("t-next"), Task(id="t-next", kind="vm.start", node="n1"))
        msg = await stream.next()
        assert msg.event == "task" and msg.json()["id"] == "t-next"


async def test_streams_are_bounded_and_leave_the_hub_when_closed(
        api: Api, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes_events, "HEARTBEAT_SECONDS", 0.2)
    api.hub.max_streams = 2
    async with AsyncExitStack() as stack:
        streams = [await open_stream(client, stack, f"{api.base}/events", AUTH)
                   for _ in range(2)]
        r = await client.get(f"{api.base}/events", headers=AUTH)
        assert r.status_code == 503 and r.json()["error"]["code"] == "too_many_streams"
        assert int(r.headers["Retry-After"]) > 0
        await streams[0].next()  # resync: connected
        beat = await streams[0].next()
        assert beat.comments == ["keep-alive"]  # an idle stream still sends something
    await wait_until(lambda: not api.hub.clients, "closed streams still in the hub")
    async with AsyncExitStack() as stack:  # their places are free again
        await open_stream(client, stack, f"{api.base}/events", AUTH)
