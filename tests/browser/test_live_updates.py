"""The events stream's way back: an API that goes away and comes back. The console shows that
it reconnects, asks again with growing pauses rather than in a storm, and once the stream is
back reads the lists again, so a change made while it was down shows without a reload."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Request, expect

from corral.cluster.models import VMRuntime, VMStatus
from corral.cluster.store import Store
from corral.lab.etcd import free_port
from tests.browser.conftest import (
    UI_TIMEOUT_MS,
    VIEWPORT,
    Console,
    in_etcd,
    log_in,
    wait_for_api,
)

pytestmark = pytest.mark.browser

OUTAGE_SECONDS = 5.0
# Reconnects wait 1, 2, 4 s (each ±20 %): about three attempts in the outage. A poll or an
# EventSource's own retry every second or so would make many more.
MAX_ATTEMPTS_IN_OUTAGE = 5
BACK_TIMEOUT_MS = 30_000  # the next attempt after the outage is at most 8 s x 1.2 away


class Api:
    """An API process on a port of its own, to stop and start again."""

    def __init__(self, etcd: str, log: Path) -> None:
        self.etcd = etcd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        code = ("from corral.api.serve import serve; "
                f"serve([{self.etcd!r}], host='127.0.0.1', port={self.port})")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=out,
                                         stderr=subprocess.STDOUT)
        wait_for_api(self.url, self.proc)

    def kill(self) -> None:
        """Gone at once, as a crashed or powered-off API host is (a clean stop would give
        open streams 5 s first)."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None


@pytest.fixture
def api(console: Console, tmp_path: Path) -> Iterator[Api]:
    a = Api(console.etcd, tmp_path / "api.log")
    a.start()
    try:
        yield a
    finally:
        a.kill()


@pytest.fixture
def tab(browser: Browser) -> Iterator[Page]:
    """A tab whose refused connections (the API is down on purpose) are not failures."""
    context = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    context.set_default_timeout(UI_TIMEOUT_MS)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield pg
    finally:
        context.close()
    assert not errors, errors


def set_status(status: VMStatus) -> Callable[[Store], Awaitable[None]]:
    async def change(store: Store) -> None:
        assert await store.put_runtime(103, VMRuntime(node="n2", status=status))
    return change


def test_the_stream_comes_back_after_the_api_restarts_and_the_lists_are_read_again(
        tab: Page, console: Console, api: Api) -> None:
    log_in(tab, Console(api.url, console.etcd))
    link = tab.get_by_test_id("link")
    expect(link).to_have_attribute("data-state", "live")
    stopped = tab.get_by_test_id("vms-stopped")
    expect(stopped).to_have_text("1")  # 103 batch

    tickets: list[float] = []
    list_reads: list[str] = []

    def seen(r: Request) -> None:
        path = r.url.split("/api/v1", 1)[-1]
        if path.startswith("/events/ticket"):
            tickets.append(time.monotonic())
        elif path.split("?")[0] in ("/vms", "/nodes"):
            list_reads.append(path)

    tab.on("request", seen)
    api.kill()
    expect(link).to_have_attribute("data-state", "reconnecting")
    # While the API is down, 103 starts: no event can tell the tab.
    in_etcd(console.etcd, set_status(VMStatus.RUNNING))
    try:
        tab.wait_for_timeout(OUTAGE_SECONDS * 1000)  # Playwright's: it takes the page's events
        attempts = len(tickets)
        assert 1 <= attempts <= MAX_ATTEMPTS_IN_OUTAGE, tickets
        api.start()
        expect(link).to_have_attribute("data-state", "live", timeout=BACK_TIMEOUT_MS)
        expect(stopped).to_have_text("0")  # the lists were read again on the new stream
        # While down, the lists were read at most once (the 15 s fallback), not polled.
        assert len([p for p in list_reads if p.startswith("/vms")]) <= 2, list_reads
    finally:
        in_etcd(console.etcd, set_status(VMStatus.STOPPED))
    expect(stopped).to_have_text("1")  # and the stream carries changes again
