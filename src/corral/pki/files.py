"""The three files a TLS client or server of the cluster needs, and the client settings that
use them: httpx (the API, etcd's HTTP endpoints) and gRPC (etcd)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc


@dataclass(frozen=True)
class TLSFiles:
    ca: Path  # the cluster CA certificate: the only issuer trusted
    cert: Path  # this side's certificate
    key: Path  # and its key

    @classmethod
    def in_dir(cls, pki: Path, name: str = "host") -> TLSFiles:
        """<pki>/ca.crt with <pki>/<name>.crt and <name>.key (the layout under <etc>/pki)."""
        return cls(pki / "ca.crt", pki / f"{name}.crt", pki / f"{name}.key")

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the cluster CA alone and presents this certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx

    def httpx_kwargs(self) -> dict[str, Any]:
        # httpx takes the client certificate inside the context (its `cert=` is deprecated).
        return {"verify": self.ssl_context()}

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=self.key.read_bytes(),
            certificate_chain=self.cert.read_bytes(),
        )
