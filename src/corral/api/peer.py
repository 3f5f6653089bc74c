"""Who is at the other end of an HTTPS connection to the API: the CN of the client certificate
it showed, which the TLS handshake has verified against the cluster CA. Routes that
authenticate a host by its certificate (a rejoin) read it with `peer_cn`.

uvicorn hands no TLS details to the app, so its HTTP protocol is extended to record the peer's
CN once per connection in the state it copies into each request's ASGI scope (Starlette's
`request.state`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PEER_CN = "corral_peer_cn"


def subject_cn(peercert: Mapping[str, Any] | None) -> str | None:
    """The CN of a certificate as `ssl.SSLSocket.getpeercert()` gives it (subject: a tuple of
    relative names, each a tuple of (attribute, value) pairs); None without a certificate, or
    with a subject that has no single CN."""
    if not peercert:
        return None
    names = [value for rdn in peercert.get("subject", ()) for key, value in rdn
             if key == "commonName"]
    return names[0] if len(names) == 1 and isinstance(names[0], str) and names[0] else None


class PeerCertProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (its fast one), that also records the client
    certificate's CN."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # asyncio calls this once the handshake is done: the certificate is there, verified.
        ssl_object = transport.get_extra_info("ssl_object")
        cn = subject_cn(ssl_object.getpeercert()) if ssl_object is not None else None
        if cn is not None:
            self.app_state = {**self.app_state, PEER_CN: cn}


async def peer_cn(request: Request) -> str | None:
    """The verified CN of the client's certificate; None over plain HTTP, without a client
    certificate, or under a server without PeerCertProtocol."""
    value = request.scope.get("state", {}).get(PEER_CN)
    return value if isinstance(value, str) else None


PeerDep = Annotated[str | None, Depends(peer_cn)]
