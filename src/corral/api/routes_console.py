"""`GET /api/v1/vms/{vmid}/console/ws`: the VM's interactive serial console, relayed to the
agent of the host it runs on (the agent holds the one connection to QEMU's serial socket and
fans it out: serial/hub.py).

Auth: an `Authorization: Bearer` header (the CLI), `?ticket=` from
`POST /api/v1/vms/{vmid}/console/ticket` (browsers: a WebSocket sends no headers; the ticket
carries the token it was traded for, which the relay shows the agent), or `?token=` (scripts;
it lands in access logs). A bad or missing credential is refused with 401 before the
handshake. A VM that cannot be attached to is accepted and closed at once with a code and a
reason (serial/core.py), which is all a browser can read of a refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from typing import Annotated, cast

from fastapi import APIRouter, Query, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from corral.aio import cancel_and_wait
from corral.api.auth import TokenChecker
from corral.api.deps import TokenDep
from corral.api.errors import ApiError, error_body
from corral.api.routes_events import StreamTicket
from corral.api.stream_tickets import TICKET_SECONDS, StreamTickets
from corral.cluster import keys
from corral.cluster.models import Placement, VMRuntime, VMStatus
from corral.cluster.records import UnreadableRecord
from corral.cluster.store import Store
from corral.serial import core

log = logging.getLogger(__name__)

AGENT_OPEN_TIMEOUT = 5.0
# Frames from the agent are output chunks (it joins what queued up); from a client, input.
MAX_FRAME_BYTES = 4 * 1024 * 1024

router = APIRouter(tags=["vms"])  # authenticates by itself (header, ticket or token)
guarded = APIRouter(tags=["vms"])  # included behind the bearer token


def console_tickets(request: Request) -> StreamTickets:
    return cast(StreamTickets, request.app.state.console_tickets)


@guarded.post("/vms/{vmid}/console/ticket", response_model=StreamTicket, status_code=201)
async def console_ticket(vmid: int, request: Request, token: TokenDep) -> StreamTicket:
    """A single-use ticket for `GET /vms/{vmid}/console/ws?ticket=...` (a browser's
    WebSocket sends no headers)."""
    ticket = console_tickets(request).issue(time.monotonic(), token)
    return StreamTicket(ticket=ticket, expires_in=TICKET_SECONDS)


def agent_ws_url(agent_url: str, vmid: int) -> str:
    """The agent's console websocket, from the URL its host publishes (http or https)."""
    base = agent_url.rstrip("/")
    for plain, ws in (("https://", "wss://"), ("http://", "ws://")):
        if base.startswith(plain):
            return f"{ws}{base.removeprefix(plain)}/vms/{vmid}/console/ws"
    raise ValueError(f"agent URL {agent_url!r} is neither http nor https")


async def _token(ws: WebSocket, ticket: str | None, token: str | None) -> str:
    """The caller's token, or ApiError 401."""
    if ticket is not None:
        held = cast(StreamTickets, ws.app.state.console_tickets).redeem_token(
            ticket, time.monotonic())
        if not held:
            raise ApiError(401, "unauthorized", "invalid or expired console ticket", "ticket")
        return held
    checker = cast(TokenChecker, ws.app.state.tokens)
    header = f"Bearer {token}" if token is not None else ws.headers.get("authorization")
    return await checker.check(header)


async def _where(store: Store, vmid: int) -> tuple[str, str] | core.Close:
    """The node the VM runs on and its agent's URL, or why there is no console to attach.
    The placement is all it needs: a VM whose config does not decode still has a console."""
    try:
        placement, _ = await store.get(keys.vm(vmid, "placement"), Placement)
    except UnreadableRecord as e:
        return core.Close(core.UNREADABLE, f"VM {vmid}'s placement does not decode: {e}")
    if placement is None:
        return core.Close(core.NOT_FOUND, f"VM {vmid} does not exist")
    try:
        runtime, _ = await store.get(keys.vm(vmid, "runtime"), VMRuntime)
    except UnreadableRecord:
        runtime = None  # the agent says whether it runs
    if runtime is not None and runtime.status is VMStatus.STOPPED:
        return core.Close(core.NOT_RUNNING, f"VM {vmid} is stopped: start it to use its "
                                            "console")
    node = await store.node(placement.node)
    if node is None or not node.alive:
        return core.Close(core.UNREACHABLE, f"VM {vmid}'s host {placement.node} is offline")
    url = node.info.agent_url if node.info else ""
    if not url:
        return core.Close(core.UNREACHABLE, f"node {placement.node} publishes no agent URL")
    return placement.node, url


async def _close(ws: WebSocket, why: core.Close) -> None:
    clipped = why.clipped()
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
        await ws.close(clipped.code, clipped.reason)


@router.websocket("/vms/{vmid}/console/ws")
async def console_ws(
    ws: WebSocket,
    vmid: int,
    ticket: Annotated[str | None, Query(description="from POST .../console/ticket")] = None,
    token: Annotated[str | None, Query(description="an API token (lands in logs)")] = None,
) -> None:
    """The serial console: binary frames of output (the recent tail first); frames sent are
    keystrokes (text as UTF-8, or raw bytes)."""
    try:
        caller = await _token(ws, ticket, token)
    except ApiError as e:
        await ws.send_denial_response(JSONResponse(error_body(e.code, e.message, e.field),
                                                   e.status))
        return
    store = cast(Store, ws.app.state.store)
    where = await _where(store, vmid)
    await ws.accept()
    if isinstance(where, core.Close):
        await _close(ws, where)
        return
    node, url = where
    agent_ssl = cast(ssl.SSLContext | None, ws.app.state.agent_ssl)
    try:
        agent = await connect(agent_ws_url(url, vmid),
                              additional_headers={"Authorization": f"Bearer {caller}"},
                              ssl=agent_ssl, open_timeout=AGENT_OPEN_TIMEOUT,
                              max_size=MAX_FRAME_BYTES, compression=None)
    except InvalidStatus as e:
        status = e.response.status_code
        await _close(ws, core.Close(core.UNAUTHORIZED if status == 401 else core.UNREACHABLE,
                                    f"the agent of node {node} refused the console ({status})"))
        return
    except (OSError, TimeoutError, WebSocketException, ValueError) as e:
        await _close(ws, core.Close(core.UNREACHABLE,
                                    f"cannot reach the agent of node {node}: {e}"))
        return
    async with agent:
        await _relay(ws, agent, vmid, node)


async def _relay(ws: WebSocket, agent: ClientConnection, vmid: int, node: str) -> None:
    async def output() -> core.Close:
        try:
            async for message in agent:
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_text(message)
        except ConnectionClosed:
            pass
        received = agent.protocol.close_rcvd
        if received is None:  # the agent went away without a word
            return core.Close(core.UNREACHABLE, f"the agent of node {node} went away")
        return core.Close(received.code, received.reason)

    async def keystrokes() -> None:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            await agent.send(data if data is not None else message.get("text") or "")

    out = asyncio.create_task(output())
    keys = asyncio.create_task(keystrokes())
    try:
        done, _ = await asyncio.wait([out, keys], return_when=asyncio.FIRST_COMPLETED)
        if out in done and out.exception() is None:
            await _close(ws, out.result())
        elif keys in done and (e := keys.exception()) is not None and not isinstance(
                e, WebSocketDisconnect | ConnectionClosed | OSError):
            log.warning("VM %s: console relay failed: %r", vmid, e)
    finally:
        await cancel_and_wait([out, keys])
