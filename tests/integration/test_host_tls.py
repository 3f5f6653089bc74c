"""The command lines from `host.commands` run for real: two etcd members speak TLS to their
clients and to each other and refuse plain HTTP and foreign certificates; the API serves
HTTPS with the host certificate."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tls_certs import make_ca, make_host_cert

from corral.host.commands import api_command, etcd_command
from corral.host.config import HostConfig
from corral.lab.etcd import free_port

pytestmark = pytest.mark.integration


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


def get(url: str, verify: ssl.SSLContext | bool = True) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2.0, verify=verify)
    except httpx.HTTPError:
        return None


@pytest.fixture
def lab_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="corral-host-tls-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def hosts(root: Path, n: int) -> list[HostConfig]:
    ports = [(free_port(), free_port(), free_port(), free_port()) for _ in range(n)]
    endpoints = [f"https://127.0.0.1:{p[0]}" for p in ports]
    cluster = ",".join(f"n{i}=https://127.0.0.1:{p[1]}" for i, p in enumerate(ports, start=1))
    out = []
    for i, (client, peer, agent, api) in enumerate(ports, start=1):
        out.append(HostConfig.for_lab(
            root, f"n{i}", cluster="tls", address="127.0.0.1", etcd_client_port=client,
            etcd_peer_port=peer, agent_port=agent, api_port=api, images_dir=root / "images",
            etcd_endpoints=endpoints, initial_cluster=cluster))
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


def test_etcd_members_speak_tls_only_to_certificates_of_their_ca(lab_root: Path) -> None:
    configs = hosts(lab_root, 2)
    procs = [start(etcd_command(c).argv, lab_root / f"{c.name}-etcd.log") for c in configs]
    try:
        tls = configs[0].tls
        assert tls is not None
        ours = trust(tls.ca_cert, tls.cert, tls.key)
        # Healthy needs a leader: the two members reached each other over peer TLS.
        for c in configs:
            wait_until(lambda c=c: (r := get(f"{c.client_url}/health", ours)) is not None
                       and r.json().get("health") == "true")
        members = httpx.post(f"{configs[0].client_url}/v3/cluster/member/list", json={},
                             timeout=5, verify=ours).json()["members"]
        assert sorted(m["peerURLs"][0] for m in members) == sorted(c.peer_url for c in configs)
        port = configs[0].etcd_client_port
        # Plain HTTP: no answer but a refusal.
        plain = get(f"http://127.0.0.1:{port}/health")
        assert plain is None or plain.status_code == 400
        # TLS without a client certificate, and with one of another CA: refused.
        assert get(f"https://127.0.0.1:{port}/health", trust(tls.ca_cert)) is None
        other = make_ca(lab_root / "other/ca.crt", lab_root / "other/ca.key", "other-ca")
        make_host_cert(other, "n1", lab_root / "other/n1.crt", lab_root / "other/n1.key")
        assert get(f"https://127.0.0.1:{port}/health", trust(
            tls.ca_cert, lab_root / "other/n1.crt", lab_root / "other/n1.key")) is None
    finally:
        stop(procs)


def test_the_api_serves_https_with_the_host_certificate(lab_root: Path,
                                                        etcd_endpoint: str) -> None:
    config = hosts(lab_root, 1)[0]
    assert config.tls is not None
    argv = list(api_command(config).argv)
    # The API's own etcd client speaks plain HTTP to the test's etcd here: its TLS to etcd
    # comes with the store's.
    argv[argv.index("--etcd") + 1] = etcd_endpoint
    proc = start(tuple(argv), lab_root / "api.log")
    try:
        url = f"{config.api_url}/api/v1/health"
        ca = trust(config.tls.ca_cert)
        wait_until(lambda: (r := get(url, ca)) is not None and r.status_code == 200)
        assert url.startswith("https://")
        assert get(url.replace("https://", "http://")) is None
        # A client that pins another CA does not trust it.
        make_ca(lab_root / "other/ca.crt", lab_root / "other/ca.key", "other-ca")
        assert get(url, trust(lab_root / "other/ca.crt")) is None
    finally:
        stop([proc])
        assert proc.returncode is not None
