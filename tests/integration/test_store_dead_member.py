"""A store against a three-member etcd: an idle connection is kept as it is, and a member that
stops answering without closing its connections (SIGSTOP: a hung etcd, or a host cut off
with no RST) leaves the round robin after a read or two, even after the store sat idle."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from corral.cluster.store import Store
from corral.lab.etcd import EtcdMember, free_port, wait_healthy

pytestmark = pytest.mark.integration

# Longer than etcd takes to send GOAWAY too_many_pings to a connection without a stream that
# gets a keepalive ping every 5 s (the third ping, 15 s).
IDLE = 20.0
READS = 30
# A read that went to the stopped member waits for the store's deadline (5 s): one taking
# this long went there.
STUCK = 3.0


@pytest.fixture
def cluster() -> Iterator[tuple[list[EtcdMember], list[subprocess.Popen[bytes]]]]:
    workdir = Path(tempfile.mkdtemp(prefix="corral-dead-member-"))
    members = [EtcdMember(f"m{i}", workdir / f"m{i}", free_port(), free_port())
               for i in range(3)]
    procs = [subprocess.Popen(m.command(members), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for m in members]
    try:
        wait_healthy([m.client_url for m in members])
        yield members, procs
    finally:
        for p in procs:
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
            p.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def connections_to(ports: set[int]) -> set[tuple[int, int]]:
    """(local port, etcd port) of this process's TCP connections to the members."""
    return {(c.laddr.port, c.raddr.port) for c in psutil.Process().net_connections("tcp")
            if c.raddr and c.raddr.port in ports and c.status == psutil.CONN_ESTABLISHED}


async def test_an_idle_store_keeps_its_connections_and_drops_a_stopped_member(
        cluster: tuple[list[EtcdMember], list[subprocess.Popen[bytes]]]) -> None:
    members, procs = cluster
    ports = {m.client_port for m in members}
    async with Store([m.client_url for m in members], follow_members=False) as store:
        for _ in range(3):
            await store.current_revision()
        before = connections_to(ports)
        assert {port for _, port in before} == ports, "the store connects to every member"
        await asyncio.sleep(IDLE)
        assert connections_to(ports) == before, "an idle connection was closed and redialled"
        os.kill(procs[2].pid, signal.SIGSTOP)
        stuck = 0
        for _ in range(READS):
            began = time.monotonic()
            try:
                await store.current_revision()
            except Exception:
                stuck += 1
                continue
            stuck += time.monotonic() - began >= STUCK
            await asyncio.sleep(0.05)
    # The ping that finds the member gone takes a second once due; the reads routed to it
    # meanwhile wait. Before, it stayed in the rotation for a minute: 13 of 30 reads.
    assert stuck <= 2, f"{stuck} of {READS} reads waited on the stopped member"
