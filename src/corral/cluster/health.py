"""Whether an etcd member answers and its cluster has a leader (etcd's /health)."""

from __future__ import annotations

import httpx

from corral.pki.files import TLSFiles


def healthy(client_url: str, timeout: float = 1.0, tls: TLSFiles | None = None) -> bool:
    try:
        r = httpx.get(f"{client_url}/health", timeout=timeout,
                      **(tls.httpx_kwargs() if tls else {}))
        return r.status_code == 200 and r.json().get("health") in ("true", True)
    except (httpx.HTTPError, ValueError):
        return False
