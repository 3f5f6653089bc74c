"""Per-request access to the app's shared state, and the auth guard."""

from __future__ import annotations

import time
from typing import Annotated, cast

import httpx
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from corral.api.answers import Answers
from corral.api.auth import TokenChecker
from corral.cluster.snapshot import ClusterSnapshot
from corral.cluster.store import Store
from corral.cluster.view import ClusterView
from corral.cluster.view_state import ViewState

_bearer = HTTPBearer(auto_error=False)  # auto_error would answer 403 in FastAPI's own shape

# Every dependency is `async def`, even one that only reads an attribute: FastAPI runs a plain
# `def` in its thread pool, a hand-off to a thread and back on every request that uses it
# (tests/unit/test_api_dependencies.py keeps it so).


async def get_store(request: Request) -> Store:
    return cast(Store, request.app.state.store)


async def get_view(request: Request) -> ClusterView:
    return cast(ClusterView, request.app.state.view)


async def current_snapshot(request: Request) -> ClusterSnapshot:
    """The cluster from the API's view, including every write finished before this request."""
    return await cast(ClusterView, request.app.state.view).current(time.time())


async def current_state(request: Request) -> ViewState:
    """The same, for an answer that reads a few records and needs no whole snapshot (see
    `ClusterView.caught_up` for what reading it across an await gives)."""
    return await cast(ClusterView, request.app.state.view).caught_up()


async def get_answers(request: Request) -> Answers:
    return cast(Answers, request.app.state.answers)


async def get_http(request: Request) -> httpx.AsyncClient:
    return cast(httpx.AsyncClient, request.app.state.http)


async def require_token(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    checker = cast(TokenChecker, request.app.state.tokens)
    header = f"{creds.scheme} {creds.credentials}" if creds else None
    return await checker.check(header)


StoreDep = Annotated[Store, Depends(get_store)]
ViewDep = Annotated[ClusterView, Depends(get_view)]
AnswersDep = Annotated[Answers, Depends(get_answers)]
SnapDep = Annotated[ClusterSnapshot, Depends(current_snapshot)]
StateDep = Annotated[ViewState, Depends(current_state)]
HttpDep = Annotated[httpx.AsyncClient, Depends(get_http)]
TokenDep = Annotated[str, Depends(require_token)]

# Paging of list answers (api/paging.py checks the values, so a bad one is named the same way
# on every list).
LimitQuery = Annotated[int | None, Query(
    description="At most this many records (1..1000); without it, all of them.")]
CursorQuery = Annotated[str | None, Query(
    description="Where the page starts: the Corral-Next-Cursor header of the previous page.")]
