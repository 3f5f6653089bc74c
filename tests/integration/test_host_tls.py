"""The command lines from `host.commands` run for real: two etcd members speak TLS to their
clients and to each other and refuse plain HTTP and foreign certificates; the API serves
HTTPS with the host certificate."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tls_certs import make_ca, make_host_cert
from tls_hosts import get, hosts, start, stop, trust, wait_until

from corral.host.commands import api_command, etcd_command

pytestmark = pytest.mark.integration


@pytest.fixture
def lab_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="corral-host-tls-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


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


def test_the_api_serves_https_with_the_host_certificate(lab_root: Path) -> None:
    config = hosts(lab_root, 1)[0]
    assert config.tls is not None
    procs = [start(etcd_command(config).argv, lab_root / "etcd.log"),
             start(api_command(config).argv, lab_root / "api.log")]
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
        stop(procs)
        assert all(p.returncode is not None for p in procs)
