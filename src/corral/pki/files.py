"""The three files a TLS client or server of the cluster needs, and the settings that use
them: httpx (the API, the agents, etcd's HTTP endpoints) and gRPC (etcd) as a client, uvicorn
(the API, the agents) as a server."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import grpc

# Whether a server asks its clients for a certificate of the cluster CA: "required" refuses a
# client without one; "optional" serves it too (and still refuses one of another CA).
ClientCerts = Literal["required", "optional"]
PKI_FILES = ("ca.crt", "host.crt", "host.key")  # what a pki dir holds on every host


def missing_in_pki_dir(pki: Path) -> list[Path]:
    """The files a host's services need from its pki dir and that it lacks."""
    return [pki / name for name in PKI_FILES if not (pki / name).is_file()]


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

    def uvicorn_kwargs(self, client_certs: ClientCerts) -> dict[str, Any]:
        """uvicorn's options to serve HTTPS with this certificate and to check the clients'
        against the cluster CA alone."""
        return {
            "ssl_certfile": str(self.cert),
            "ssl_keyfile": str(self.key),
            "ssl_ca_certs": str(self.ca),
            "ssl_cert_reqs": ssl.CERT_REQUIRED if client_certs == "required"
            else ssl.CERT_OPTIONAL,
        }

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=self.key.read_bytes(),
            certificate_chain=self.cert.read_bytes(),
        )
