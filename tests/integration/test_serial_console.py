"""The interactive serial console end to end: a websocket through the real API (uvicorn) to the
real agent of n1, and its one connection to the tiny guest's serial socket under QEMU."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from agents import AgentProc, Cluster, agent_fixture, cluster_fixture, wait_for  # noqa: F401
from api_thread import serving
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from corral.api.app import create_app
from corral.cluster.models import Placement, Task, TaskState, VMConfig
from corral.cluster.store import Store
from corral.serial import core

pytestmark = pytest.mark.integration

TOKEN = "console-token"
VMID = 100
HEARTBEAT = re.compile(rb"corral-heartbeat (\d+)")


@pytest.fixture(scope="module")
def api_url(etcd_endpoint: str) -> Iterator[str]:
    with serving(create_app([etcd_endpoint])) as port:
        yield f"http://127.0.0.1:{port}"


async def run_task(store: Store, kind: str, vmid: int) -> Task:
    task = Task(id=uuid.uuid4().hex[:16], kind=kind, node="n1", vmid=vmid)
    await store.put_task(task)

    async def finished() -> Task | None:
        t = await store.task(task.id)
        return t if t is not None and t.state.finished else None

    done: Task = await wait_for(finished, 60, f"task {kind}")
    return done


@pytest.fixture
async def running(store: Store, agent: AgentProc) -> AsyncIterator[int]:
    """VM 100, the tiny guest, running on n1 (its agent's), and the API's token."""
    await store.add_token(TOKEN)
    cfg = VMConfig(vmid=VMID, name="tty", memory_mb=96, cores=1)
    assert await store.create_vm(cfg, Placement(node="n1"))
    started = await run_task(store, "vm.start", VMID)
    assert started.state is TaskState.OK, started.error
    yield VMID


def ws_url(api_url: str, vmid: int, **query: str) -> str:
    base = api_url.replace("http://", "ws://") + f"/api/v1/vms/{vmid}/console/ws"
    return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def open_console(api_url: str, vmid: int = VMID, token: str = TOKEN) -> connect:
    return connect(ws_url(api_url, vmid), additional_headers={"Authorization": f"Bearer {token}"},
                   open_timeout=10)


async def read_until(ws: ClientConnection, pattern: re.Pattern[bytes], seen: bytearray,
                     timeout: float = 30.0) -> re.Match[bytes]:
    """Reads output into `seen` until `pattern` matches it; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := pattern.search(seen)):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{pattern.pattern!r} not in the console's output:\n"
                                 f"{bytes(seen[-2000:]).decode(errors='replace')}")
        try:
            message = await asyncio.wait_for(ws.recv(), left)
        except TimeoutError:
            continue
        seen += message if isinstance(message, bytes) else message.encode()
    return found


async def test_output_streams_and_keystrokes_reach_the_guest(api_url: str, running: int) -> None:
    async with open_console(api_url) as ws:
        seen = bytearray()
        first = int((await read_until(ws, HEARTBEAT, seen)).group(1))
        # Live output, not just the tail of the log sent on connect.
        await read_until(ws, re.compile(rb"corral-heartbeat %d\r?\n" % (first + 2)), seen)
        # Enter starts the guest's shell; the command's result (not its echo) proves it ran.
        await ws.send("\r")
        await read_until(ws, re.compile(rb"tiny# "), seen)
        await ws.send("echo $((6*7))corral\r")
        await read_until(ws, re.compile(rb"42corral"), seen)


async def test_two_clients_see_the_same_output(api_url: str, running: int) -> None:
    async with open_console(api_url) as one, open_console(api_url) as two:
        seen_one, seen_two = bytearray(), bytearray()
        await read_until(one, HEARTBEAT, seen_one)
        await read_until(two, HEARTBEAT, seen_two)
        # What one types, both see: QEMU has one connection, the agent fans it out.
        await one.send("\r")
        await one.send("echo shared$((40+2))\r")
        await read_until(one, re.compile(rb"shared42"), seen_one)
        await read_until(two, re.compile(rb"shared42"), seen_two)
        beat = int(HEARTBEAT.findall(bytes(seen_one))[-1]) + 1
        later = re.compile(rb"corral-heartbeat %d\r?\n" % beat)
        await read_until(one, later, seen_one)
        await read_until(two, later, seen_two)


async def test_a_later_client_gets_the_recent_output_first(api_url: str, running: int,
                                                           store: Store) -> None:
    async with open_console(api_url) as ws:
        await read_until(ws, re.compile(rb"corral-heartbeat 3\r?\n"), bytearray())
    async with open_console(api_url) as ws:
        first = await asyncio.wait_for(ws.recv(), 10)
        assert isinstance(first, bytes) and first.startswith(b"corral-heartbeat 1\r\n"), first


async def test_a_ticket_opens_one_console(api_url: str, running: int) -> None:
    async with httpx.AsyncClient(base_url=f"{api_url}/api/v1") as http:
        r = await http.post(f"/vms/{VMID}/console/ticket",
                            headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 201, r.text
        ticket = r.json()["ticket"]
        refused = await http.post(f"/vms/{VMID}/console/ticket")
        assert refused.status_code == 401
    async with connect(ws_url(api_url, VMID, ticket=ticket), open_timeout=10) as ws:
        await read_until(ws, HEARTBEAT, bytearray())
    with pytest.raises(InvalidStatus) as spent:
        async with connect(ws_url(api_url, VMID, ticket=ticket), open_timeout=10):
            pass
    assert spent.value.response.status_code == 401
    assert b"ticket" in spent.value.response.body


async def test_a_bad_or_missing_credential_is_refused(api_url: str, running: int) -> None:
    for attempt in (open_console(api_url, token="wrong"),
                    connect(ws_url(api_url, VMID), open_timeout=10),
                    connect(ws_url(api_url, VMID, token="wrong"), open_timeout=10),
                    connect(ws_url(api_url, VMID, ticket="made-up"), open_timeout=10)):
        with pytest.raises(InvalidStatus) as refused:
            async with attempt:
                pass
        assert refused.value.response.status_code == 401
    # A token in the query is accepted too (scripts; it lands in access logs).
    async with connect(ws_url(api_url, VMID, token=TOKEN), open_timeout=10) as ws:
        await read_until(ws, HEARTBEAT, bytearray())


async def closed_with(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 30)
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


async def test_a_vm_that_does_not_run_is_refused_with_a_reason(
        api_url: str, store: Store, agent: AgentProc) -> None:
    await store.add_token(TOKEN)
    assert await store.create_vm(VMConfig(vmid=101, name="off", memory_mb=96, cores=1),
                                 Placement(node="n1"))
    async with open_console(api_url, 101) as ws:
        code, reason = await closed_with(ws)
    assert code == core.NOT_RUNNING and "101" in reason, (code, reason)
    async with open_console(api_url, 999) as ws:
        code, reason = await closed_with(ws)
    assert code == core.NOT_FOUND and "999" in reason, (code, reason)


async def test_a_stopped_guest_ends_its_console(api_url: str, running: int,
                                                store: Store) -> None:
    async with open_console(api_url) as ws:
        await read_until(ws, HEARTBEAT, bytearray())
        stop = asyncio.create_task(run_task(store, "vm.stop", VMID))
        code, reason = await closed_with(ws)
        assert (await stop).state is TaskState.OK
    assert code == core.ENDED and "went away" in reason, (code, reason)


def read_pty(fd: int, pattern: re.Pattern[bytes], seen: bytearray, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pattern.search(seen):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{pattern.pattern!r} not on the terminal:\n"
                                 f"{bytes(seen[-2000:]).decode(errors='replace')}")
        if select.select([fd], [], [], min(left, 0.5))[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the other end closed: the CLI exited
                raise AssertionError(f"{pattern.pattern!r} never came:\n"
                                     f"{bytes(seen).decode(errors='replace')}") from None


def cli_session(api_url: str) -> tuple[int, bytes]:
    """`corral vm console 100 -i` on a terminal of its own: types a command, leaves."""
    parent, child = pty.openpty()
    env = {**os.environ, "CORRAL_URL": api_url, "CORRAL_TOKEN": TOKEN,
           "CORRAL_CONFIG": "/nonexistent/client.json"}
    proc = subprocess.Popen([sys.executable, "-m", "corral.cli.main", "vm", "console",
                             str(VMID), "-i"], stdin=child, stdout=child, stderr=child,
                            env=env, start_new_session=True)
    os.close(child)
    seen = bytearray()
    try:
        read_pty(parent, HEARTBEAT, seen)
        os.write(parent, b"\r")
        read_pty(parent, re.compile(rb"tiny# "), seen)
        os.write(parent, b"echo $((6*7))cli\r")
        read_pty(parent, re.compile(rb"42cli"), seen)
        os.write(parent, b"\x1d")  # Ctrl-]
        code = proc.wait(15)
        read_pty(parent, re.compile(rb"left the console"), seen, 5)
        return code, bytes(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(parent)


async def test_the_cli_attaches_a_terminal_and_leaves_on_ctrl_bracket(api_url: str,
                                                                      running: int) -> None:
    code, seen = await asyncio.to_thread(cli_session, api_url)
    assert code == 0, seen.decode(errors="replace")


async def test_the_console_follows_a_live_migration(api_url: str, c: Cluster) -> None:
    """The source's QEMU ends the console (4410); opened again, the API relays to the
    target's agent, and the guest's shell typed into before the move answers after it."""
    await c.store.add_token(TOKEN)
    vmid = 102
    assert await c.store.create_vm(VMConfig(vmid=vmid, name="moving", memory_mb=96, cores=1),
                                   Placement(node="n1"))
    assert (await c.run("vm.start", vmid)).state is TaskState.OK
    async with open_console(api_url, vmid) as ws:
        seen = bytearray()
        await read_until(ws, HEARTBEAT, seen)
        await ws.send("\r")
        await read_until(ws, re.compile(rb"tiny# "), seen)
        await ws.send("echo before$((1+1))\r")
        await read_until(ws, re.compile(rb"before2"), seen)
        moving = asyncio.create_task(c.run("vm.migrate", vmid, target="n2",
                                           with_local_disks=False, timeout=90))
        code, reason = await closed_with(ws)
        done = await moving
    assert done.state is TaskState.OK, (done.error, done.log)
    assert code == core.ENDED and "n1" in reason, (code, reason)
    async with open_console(api_url, vmid) as ws:
        seen = bytearray()
        await ws.send("echo after$((2+2))\r")
        await read_until(ws, re.compile(rb"after4"), seen)
        await read_until(ws, HEARTBEAT, seen)
