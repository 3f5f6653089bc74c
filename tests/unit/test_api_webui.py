"""Serving the built web console: `/` and `/assets/...` only, never over /api/v1, and a
console that is not built answers with how to build it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from corral.api import errors, webui


def built(tmp: Path) -> Path:
    dist = tmp / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>console</title>")
    (dist / "assets" / "index-abc123.js").write_text("console.log('hi')")
    (dist / "assets" / "index-abc123.css").write_text("body{}")
    (dist / "secret.txt").write_text("not an asset")
    return dist


def app_serving(dist: Path) -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.get("/api/v1/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    webui.mount(app, dist)

    # A route added after the console's (another module's, say) must still answer.
    @app.get("/api/v1/events")
    async def events() -> dict[str, str]:
        return {"route": "events"}

    return app


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_serving(built(tmp_path)))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


async def test_index_and_assets_are_served(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 200 and "<title>console</title>" in r.text
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"
    assert "connect-src 'self'" in r.headers["content-security-policy"]
    js = await client.get("/assets/index-abc123.js")
    assert js.status_code == 200 and js.text == "console.log('hi')"
    assert "javascript" in js.headers["content-type"]
    assert "immutable" in js.headers["cache-control"]
    css = await client.get("/assets/index-abc123.css")
    assert css.headers["content-type"].startswith("text/css")


async def test_api_routes_are_not_shadowed(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/health")).json() == {"ok": True}
    assert (await client.get("/api/v1/events")).json() == {"route": "events"}
    r = await client.get("/api/v1/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/assets/missing.js", "/assets/..%2Fsecret.txt",
                                  "/assets/.hidden", "/secret.txt", "/assets/../secret.txt"])
async def test_only_asset_files_are_served(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 404, r.text
    assert "not an asset" not in r.text
    assert r.json()["error"]["code"] == "not_found"


async def test_a_console_not_built_says_how_to_build_it(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    transport = httpx.ASGITransport(app=app_serving(missing))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        r = await c.get("/")
        assert r.status_code == 503
        assert "make web" in r.text and str(missing / "index.html") in r.text
        assert (await c.get("/assets/index-abc123.js")).status_code == 503
        assert (await c.get("/api/v1/health")).json() == {"ok": True}
        # Built after the API started: served without a restart.
        built(tmp_path)
        (tmp_path / "dist").rename(missing)
        assert (await c.get("/")).status_code == 200


def test_the_dist_dir_is_the_env_var_or_the_checkout_s_web_dist(tmp_path: Path) -> None:
    assert webui.find_dist({webui.ENV: str(tmp_path)}) == tmp_path
    default = webui.find_dist({})
    assert default.parts[-2:] == ("web", "dist")
    # The checkout's root: where pyproject.toml and web/package.json are.
    assert (default.parent.parent / "pyproject.toml").is_file()
    assert (default.parent / "package.json").is_file()
