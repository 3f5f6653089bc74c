"""Request latency of an ASGI app, labelled by the route template that answered (never the
raw path: /api/v1/vms/{vmid} is one series, not one per VM)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.routing import replace_params
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corral.metrics.instruments import API_REQUEST

UNMATCHED = "<unmatched>"  # no route took the request (a 404): one series for all of them


def route_template(scope: Scope) -> str:
    """The full template of the route the router matched (the router puts the route in the
    scope). An included router's route may know only its own part ("/vms/{vmid}"): the part
    of the path before it is the include prefix, which is fixed text ("/api/v1")."""
    route: Any = scope.get("route")
    template = getattr(route, "path_format", None)
    if not isinstance(template, str):
        return UNMATCHED
    params = dict(scope.get("path_params", {}))  # replace_params consumes what it uses
    rendered, _ = replace_params(template, getattr(route, "param_convertors", {}), params)
    path: str = scope["path"]
    if rendered and path.endswith(rendered):
        return path[: len(path) - len(rendered)] + template
    return template


# Told of each finished request: its scope, status and seconds (the access log).
Finished = Callable[[Scope, int, float], None]


class RequestMetrics:
    """Pure ASGI middleware (no response buffering, streaming bodies pass through): times
    each HTTP request from arrival to the end of its response, and hands what it saw to
    `finished`, so the access log needs no wrapper of its own."""

    def __init__(self, app: ASGIApp, finished: Finished | None = None) -> None:
        self.app = app
        self.finished = finished

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # an exception before any response is an internal error

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            took = time.perf_counter() - start
            API_REQUEST.labels(route_template(scope), scope["method"], str(status)).observe(took)
            if self.finished is not None:
                self.finished(scope, status, took)
