"""`corral api serve` as a process of its own, for tests that need the real server: its
command line, its log, its workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from corral.cluster.models import Placement, RunState, VMConfig
from corral.cluster.store import Store
from corral.lab.etcd import free_port


async def seed(endpoint: str, token: str, vms: int = 1) -> None:
    """An empty cluster but for the token and `vms` stopped VMs (101, 102...) on n1."""
    async with Store([endpoint]) as store:
        await store.client.delete_prefix(b"/corral/")
        await store.add_token(token)
        for vmid in range(101, 101 + vms):
            cfg = VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=64, cores=1)
            assert await store.create_vm(cfg, Placement(node="n1", state=RunState.STOPPED))


def serve(endpoint: str, log: Path | None, *options: str) -> tuple[str, subprocess.Popen[bytes]]:
    """The API on a free port (its output in `log`), once it answers its health check; its
    URL (with /api/v1) and process, the leader of its own process group."""
    port = free_port()
    out = log.open("wb") if log is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "corral.cli.main", "api", "serve", "--etcd", endpoint,
             "--port", str(port), *options],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/api/v1"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"api serve exited: {log.read_text() if log else ''}")
        if time.monotonic() > deadline:
            stop(proc)
            raise AssertionError("the API did not answer within 30 s")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return url, proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the API and its workers; SIGKILL if they are not gone within 15 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
