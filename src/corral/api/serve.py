"""Running the API under uvicorn."""

from __future__ import annotations

import uvicorn

from corral.api.app import create_app


def serve(etcd_endpoints: list[str], host: str = "127.0.0.1", port: int = 8470) -> None:
    uvicorn.run(create_app(etcd_endpoints), host=host, port=port, log_level="info")
