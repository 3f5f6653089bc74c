"""The REST API: stateless, it validates, reads and writes etcd, and queues tasks for agents."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from corral.api import (
    errors,
    routes_bulk,
    routes_ha,
    routes_maintenance,
    routes_migrate,
    routes_nodes,
    routes_vms,
)
from corral.api.auth import TokenChecker
from corral.api.deps import require_token
from corral.api.schemas import Health
from corral.cluster.store import Store, StoreError

PREFIX = "/api/v1"
AGENT_TIMEOUT = 5.0
log = logging.getLogger(__name__)


def create_app(etcd_endpoints: list[str]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Store(etcd_endpoints) as store, httpx.AsyncClient(
            timeout=AGENT_TIMEOUT
        ) as http:
            app.state.store = store
            app.state.tokens = TokenChecker(store)
            app.state.http = http
            yield

    app = FastAPI(
        title="Corral",
        version="1",
        lifespan=lifespan,
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )
    errors.install(app)

    @app.exception_handler(StoreError)
    async def _store_down(_: Request, exc: StoreError) -> JSONResponse:
        log.warning("etcd request failed: %s", exc)
        return JSONResponse(
            errors.error_body("store_unavailable", f"the cluster store is unavailable: {exc}"),
            status_code=503,
        )

    @app.get(f"{PREFIX}/health", response_model=Health, tags=["meta"])
    async def health() -> Health:
        return Health(ok=True)

    guarded = [Depends(require_token)]
    app.include_router(routes_nodes.router, prefix=PREFIX, dependencies=guarded)
    app.include_router(routes_vms.router, prefix=PREFIX, dependencies=guarded)
    app.include_router(routes_ha.router, prefix=PREFIX, dependencies=guarded)
    app.include_router(routes_migrate.router, prefix=PREFIX, dependencies=guarded)
    app.include_router(routes_maintenance.router, prefix=PREFIX, dependencies=guarded)
    app.include_router(routes_bulk.router, prefix=PREFIX, dependencies=guarded)
    return app
