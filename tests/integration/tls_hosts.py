"""Hosts of a TLS cluster on 127.0.0.1 for integration tests: their HostConfigs with the
certificates of a test CA in each host's pki dir, their services started from
`host.commands`, and clients that pin a CA and show a certificate or none."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from tls_certs import make_ca, make_host_cert

from corral.host.config import HostConfig
from corral.lab.etcd import free_port


def wait_until(ok: object, timeout: float = 30.0) -> None:
    assert callable(ok)
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, "not ready in time"
        time.sleep(0.2)


def trust(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A client that pins the CA ca, showing the client certificate cert if given."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def get(url: str, verify: ssl.SSLContext | bool = True,
        headers: dict[str, str] | None = None) -> httpx.Response | None:
    """The answer, or None when the connection or its TLS handshake was refused."""
    try:
        return httpx.get(url, timeout=2.0, verify=verify, headers=headers)
    except httpx.HTTPError:
        return None


def hosts(root: Path, n: int, **options: Any) -> list[HostConfig]:
    """n lab hosts of one cluster with TLS; `options` go to HostConfig.for_lab."""
    ports = [(free_port(), free_port(), free_port(), free_port()) for _ in range(n)]
    endpoints = [f"https://127.0.0.1:{p[0]}" for p in ports]
    cluster = ",".join(f"n{i}=https://127.0.0.1:{p[1]}" for i, p in enumerate(ports, start=1))
    out = []
    for i, (client, peer, agent, api) in enumerate(ports, start=1):
        out.append(HostConfig.for_lab(
            root, f"n{i}", cluster="tls", address="127.0.0.1", etcd_client_port=client,
            etcd_peer_port=peer, agent_port=agent, api_port=api, images_dir=root / "images",
            etcd_endpoints=endpoints, initial_cluster=cluster, **options))
    ca = make_ca(root / "ca.crt", root / "ca.key")
    for c in out:
        assert c.tls is not None
        c.tls.ca_cert.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "ca.crt", c.tls.ca_cert)
        make_host_cert(ca, c.name, c.tls.cert, c.tls.key)
    return out


def start(argv: tuple[str, ...], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as f:
        return subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
