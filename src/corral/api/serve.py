"""Running the API under uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import uvicorn

from corral.api.app import create_app
from corral.api.peer import PeerCertProtocol
from corral.pki.files import TLSFiles

# Open event streams never end by themselves: on shutdown they get this long, then are cut
# (an EventSource reconnects, to this API once it is back or to another).
SHUTDOWN_GRACE_SECONDS = 5


def uvicorn_tls(tls_cert: Path | None = None, tls_key: Path | None = None,
                pki_dir: Path | None = None) -> dict[str, Any]:
    """uvicorn's TLS options. With the host's pki dir: HTTPS with the host certificate, and a
    client certificate is asked for but not required (browsers and the CLI show a token
    instead); one that is shown must be of the cluster CA, and routes see its CN.
    tls_cert/tls_key: serve this certificate instead (one that browsers trust, say)."""
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("HTTPS needs both a certificate and its key")
    options: dict[str, Any] = {}
    if pki_dir is not None:
        options = TLSFiles.in_dir(pki_dir, "host").uvicorn_kwargs("optional")
        options["http"] = PeerCertProtocol
    if tls_cert is not None or pki_dir is None:
        options |= {"ssl_certfile": tls_cert, "ssl_keyfile": tls_key}
    return options


def serve(etcd_endpoints: list[str], host: str = "127.0.0.1", port: int = 8470,
          tls_cert: Path | None = None, tls_key: Path | None = None,
          pki_dir: Path | None = None) -> None:
    """Serve the API; HTTPS when given a certificate and its key (both or neither), or the
    host's pki dir, with which it also speaks TLS to etcd and to the agents and admits
    members (`create_app`)."""
    options = uvicorn_tls(tls_cert, tls_key, pki_dir)
    tls = TLSFiles.in_dir(pki_dir, "host") if pki_dir is not None else None
    uvicorn.run(create_app(etcd_endpoints, tls=tls, pki_dir=pki_dir), host=host, port=port,
                log_level="info", timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS, **options)
