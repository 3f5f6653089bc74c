"""Prometheus metrics of the cluster and of this API process."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from corral.api.deps import ViewDep
from corral.ha.store import read_all_from
from corral.metrics.exposition import CONTENT_TYPE, render

router = APIRouter()


@router.get("/metrics", response_class=Response, tags=["meta"],
            responses={200: {"content": {CONTENT_TYPE: {}},
                             "description": "Prometheus text format (docs/metrics.md)"}})
async def metrics(view: ViewDep) -> Response:
    state = await read_all_from(view, time.time())
    # Rendering a large cluster takes a CPU-bound 100 ms or so (bench/metrics.py): in a
    # thread, so other requests are not held up behind it.
    return Response(await run_in_threadpool(render, state), media_type=CONTENT_TYPE)
