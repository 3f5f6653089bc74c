"""Running the API under uvicorn."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from corral.api.app import create_app


def serve(etcd_endpoints: list[str], host: str = "127.0.0.1", port: int = 8470,
          tls_cert: Path | None = None, tls_key: Path | None = None) -> None:
    """Serve the API; HTTPS when given a certificate and its key (both or neither)."""
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("HTTPS needs both a certificate and its key")
    uvicorn.run(create_app(etcd_endpoints), host=host, port=port, log_level="info",
                ssl_certfile=tls_cert, ssl_keyfile=tls_key)
