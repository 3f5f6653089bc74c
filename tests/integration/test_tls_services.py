"""A TLS host's services run for real from `host.commands`, with its pki dir: etcd, the agent
and the API. The agent registers its host over TLS etcd; its console endpoint takes only a
client with a certificate of the cluster CA (and still a token); the API serves HTTPS, asks
for client certificates without requiring one, refuses another CA's, relays the console from
the agent over mutual TLS, and tells routes the CN of the certificate shown; the CLI pins the
cluster CA."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from api_thread import serving
from fastapi import FastAPI
from tls_certs import make_ca, make_host_cert
from tls_hosts import get, hosts, start, stop, trust, wait_until
from typer.testing import CliRunner

from corral.api.peer import PeerCertProtocol, PeerDep
from corral.cli.client import write_client_config
from corral.cli.main import app as cli
from corral.cluster import keys
from corral.cluster.models import Placement
from corral.cluster.store import Store
from corral.host.commands import agent_command, api_command, etcd_command, pki_dir
from corral.host.config import HostConfig
from corral.pki.files import TLSFiles

pytestmark = pytest.mark.integration

TOKEN = "tls-token"
VMID = 7
SERIAL = "hello over mutual TLS\n"


@dataclass(frozen=True)
class Other:
    """Another CA, and a certificate it signed for n1."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class TLSHost:
    config: HostConfig
    other: Other
    root: Path  # the processes' logs

    @property
    def files(self) -> TLSFiles:
        return TLSFiles.in_dir(pki_dir(self.config), "host")

    @property
    def agent_url(self) -> str:
        return f"https://127.0.0.1:{self.config.agent_port}"

    @property
    def api_url(self) -> str:
        return self.config.api_url

    def ours(self) -> ssl.SSLContext:
        """A client of the cluster: it pins the cluster CA and shows the host certificate."""
        return trust(self.files.ca, self.files.cert, self.files.key)


async def _seed(config: HostConfig, files: TLSFiles) -> None:
    async with Store(config.etcd_endpoints, tls=files) as store:
        await store.add_token(TOKEN)


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@pytest.fixture(scope="module")
def host() -> Iterator[TLSHost]:
    """Host n1 with etcd, its agent (no watchdog, no boot probe) and the API."""
    root = Path(tempfile.mkdtemp(prefix="corral-tls-"))
    config = hosts(root, 1, accel="tcg", watchdog_timeout=0)[0]
    other_ca = make_ca(root / "other/ca.crt", root / "other/ca.key", "other-ca")
    make_host_cert(other_ca, "n1", root / "other/n1.crt", root / "other/n1.key")
    h = TLSHost(config, Other(root / "other/ca.crt", root / "other/n1.crt",
                              root / "other/n1.key"), root)
    procs = [start(etcd_command(config).argv, root / "etcd.log")]
    try:
        wait_until(lambda: (r := get(f"{config.client_url}/health", h.ours())) is not None
                   and r.json().get("health") == "true")
        asyncio.run(_seed(config, h.files))
        procs.append(start(agent_command(config).argv, root / "agent.log"))
        procs.append(start(api_command(config).argv, root / "api.log"))
        try:
            wait_until(lambda: get(f"{config.api_url}/api/v1/health", h.ours()) is not None)
        except AssertionError:
            raise AssertionError(f"the API did not come up:\n{_tail(root / 'api.log')}") from None
        yield h
    finally:
        stop(procs)
        shutil.rmtree(root, ignore_errors=True)


async def registered(h: TLSHost) -> str:
    """The agent URL the host published, once its agent has registered it."""
    async with Store(h.config.etcd_endpoints, tls=h.files) as store:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            node = await store.node("n1")
            if node is not None and node.alive and node.info is not None:
                return node.info.agent_url
            await asyncio.sleep(0.2)
    log = _tail(h.root / "agent.log")
    raise AssertionError(f"the agent did not register n1:\n{log}")


def write_serial(h: TLSHost) -> None:
    """What the VM's serial console said: the agent reads its log from its run dir."""
    h.config.qemu_run_dir.mkdir(parents=True, exist_ok=True)
    (h.config.qemu_run_dir / f"{VMID}.serial.log").write_text(SERIAL)


async def test_the_agent_registers_its_host_over_tls_etcd_with_an_https_url(
        host: TLSHost) -> None:
    assert await registered(host) == host.agent_url


async def test_the_agent_endpoint_takes_only_clients_with_a_cluster_certificate(
        host: TLSHost) -> None:
    await registered(host)
    write_serial(host)
    url = f"{host.agent_url}/vms/{VMID}/console"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    ok = get(url, host.ours(), bearer)
    assert ok is not None and ok.status_code == 200, ok
    assert ok.json() == {"data": SERIAL, "offset": len(SERIAL)}
    # The certificate lets a client talk; the token still decides.
    no_token = get(url, host.ours())
    assert no_token is not None and no_token.status_code == 401
    # Refused before HTTP: plain HTTP, TLS without a certificate, a certificate of another CA.
    assert get(url.replace("https://", "http://"), headers=bearer) is None
    assert get(url, trust(host.files.ca), bearer) is None
    o = host.other
    assert get(url, trust(host.files.ca, o.cert, o.key), bearer) is None


async def test_the_api_serves_https_and_refuses_plain_http_and_another_cas_certificate(
        host: TLSHost) -> None:
    url = f"{host.api_url}/api/v1/health"
    # No client certificate is needed: a browser or the CLI shows a token instead.
    for client in (trust(host.files.ca), host.ours()):
        reply = get(url, client)
        assert reply is not None and reply.status_code == 200
    assert get(url.replace("https://", "http://")) is None
    o = host.other
    assert get(url, trust(host.files.ca, o.cert, o.key)) is None
    assert get(url, trust(o.ca)) is None  # and it is no API to a client pinning another CA


async def test_the_api_relays_the_console_from_the_agent_over_mutual_tls(
        host: TLSHost) -> None:
    """The agent takes only clients with a cluster certificate: the API shows its host's."""
    await registered(host)
    write_serial(host)
    async with Store(host.config.etcd_endpoints, tls=host.files) as store:
        await store.put(keys.vm(VMID, "placement"), Placement(node="n1"))
    reply = get(f"{host.api_url}/api/v1/vms/{VMID}/console", trust(host.files.ca),
                {"Authorization": f"Bearer {TOKEN}"})
    assert reply is not None and reply.status_code == 200, reply and reply.text
    assert reply.json()["data"] == SERIAL


def test_the_cli_pins_the_cluster_ca(host: TLSHost, tmp_path: Path) -> None:
    config = write_client_config(host.api_url, TOKEN, tmp_path / "client.json",
                                 ca=host.files.ca)
    runner = CliRunner()
    env: dict[str, str | None] = {"CORRAL_CONFIG": str(config), "CORRAL_URL": None,
                                  "CORRAL_TOKEN": None, "CORRAL_CA": None}
    listed = runner.invoke(cli, ["node", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert [n["name"] for n in json.loads(listed.stdout)] == ["n1"]

    elsewhere = runner.invoke(cli, ["node", "list"], env=env | {"CORRAL_CA": str(host.other.ca)})
    assert elsewhere.exit_code == 1
    assert elsewhere.stderr.startswith(f"error: the Corral API at {host.api_url} is not trusted")
    assert f"pinned CA {host.other.ca}" in elsewhere.stderr


@pytest.fixture(scope="module")
def whoami(host: TLSHost) -> Iterator[str]:
    """A server as the API serves: routes see the CN of a client certificate, if any."""
    app = FastAPI()

    @app.get("/whoami")
    async def who(cn: PeerDep) -> dict[str, str | None]:
        return {"cn": cn}

    with serving(app, http=PeerCertProtocol, **host.files.uvicorn_kwargs("optional")) as port:
        yield f"https://127.0.0.1:{port}/whoami"


def test_routes_see_the_verified_cn_of_the_client_certificate(host: TLSHost,
                                                              whoami: str) -> None:
    ca = host.files.ca
    with_cert = get(whoami, host.ours())
    assert with_cert is not None and with_cert.json() == {"cn": "n1"}
    # The next connection, without a certificate: the CN was its predecessor's alone.
    without = get(whoami, trust(ca))
    assert without is not None and without.json() == {"cn": None}
    assert get(whoami, trust(ca, host.other.cert, host.other.key)) is None
