"""Prometheus metrics of the cluster and of this API process."""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from corral.metrics.exposition import CONTENT_TYPE, SnapshotSource, render

router = APIRouter()


@router.get("/metrics", response_class=Response, tags=["meta"],
            responses={200: {"content": {CONTENT_TYPE: {}},
                             "description": "Prometheus text format (docs/metrics.md)"}})
async def metrics(request: Request) -> Response:
    source = cast(SnapshotSource, request.app.state.snapshot_source)
    view = await source()
    # Rendering a large cluster takes a CPU-bound 100 ms or so (bench/metrics.py): in a
    # thread, so other requests are not held up behind it.
    return Response(await run_in_threadpool(render, view), media_type=CONTENT_TYPE)
