"""`corral api serve`'s log: a request that may change something gets a line with its status
and time, a read that succeeded none (unless --access-log all), and a burst of refusals one
line, not one per 503; uvicorn's own access line is gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_process import seed, serve, stop

pytestmark = pytest.mark.integration

TOKEN = "access-log-token"


@pytest.fixture
def seeded(etcd_endpoint: str) -> Iterator[str]:
    asyncio.run(seed(etcd_endpoint, TOKEN, vms=10))
    yield etcd_endpoint


def _lines(log: Path, text: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if text in line]


def test_changes_get_a_line_and_successful_reads_none(seeded: str, tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    url, proc = serve(seeded, log)
    try:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, headers=auth, timeout=10) as client:
            assert client.get("/vms", params={"limit": 5}).status_code == 200
            assert client.delete("/vms/999").status_code == 404
    finally:
        stop(proc)
    deleted = _lines(log, '"DELETE /api/v1/vms/999" 404')
    assert len(deleted) == 1 and deleted[0].endswith(" ms"), log.read_text()
    assert not _lines(log, "GET /api/v1/vms"), log.read_text()
    assert not _lines(log, "HTTP/1.1"), "uvicorn's own access log is on"


def test_all_logs_reads_too(seeded: str, tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    url, proc = serve(seeded, log, "--access-log", "all")
    try:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{url}/vms/101", headers=auth, timeout=10).status_code == 200
    finally:
        stop(proc)
    assert len(_lines(log, '"GET /api/v1/vms/101" 200')) == 1, log.read_text()


def test_a_burst_of_refusals_is_one_line(seeded: str, tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    url, proc = serve(seeded, log, "--max-in-flight", "1")

    async def burst() -> list[int]:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=auth, timeout=10) as client:
            replies = await asyncio.gather(*(client.get(f"/vms/{101 + i % 10}")
                                             for i in range(60)))
        return [r.status_code for r in replies]

    try:
        statuses = asyncio.run(burst())
        time.sleep(0.5)
    finally:
        stop(proc)
    assert statuses.count(503) >= 3 and set(statuses) <= {200, 503}, statuses
    text = log.read_text()
    refused = _lines(log, "refused")
    # The first refusal at once; the rest would wait for the interval (10 s), and are written
    # when the API stops.
    assert len(refused) == 2, text
    assert "refused a request with 503" in refused[0], text
    rest = statuses.count(503) - 1
    assert f"refused {rest} requests with 503" in refused[1], text
    assert '" 503 ' not in text, "a refusal got a line of its own"
