"""The REST API: stateless, it validates, reads and writes etcd, and queues tasks for agents."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from corral.api import (
    errors,
    routes_balance,
    routes_bulk,
    routes_cluster,
    routes_console,
    routes_events,
    routes_ha,
    routes_maintenance,
    routes_metrics,
    routes_migrate,
    routes_nodes,
    routes_usage,
    routes_vms,
    webui,
)
from corral.api.access_log import RefusalLog, served
from corral.api.answers import Answers
from corral.api.auth import TokenChecker
from corral.api.deps import require_token
from corral.api.loop_lag import LoopLag
from corral.api.schemas import Health
from corral.api.shedding import InFlight, LoadShedding
from corral.api.stream_tickets import StreamTickets
from corral.api.wire import DEFAULT_MAX_IN_FLIGHT, AccessLog
from corral.cluster.store import Store, StoreError
from corral.cluster.view import ClusterView
from corral.cluster.view_gc import freeze_listed
from corral.metrics.asgi import RequestMetrics
from corral.pki.files import TLSFiles
from corral.setup.admission import Admission, ClusterPKI

PREFIX = "/api/v1"
AGENT_TIMEOUT = 5.0
log = logging.getLogger(__name__)


NO_PKI = ("this API was started without the cluster's pki directory: it cannot admit or "
          "remove members (a lab without TLS)")


def admin_files(pki_dir: Path) -> TLSFiles | str:
    """The root certificate membership changes need, or why it cannot be used."""
    files = TLSFiles.in_dir(pki_dir, "admin")
    missing = [str(p) for p in (files.ca, files.cert, files.key, pki_dir / "ca.key")
               if not p.is_file()]
    if missing:
        return (f"this host cannot admit or remove members: {', '.join(missing)} missing "
                "(only a full host has the CA key and the root certificate)")
    return files


async def _cluster_access(stack: AsyncExitStack, store: Store, endpoints: list[str],
                          tls: TLSFiles | None, pki_dir: Path | None
                          ) -> routes_cluster.ClusterAccess:
    ca_file = pki_dir / "ca.crt" if pki_dir else (tls.ca if tls else None)
    if pki_dir is None:
        return routes_cluster.ClusterAccess(store, tls, ca_file, None, NO_PKI)
    admin_tls = admin_files(pki_dir) if tls is not None else None
    if isinstance(admin_tls, str):
        log.warning("%s", admin_tls)
        return routes_cluster.ClusterAccess(store, tls, ca_file, None, admin_tls)
    admin = await stack.enter_async_context(Store(endpoints, tls=admin_tls))
    admission = Admission(store, admin, ClusterPKI(pki_dir))
    stack.push_async_callback(admission.close)  # promotions still waiting end with the API
    return routes_cluster.ClusterAccess(store, tls, ca_file, admission, "")


def create_app(etcd_endpoints: list[str], tls: TLSFiles | None = None,
               pki_dir: Path | None = None,
               max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
               access_log: AccessLog = AccessLog.CHANGES) -> FastAPI:
    """`tls`: the certificate the API presents to etcd (and asks members' status with) and to
    the agents it relays consoles from; `pki_dir`: the host's pki directory (ca.crt, ca.key,
    admin.crt|key), with which it admits and removes members. Without them, a lab's plain etcd
    and agents, and no joins. `max_in_flight`: requests served at once; more are refused with
    503 and Retry-After (api/shedding.py). `access_log`: which served requests get a line
    (api/access_log.py)."""
    loop_lag = LoopLag()
    # Before anything else: a bad value starts nothing.
    in_flight = InFlight(max_in_flight, loop_lag=loop_lag.take)
    refusals = RefusalLog()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(loop_lag.running())
            store = await stack.enter_async_context(
                Store(etcd_endpoints, tls=tls, follow_members=True))
            # The agents' console endpoints: over TLS they take a client certificate of the
            # cluster CA, and are trusted by that CA alone.
            http = await stack.enter_async_context(httpx.AsyncClient(
                timeout=AGENT_TIMEOUT, **(tls.httpx_kwargs() if tls else {})))
            app.state.store = store
            # Reads come from this view, kept current by a watch; writes go to etcd.
            app.state.view = await stack.enter_async_context(ClusterView(store))
            app.state.answers = Answers(app.state.view)
            app.state.tokens = TokenChecker(store, app.state.view)
            app.state.http = http
            app.state.agent_ssl = tls.ssl_context() if tls else None  # the console's relay
            app.state.console_tickets = StreamTickets()  # GET /vms/{vmid}/console/ws
            app.state.events = routes_events.EventHub(app.state.view)  # GET /events
            app.state.cluster = await _cluster_access(stack, store, etcd_endpoints, tls,
                                                      pki_dir)
            stack.callback(freeze_listed(app.state.view))
            stack.callback(refusals.flush)  # the count not written yet, at shutdown
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
    app.add_middleware(RequestMetrics, finished=partial(served, access_log))
    # Outermost: a request refused costs no more than its refusal (counted in
    # corral_api_requests_shed_total, not timed as a route).
    app.state.in_flight = in_flight
    app.add_middleware(LoadShedding, in_flight=in_flight, refusals=refusals)

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
    app.include_router(routes_cluster.public, prefix=PREFIX)
    app.include_router(routes_cluster.router, prefix=PREFIX, dependencies=guarded)
    app.include_router(routes_nodes.router, prefix=PREFIX, dependencies=guarded)
    app.include_router(routes_vms.router, prefix=PREFIX, dependencies=guarded)
    app.include_router(routes_usage.router, prefix=PREFIX, dependencies=guarded)
    app.include_router(routes_ha.router, prefix=PREFIX, dependencies=guarded)
    app.include_router(routes_balance.router, prefix=PREFIX, dependencies=guarded)
    app.include_router(routes_migrate.router, prefix=PREFIX, dependencies=guarded)
    app.include_router(routes_maintenance.router, prefix=PREFIX, dependencies=guarded)
    app.include_router(routes_bulk.router, prefix=PREFIX, dependencies=guarded)
    app.include_router(routes_metrics.router, prefix=PREFIX, dependencies=guarded)
    app.include_router(routes_events.router, prefix=PREFIX)  # a token or a stream ticket
    app.include_router(routes_events.guarded, prefix=PREFIX, dependencies=guarded)
    app.include_router(routes_console.router, prefix=PREFIX)  # a token, header or ticket
    app.include_router(routes_console.guarded, prefix=PREFIX, dependencies=guarded)
    webui.mount(app)  # `/` and `/assets/...` only: nothing under PREFIX
    return app
