"""The host lease's renewal against a real etcd that stalls: what the agent's log tells an
operator who wants to know how close a host came to its watchdog firing."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.agent.liveness import Liveness
from corral.cluster.models import NodeInfo
from corral.cluster.store import Store
from corral.lab.etcd import EtcdMember, free_port, wait_healthy

pytestmark = pytest.mark.integration
INTERVAL = 0.3
STALL = 1.5  # etcd frozen this long: several renewal attempts time out


@pytest.fixture
def own_etcd() -> Iterator[tuple[str, int]]:
    """An etcd of this test's own, since the test freezes it: (client URL, pid)."""
    data = Path(tempfile.mkdtemp(prefix="corral-etcd-"))
    member = EtcdMember("r1", data / "r1", free_port(), free_port())
    proc = subprocess.Popen(member.command([member]), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_healthy([member.client_url])
        yield member.client_url, proc.pid
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)


async def test_a_stalled_etcd_shows_as_timed_out_renewals_and_a_late_renewal(
        own_etcd: tuple[str, int], caplog: pytest.LogCaptureFixture) -> None:
    url, etcd_pid = own_etcd
    feeds: list[float] = []
    caplog.set_level(logging.WARNING, logger="corral.agent.liveness")
    async with Store([url]) as store:
        live = Liveness(store, "n1", ttl=5, interval=INTERVAL,
                        feed=lambda: feeds.append(time.monotonic()))
        await live.register(NodeInfo(name="n1", cpus=1, memory_mb=512))
        renewing = asyncio.create_task(live.keep_alive())
        try:
            for _ in range(50):  # two renewals before the stall, at most 5 s
                if len(feeds) >= 3:
                    break
                await asyncio.sleep(0.1)
            assert len(feeds) >= 3, "the lease was not renewed"
            os.kill(etcd_pid, signal.SIGSTOP)
            stalled_at = time.monotonic()
            await asyncio.sleep(STALL)
            os.kill(etcd_pid, signal.SIGCONT)
            for _ in range(100):  # the first renewal after the stall, at most 10 s
                if feeds[-1] > stalled_at + STALL:
                    break
                await asyncio.sleep(0.1)
        finally:
            os.kill(etcd_pid, signal.SIGCONT)
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
    gap = max(b - a for a, b in zip(feeds, feeds[1:], strict=False))
    assert gap >= STALL, f"no renewal gap as long as the stall: {feeds}"
    messages = [r.getMessage() for r in caplog.records]
    # A timed-out attempt is named, not logged as an empty reason.
    assert "lease renewal failed: TimeoutError" in messages, messages
    late = [m for m in messages if m.startswith("lease renewed ")]
    assert late, f"the late renewal was not logged: {messages}"
    logged = float(late[-1].split()[2].removesuffix("s"))
    assert abs(logged - gap) < 0.2, (late, gap)
