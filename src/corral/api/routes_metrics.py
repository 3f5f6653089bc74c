"""Prometheus metrics of the cluster and of this API process."""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Request, Response

from corral.metrics.exposition import CONTENT_TYPE, SnapshotSource, render

router = APIRouter()


@router.get("/metrics", response_class=Response, tags=["meta"],
            responses={200: {"content": {CONTENT_TYPE: {}},
                             "description": "Prometheus text format (docs/metrics.md)"}})
async def metrics(request: Request) -> Response:
    source = cast(SnapshotSource, request.app.state.snapshot_source)
    return Response(render(await source()), media_type=CONTENT_TYPE)
