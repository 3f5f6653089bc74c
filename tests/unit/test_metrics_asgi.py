"""Request latency is labelled by route template, method and status: never by raw path."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from corral.metrics.asgi import UNMATCHED, RequestMetrics
from corral.metrics.instruments import API_REQUEST
from corral.metrics.names import API_REQUEST as SPEC

router = APIRouter()


@router.get("/things/{thing_id}/parts/{part}")
async def part(thing_id: int, part: str) -> dict[str, str]:
    return {"part": part}


@router.post("/boom")
async def boom() -> None:
    raise RuntimeError("a bug")


def app() -> FastAPI:
    api = FastAPI()
    api.add_middleware(RequestMetrics)
    api.include_router(router, prefix="/api/v1")
    return api


def observed(route: str, method: str, status: str) -> float:
    """Observations so far of one series (the instrument is process-wide: tests compare)."""
    for family in API_REQUEST.collect():
        for s in family.samples:
            if s.name == f"{SPEC.name}_count" and s.labels == {
                    "route": route, "method": method, "status": status}:
                return s.value
    return 0.0


async def test_requests_are_counted_under_their_route_template() -> None:
    template = "/api/v1/things/{thing_id}/parts/{part}"
    before = {code: observed(template, "GET", code) for code in ("200", "422")}
    unmatched = observed(UNMATCHED, "GET", "404")
    failed = observed("/api/v1/boom", "POST", "500")
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        for thing in (1, 2, 3):
            assert (await c.get(f"/api/v1/things/{thing}/parts/wheel")).status_code == 200
        assert (await c.get("/api/v1/things/x/parts/wheel")).status_code == 422
        assert (await c.get("/no/such/path/7")).status_code == 404
        assert (await c.post("/api/v1/boom")).status_code == 500
    assert observed(template, "GET", "200") - before["200"] == 3
    assert observed(template, "GET", "422") - before["422"] == 1
    assert observed(UNMATCHED, "GET", "404") - unmatched == 1
    assert observed("/api/v1/boom", "POST", "500") - failed == 1
    routes = {s.labels["route"] for f in API_REQUEST.collect() for s in f.samples}
    assert not [r for r in routes if "wheel" in r or r.endswith("/7")]


@pytest.mark.parametrize("path", ["/api/v1/things/5/parts/5", "/api/v1/things/12/parts/2"])
async def test_a_value_that_repeats_in_the_path_keeps_the_template(path: str) -> None:
    template = "/api/v1/things/{thing_id}/parts/{part}"
    before = observed(template, "GET", "200")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app()),
                                 base_url="http://t") as c:
        assert (await c.get(path)).status_code == 200
    assert observed(template, "GET", "200") - before == 1
