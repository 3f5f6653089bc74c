"""No route runs code in FastAPI's thread pool: a plain `def` endpoint or dependency costs a
hand-off to a thread and back on every request that uses it."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import BaseRoute

from corral.api import deps
from corral.api.app import create_app


def calls(dependant: Dependant) -> Iterator[object]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from calls(sub)


def runs_on_the_loop(call: object) -> bool:
    if inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call):
        return True
    # An instance, as HTTPBearer is: its class's __call__ decides.
    return not inspect.isfunction(call) and inspect.iscoroutinefunction(type(call).__call__)


def api_routes(routes: list[BaseRoute]) -> Iterator[APIRoute | APIWebSocketRoute]:
    for route in routes:
        if isinstance(route, APIRoute | APIWebSocketRoute):
            yield route
        included = getattr(route, "original_router", None)  # a router the app included
        if included is not None:
            yield from api_routes(included.routes)


def test_every_endpoint_and_dependency_is_async() -> None:
    app = create_app(["http://127.0.0.1:1"])  # routes only: nothing connects before start
    routes = list(api_routes(app.routes))
    assert len(routes) > 50
    # The token guard is given to whole routers when they are included, not to their routes.
    guard = get_dependant(path="", call=deps.require_token)
    found = [(r.path, c) for r in routes for c in calls(r.dependant)]
    found += [("(every guarded route)", c) for c in calls(guard)]
    sync = sorted({f"{path}: {getattr(c, '__qualname__', c)}" for path, c in found
                   if not runs_on_the_loop(c)})
    assert sync == [], "run in the thread pool on every request:\n" + "\n".join(sync)
