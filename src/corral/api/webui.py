"""The web console's built files: `GET /` and `GET /assets/<file>`, nothing else, so no path
under /api/v1 can ever be shadowed by them.

Where the files are: $CORRAL_WEB_DIR when set, else `web/dist` of the source checkout this
package runs from (the repository's virtualenv installs it in editable mode, as `make` does,
so `src/corral/api/` is three levels below the repository). The directory is looked at on each
request: a console built after the API started is served without a restart, and a console not
built answers 503 with how to build it, never a crash.
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response

from corral.api.errors import not_found

ENV = "CORRAL_WEB_DIR"
ASSETS = "/assets"
# Vite writes the assets flat, with a content hash in each name.
ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# The page loads only its own files and talks only to its own origin (the API, and its
# websockets: CSP's 'self' covers ws:/wss: of the same host); the token it holds cannot be
# sent elsewhere by an injected script from another origin. `style-src-elem` lets <style>
# elements made at run time in: the serial console's terminal (xterm.js) sizes and colours
# its cells with them. Scripts stay 'self' only, and style attributes in markup stay refused.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
       "style-src-elem 'self' 'unsafe-inline'; script-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
INDEX_HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": CSP,
                 "X-Content-Type-Options": "nosniff"}
ASSET_HEADERS = {"Cache-Control": "public, max-age=31536000, immutable",
                 "X-Content-Type-Options": "nosniff"}

log = logging.getLogger(__name__)


def find_dist(env: Mapping[str, str] = os.environ) -> Path:
    configured = env.get(ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "web" / "dist"


def not_built(dist: Path) -> str | None:
    """Why the console cannot be served from `dist`, or None when it can."""
    index = dist / "index.html"
    if index.is_file():
        return None
    return (f"The web console is not built: {index} is missing. Run `make web` in the "
            f"repository, or set {ENV} to the directory of a built console.")


def _not_built_page(reason: str) -> HTMLResponse:
    body = (f"<!doctype html><title>Corral: console not built</title>"
            f"<p>{html.escape(reason)}</p><p>The REST API works: <a href=\"/api/v1/docs\">"
            f"/api/v1/docs</a>.</p>")
    return HTMLResponse(body, status_code=503, headers={"Cache-Control": "no-store"})


def mount(app: FastAPI, dist: Path | None = None) -> None:
    """Serves the console of `dist` (default: find_dist()) at `/`."""
    where = dist if dist is not None else find_dist()
    reason = not_built(where)
    if reason:
        log.warning("%s", reason)

    @app.get("/", include_in_schema=False)
    async def console_index() -> Response:
        problem = not_built(where)
        if problem:
            return _not_built_page(problem)
        return FileResponse(where / "index.html", headers=INDEX_HEADERS)

    @app.get(ASSETS + "/{name}", include_in_schema=False)
    async def console_asset(name: str) -> Response:
        path = where / "assets" / name
        if not ASSET_NAME.match(name) or not path.is_file():
            problem = not_built(where)
            if problem:
                return _not_built_page(problem)
            raise not_found("console file", name)
        return FileResponse(path, headers=ASSET_HEADERS)
