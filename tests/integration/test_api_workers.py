"""`corral api serve --workers 2`: two processes share the port, each with its own app (its
own etcd connection and count of requests in flight), and the API answers, over HTTPS with
the host's pki dir too (every worker gets the TLS options)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from api_process import seed, serve
from api_process import stop as stop_api
from tls_hosts import get, hosts, start, stop, trust, wait_until

from corral.host.commands import api_command, etcd_command

pytestmark = pytest.mark.integration

TOKEN = "workers-token"


@pytest.fixture
def served(etcd_endpoint: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    asyncio.run(seed(etcd_endpoint, TOKEN))
    url, proc = serve(etcd_endpoint, None, "--workers", "2", "--max-in-flight", "8")
    try:
        yield url, proc
    finally:
        stop_api(proc)


def test_two_workers_start_and_answer(served: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, proc = served
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, "api serve --workers 2 exited"
        assert time.monotonic() < deadline, "the workers did not answer within 30 s"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    children = psutil.Process(proc.pid).children()
    # Besides multiprocessing's resource tracker: the spawned workers.
    workers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
    assert len(workers) == 2, [c.cmdline() for c in children]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, headers=auth, timeout=10) as client:
        for _ in range(10):  # a few requests, spread over the workers by the kernel
            r = client.get("/vms", params={"limit": 5})
            assert r.status_code == 200, r.text
            assert [v["name"] for v in r.json()] == ["vm101"]


def test_workers_serve_https_with_the_host_certificate() -> None:
    root = Path(tempfile.mkdtemp(prefix="corral-workers-tls-"))
    config = hosts(root, 1)[0]
    assert config.tls is not None
    procs = [start(etcd_command(config).argv, root / "etcd.log"),
             start((*api_command(config).argv, "--workers", "2"), root / "api.log")]
    try:
        url = f"{config.api_url}/api/v1/health"
        assert url.startswith("https://")
        ours = trust(config.tls.ca_cert, config.tls.cert, config.tls.key)
        for verify in (trust(config.tls.ca_cert), ours):  # a client certificate is optional
            wait_until(lambda v=verify: (r := get(url, v)) is not None and r.status_code == 200)
        assert len([c for c in psutil.Process(procs[1].pid).children()
                    if "spawn_main" in " ".join(c.cmdline())]) == 2
    finally:
        stop(procs)
        shutil.rmtree(root, ignore_errors=True)
