"""The agent's own small HTTP endpoint: the serial console of its VMs (the log read by
offset, and the interactive console as a websocket) and the host's usage history, for
the API to relay, and this process's Prometheus metrics (etcd latency, manager passes
while it leads, what its VMs' QEMU processes use)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from corral.agent.history import UsageHistory
from corral.aio import cancel_and_wait
from corral.cluster.store import Store
from corral.metrics import vm_usage
from corral.metrics.exposition import CONTENT_TYPE, render
from corral.qemu.driver import QemuDriver
from corral.serial import core
from corral.serial.hub import Link, NoConsole, SerialHub, Watcher
from corral.usage.rrd import RANGES

TOKEN_CACHE_SECONDS = 10.0
log = logging.getLogger(__name__)


def console_app(store: Store, driver: QemuDriver, node: str,
                history: UsageHistory | None = None,
                hub: SerialHub | None = None) -> Starlette:
    valid_until: dict[str, float] = {}
    serial = hub if hub is not None else SerialHub(node)

    async def authorised(request: HTTPConnection) -> bool:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        if not token:
            return False
        if valid_until.get(token, 0.0) > time.monotonic():
            return True
        if await store.token_valid(token):
            valid_until[token] = time.monotonic() + TOKEN_CACHE_SECONDS
            return True
        return False

    def refused() -> JSONResponse:
        return JSONResponse({"error": {"code": "unauthorized",
                                       "message": "a valid token is needed"}}, 401)

    async def console(request: Request) -> JSONResponse:
        if not await authorised(request):
            return refused()
        try:
            vmid = int(request.path_params["vmid"])
            offset = int(request.query_params.get("offset", "0"))
        except ValueError:
            return JSONResponse({"error": {"code": "bad_request", "field": "offset",
                                           "message": "vmid and offset must be integers"}}, 400)
        data, next_offset = driver.read_console(vmid, max(offset, 0))
        return JSONResponse({"data": data.decode(errors="replace"), "offset": next_offset})

    async def metrics(request: Request) -> Response:
        if not await authorised(request):
            return refused()
        # The cluster's state is the API's to show; an agent shows its own process and what
        # each of its VMs' QEMU uses.
        usage = vm_usage.vm_usage_metrics(node, vm_usage.sample(driver.running()))
        return Response(render(extra=usage), media_type=CONTENT_TYPE)

    async def usage(request: Request) -> JSONResponse:
        if not await authorised(request):
            return refused()
        range_name = request.query_params.get("range", "hour")
        if range_name not in RANGES:
            return JSONResponse({"error": {
                "code": "invalid", "field": "range",
                "message": f"range must be one of {', '.join(RANGES)}"}}, 422)
        raw = request.path_params.get("vmid")
        if raw is not None and not raw.isdigit():
            return JSONResponse({"error": {"code": "invalid", "field": "vmid",
                                           "message": "vmid must be an integer"}}, 422)
        if history is None:
            return JSONResponse({"error": {"code": "unavailable", "field": None,
                                           "message": "this agent keeps no usage history"}},
                                503)
        vmid = None if raw is None else int(raw)
        return JSONResponse(await history.window(vmid, range_name))

    async def console_ws(ws: WebSocket) -> None:
        """The interactive console: the recent output first, then live output out and
        keystrokes in, as binary frames (text frames in are taken as UTF-8)."""
        if not await authorised(ws):
            await ws.send_denial_response(refused())
            return
        try:
            vmid = int(ws.path_params["vmid"])
        except ValueError:
            await ws.send_denial_response(JSONResponse({"error": {
                "code": "bad_request", "field": "vmid", "message": "vmid must be an integer"}},
                400))
            return
        try:
            if driver.pid(vmid) is None:
                raise NoConsole(core.not_running_here(vmid, node))
            link, watcher, tail = await serial.watch(vmid, driver.paths(vmid).serial_socket,
                                                     driver.paths(vmid).serial_log)
        except NoConsole as e:
            # Accepted to be closed: a browser sees a close's code and reason, never a
            # refused handshake's.
            await ws.accept()
            await _close(ws, e.close)
            return
        try:
            await ws.accept()
            if tail:
                await ws.send_bytes(tail)
            await _bridge(ws, link, watcher)
        finally:
            link.leave(watcher)

    return Starlette(routes=[Route("/vms/{vmid}/console", console),
                             WebSocketRoute("/vms/{vmid}/console/ws", console_ws),
                             Route("/vms/{vmid}/usage", usage),
                             Route("/usage", usage),
                             Route("/metrics", metrics)])


async def _close(ws: WebSocket, why: core.Close) -> None:
    clipped = why.clipped()
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
        await ws.close(clipped.code, clipped.reason)


async def _bridge(ws: WebSocket, link: Link, watcher: Watcher) -> None:
    """Output to the websocket and keystrokes to the guest, until either side ends."""

    async def output() -> None:
        while True:
            item = await watcher.next()
            if isinstance(item, core.Close):
                await _close(ws, item)
                return
            await ws.send_bytes(item)

    async def keystrokes() -> None:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = core.input_bytes(message.get("text"), message.get("bytes"))
            if len(data) > core.MAX_INPUT_BYTES:
                await _close(ws, core.Close(core.MESSAGE_TOO_BIG, (
                    f"at most {core.MAX_INPUT_BYTES} bytes of input at once")))
                return
            await link.type(data)

    jobs = [asyncio.create_task(output()), asyncio.create_task(keystrokes())]
    try:
        done, _ = await asyncio.wait(jobs, return_when=asyncio.FIRST_COMPLETED)
        for job in done:
            if (e := job.exception()) and not isinstance(e, WebSocketDisconnect | OSError):
                log.warning("VM %s: console websocket failed: %r", link.vmid, e)
    finally:
        await cancel_and_wait(jobs)
