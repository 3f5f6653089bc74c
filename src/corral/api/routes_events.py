"""`GET /api/v1/events`: live changes of VMs, hosts, tasks and HA as server-sent events.

One hub per API process listens to the watch-fed view while any stream is open, collects
the changed keys, and at most every FLUSH_SECONDS turns them into events once, for every
client (`events_core`): a client costs a bounded queue of shared strings, not a decode or a
serialization of its own. A client too slow to drain its queue gets a `resync` instead of
its backlog.

Auth: an `Authorization: Bearer` header (the CLI, scripts), or `?ticket=` from
`POST /api/v1/events/ticket` (browsers: EventSource sends no headers). A ticket is spent
on use and expires within seconds, so the URL that access logs record opens nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, cast

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from corral.api import events_core as core
from corral.api.auth import TokenChecker
from corral.api.errors import ApiError, error_body
from corral.api.stream_tickets import TICKET_SECONDS, StreamTickets
from corral.cluster.view import ClusterView
from corral.ha.store import inputs_of

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.25  # changes are collected this long and sent together
HEARTBEAT_SECONDS = 15.0  # a comment on an idle stream, so proxies keep it open
MAX_STREAMS = 200  # open streams per API process; beyond, 503 and Retry-After
RETRY_AFTER_SECONDS = 10
MAX_QUEUED_EVENTS = 5_000  # per client, before its backlog is dropped for a resync
MAX_QUEUED_BYTES = 8 * 1024 * 1024
RECONNECT_MS = 3_000  # how soon an EventSource reconnects after the stream broke

router = APIRouter(tags=["events"])  # authenticates by itself (header or ticket)
guarded = APIRouter(tags=["events"])  # included behind the bearer token


class StreamTicket(BaseModel):
    ticket: str
    expires_in: float


class Client:
    """One open stream: its backlog, and a wake-up when something was queued."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.backlog = core.Backlog(max_events, max_bytes)
        self._ready = asyncio.Event()

    def push(self, chunks: list[str], revision: int) -> None:
        self.backlog.push(chunks, revision)
        self._ready.set()

    async def next(self, timeout: float) -> list[str]:
        """What was queued, or [] after timeout of quiet."""
        if not self.backlog:
            self._ready.clear()  # nothing runs between this and the wait: no push is missed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
        return self.backlog.take()


class EventHub:
    def __init__(self, view: ClusterView, max_streams: int = MAX_STREAMS,
                 flush_seconds: float = FLUSH_SECONDS,
                 max_events: int = MAX_QUEUED_EVENTS,
                 max_bytes: int = MAX_QUEUED_BYTES) -> None:
        self.view = view
        self.max_streams = max_streams
        self.flush_seconds = flush_seconds
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.tickets = StreamTickets()
        self.clients: set[Client] = set()
        self.flushes = 0
        self._changed: set[str] = set()
        self._relisted = False
        self._dirty = asyncio.Event()
        self._memory: core.Memory | None = None
        self._unlisten: Callable[[], None] | None = None
        self._flusher: asyncio.Task[None] | None = None

    def subscribe(self, last_event_id: str | None) -> Client | None:
        """A new client, or None when MAX_STREAMS are open."""
        if len(self.clients) >= self.max_streams:
            return None
        if not self.clients:
            self._start()
        client = Client(self.max_events, self.max_bytes)
        first = core.resync_on_connect(last_event_id, self.view.revision)
        if first is not None:
            client.push([first.encode()], first.revision)
        self.clients.add(client)
        return client

    def unsubscribe(self, client: Client) -> None:
        self.clients.discard(client)
        if not self.clients:
            self._stop()

    # --- while any client listens ------------------------------------------------------------

    def _start(self) -> None:
        self._changed.clear()
        self._relisted = False
        self._memory = core.Memory.of(self.view.snapshot(time.time()),
                                      inputs_of(self.view.state))
        self._unlisten = self.view.listen(self._on_change)
        self._flusher = asyncio.create_task(self._flush_forever(), name="events-flush")

    def _stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        self._memory = None

    def _on_change(self, changed: list[str] | None) -> None:
        if changed is None:
            self._relisted = True
        else:
            self._changed.update(changed)
        self._dirty.set()

    async def _flush_forever(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.flush_seconds)  # let the burst gather
            self._dirty.clear()
            try:
                self.flush()
            except Exception:
                log.exception("cannot build the events of a flush; clients read again")
                self._relisted = True
                self._dirty.set()

    def flush(self) -> None:
        """Turn the keys changed since the last flush into events, once, for every client."""
        changed, self._changed = self._changed, set()
        snap = self.view.snapshot(time.time())
        inputs = inputs_of(self.view.state)
        if self._relisted or self._memory is None:
            self._relisted = False
            self._memory = core.Memory.of(snap, inputs)
            events = [core.resync(snap.revision, core.RELISTED)]
        else:
            events = core.events_for(core.touched_by(changed), snap, inputs, self._memory)
        self.flushes += 1
        if not events:
            return
        chunks = [e.encode() for e in events]
        for client in self.clients:
            client.push(chunks, snap.revision)


def get_hub(request: Request) -> EventHub:
    return cast(EventHub, request.app.state.events)


async def _authorized(request: Request, authorization: str | None, ticket: str | None) -> None:
    if ticket is not None:
        if not get_hub(request).tickets.redeem(ticket, time.monotonic()):
            raise ApiError(401, "unauthorized", "invalid or expired stream ticket", "ticket")
        return
    await cast(TokenChecker, request.app.state.tokens).check(authorization)


async def _chunks(client: Client) -> AsyncIterator[str]:
    yield f"retry: {RECONNECT_MS}\n\n"
    while True:
        chunks = await client.next(HEARTBEAT_SECONDS)
        yield "".join(chunks) if chunks else ": keep-alive\n\n"


class EventStream(StreamingResponse):
    """The stream of one client, which leaves the hub however the response ends: the client
    went away (Starlette cancels the response), the server stops, or it never started."""

    def __init__(self, hub: EventHub, client: Client) -> None:
        super().__init__(_chunks(client), media_type="text/event-stream", headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: pass each event on at once
        })
        self.hub = hub
        self.client = client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.hub.unsubscribe(self.client)


@router.get("/events", response_class=StreamingResponse, response_model=None,
            responses={200: {"content": {"text/event-stream": {}}}})
async def events(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    last_event_id: Annotated[str | None, Header()] = None,
    ticket: Annotated[str | None, Query(description="from POST /events/ticket")] = None,
) -> StreamingResponse | JSONResponse:
    """Server-sent events: `vm`, `node`, `task`, `ha` and `resync` (see docs/operations.md)."""
    await _authorized(request, authorization, ticket)
    hub = get_hub(request)
    client = hub.subscribe(last_event_id)
    if client is None:
        return JSONResponse(
            error_body("too_many_streams",
                       f"this API serves at most {hub.max_streams} event streams; "
                       "try again later or another API host"),
            status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    return EventStream(hub, client)


@guarded.post("/events/ticket", response_model=StreamTicket, status_code=201)
async def stream_ticket(request: Request) -> StreamTicket:
    """A single-use ticket for `GET /events?ticket=...` (an EventSource sends no headers)."""
    ticket = get_hub(request).tickets.issue(time.monotonic())
    return StreamTicket(ticket=ticket, expires_in=TICKET_SECONDS)
