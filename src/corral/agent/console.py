"""The agent's own small HTTP endpoint: the serial console of its VMs and the host's usage
history, for the API to relay, and this process's Prometheus metrics (etcd latency, manager
passes while it leads, what its VMs' QEMU processes use)."""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from corral.agent.history import UsageHistory
from corral.cluster.store import Store
from corral.metrics import vm_usage
from corral.metrics.exposition import CONTENT_TYPE, render
from corral.qemu.driver import QemuDriver
from corral.usage.rrd import RANGES

TOKEN_CACHE_SECONDS = 10.0


def console_app(store: Store, driver: QemuDriver, node: str,
                history: UsageHistory | None = None) -> Starlette:
    valid_until: dict[str, float] = {}

    async def authorised(request: Request) -> bool:
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

    return Starlette(routes=[Route("/vms/{vmid}/console", console),
                             Route("/vms/{vmid}/usage", usage),
                             Route("/usage", usage),
                             Route("/metrics", metrics)])
