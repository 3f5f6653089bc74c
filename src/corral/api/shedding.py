"""Load shedding: a bounded number of requests in flight per API process; beyond it, 503 with
`Retry-After` at once.

Without it, a burst larger than the process can serve queues in the event loop: every request
waits behind all the others, answers come after tens of seconds or time out, and the clients
that would have been served are not either. Refusing the excess at once keeps the answers that
are given fast, and tells a client (the CLI retries) or a balancer to come back or go to
another host's API.

How many are served at once follows the latency they get (api/adaptive_limit.py), up to
`--max-in-flight`.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Receive, Scope, Send

from corral.api.access_log import RefusalLog
from corral.api.adaptive_limit import Limit, Window, next_limit
from corral.api.errors import error_body
from corral.metrics.instruments import API_IN_FLIGHT_LIMIT, API_SHED

RETRY_AFTER_SECONDS = 1
# The health check answers even when the process is full: it says the process lives and its
# event loop turns, which is true. Shedding it would make a balancer drop every host of a
# cluster under one burst, moving the load nowhere and failing the requests it could serve.
# An event stream stays open for hours, idle most of the time: counted here, 64 open tabs
# would take every place; streams have their own bound (routes_events.MAX_STREAMS).
EXEMPT_PATHS = frozenset({"/api/v1/health", "/api/v1/events"})


# Finished requests per window of the adaptive bound: enough that the mix of routes averages
# out in the median, few enough that the bound answers within a fraction of a second at a few
# hundred requests per second.
WINDOW_REQUESTS = 32


@dataclass
class InFlight:
    """The count of requests being served and of those refused by this app (the process's
    total is the metric corral_api_requests_shed_total). `limit` is the ceiling
    (--max-in-flight); `bound` the places given now, which follow the latency."""

    limit: int
    # Seconds the event loop ran late on average since the last call (api/loop_lag.py): the
    # wait before admission, added to each window's median.
    loop_lag: Callable[[], float] = lambda: 0.0
    current: int = 0
    refused: int = 0
    bound: Limit = field(init=False)
    _latencies: list[float] = field(default_factory=list, init=False, repr=False)
    _peak: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("max in flight must be at least 1")
        self.bound = Limit(float(self.limit))

    @property
    def places(self) -> int:
        return self.bound.places

    def admit(self) -> bool:
        """Take a place if one is free; count a refusal otherwise."""
        if self.current >= self.bound.places:
            self.refused += 1
            return False
        self.current += 1
        self._peak = max(self._peak, self.current)
        return True

    def release(self, seconds: float | None = None) -> bool:
        """Give the place back; `seconds`: how long the request took, for the bound (None:
        a request whose time says nothing of the load, such as one the client left). True
        when it closed a window, and the bound may have moved."""
        self.current -= 1
        if seconds is None:
            return False
        self._latencies.append(seconds)
        if len(self._latencies) < WINDOW_REQUESTS:
            return False
        window = Window(statistics.median(self._latencies) + self.loop_lag(), self._peak)
        self.bound = next_limit(self.bound, window, self.limit)
        self._latencies.clear()
        self._peak = self.current
        return True


class LoadShedding:
    """ASGI middleware; the event loop is single-threaded, so the count needs no lock."""

    def __init__(self, app: ASGIApp, in_flight: InFlight,
                 refusals: RefusalLog | None = None) -> None:
        self.app = app
        self.in_flight = in_flight
        # A line every few seconds, not one per refusal.
        self.refusals = refusals if refusals is not None else RefusalLog()
        API_IN_FLIGHT_LIMIT.set(in_flight.places)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if not self.in_flight.admit():
            API_SHED.inc()
            self.refusals.refused(self.in_flight.places, asyncio.get_running_loop().call_later)
            await self._refuse(send)
            return
        started = time.monotonic()
        took: float | None = None
        try:
            await self.app(scope, receive, send)
            took = time.monotonic() - started
        finally:
            if self.in_flight.release(took):  # the gauge moves only when a window closes
                API_IN_FLIGHT_LIMIT.set(self.in_flight.places)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(error_body(
            "overloaded", f"this API process is serving all the requests it can at once "
            f"({self.in_flight.places}): retry in {RETRY_AFTER_SECONDS} s or ask another "
            "host's API")).encode()
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})
