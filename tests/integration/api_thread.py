"""The API for tests: under uvicorn in a thread of its own (its own event loop), as `corral
api serve` runs it, for tests that talk to it over real HTTP; or in the test's own process
through ASGI, for tests of its answers."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import uvicorn

from corral.api.app import create_app
from corral.lab.etcd import free_port


@contextmanager
def serving(app: Any, **config: Any) -> Iterator[int]:
    """Serve app on a free loopback port until the block ends; yields the port. Streams still
    open at the end get 2 s to close (unless config says otherwise)."""
    port = free_port()
    config.setdefault("timeout_graceful_shutdown", 2)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", **config))
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(20)
        assert not thread.is_alive(), "the API did not stop"


@asynccontextmanager
async def api_client(etcd_endpoint: str, headers: dict[str, str]
                     ) -> AsyncIterator[httpx.AsyncClient]:
    """The API app in this process, its start-up and shutdown run, and a client of its
    /api/v1 sending headers (a token): no socket, no thread."""
    app = create_app([etcd_endpoint])
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api/api/v1",
            headers=headers) as client:
        yield client
