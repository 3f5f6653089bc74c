"""The access log: served requests that change something or failed get a line, reads that
succeeded only when every request is asked for; refusals are counted into one line at most
every interval, the first at once."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from corral.api.access_log import RefusalLog, served, worth_a_line
from corral.api.wire import AccessLog


@pytest.mark.parametrize(("mode", "method", "status", "logged"), [
    (AccessLog.CHANGES, "GET", 200, False),
    (AccessLog.CHANGES, "HEAD", 404, False),
    (AccessLog.CHANGES, "GET", 503, True),  # the store was down: worth knowing
    (AccessLog.CHANGES, "POST", 202, True),
    (AccessLog.CHANGES, "DELETE", 404, True),
    (AccessLog.CHANGES, "PATCH", 200, True),
    (AccessLog.ALL, "GET", 200, True),
    (AccessLog.NONE, "POST", 500, False),
])
def test_which_requests_get_a_line(mode: AccessLog, method: str, status: int,
                                   logged: bool) -> None:
    assert worth_a_line(mode, method, status) is logged


def test_a_line_names_the_client_the_request_the_status_and_the_time(
        caplog: pytest.LogCaptureFixture) -> None:
    scope = {"type": "http", "method": "POST", "path": "/api/v1/vms/101/start",
             "query_string": b"wait=1", "client": ("198.18.0.9", 40123)}
    with caplog.at_level(logging.INFO, logger="corral.api.access"):
        served(AccessLog.CHANGES, scope, 202, 0.0123)
        served(AccessLog.CHANGES, {**scope, "method": "GET"}, 200, 0.001)
    assert [r.getMessage() for r in caplog.records] == [
        '198.18.0.9:40123 "POST /api/v1/vms/101/start?wait=1" 202 12.3 ms']


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def __call__(self) -> float:
        return self.now

    def schedule(self, delay: float, callback: Callable[[], None]) -> None:
        self.timers.append((self.now + delay, callback))

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        for at, callback in sorted((t for t in self.timers if t[0] <= end),
                                   key=lambda t: t[0]):
            self.timers.remove((at, callback))
            self.now = at  # a timer runs when it is due
            callback()
        self.now = end


def test_refusals_make_one_line_an_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    refusals = RefusalLog(every=10.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="corral.api.access"):
        refusals.refused(4, clock.schedule)  # the first after a quiet spell: at once
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and "refused a request with 503" in lines[0], lines
        assert "every place (4)" in lines[0]
        for _ in range(250):  # a burst: counted, one timer armed
            clock.advance(0.01)
            refusals.refused(3, clock.schedule)
        assert len(caplog.records) == 1 and len(clock.timers) == 1
        clock.advance(10.0)
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 2 and "refused 250 requests with 503 in 10.0 s" in lines[1], lines
        assert "every place (3)" in lines[1]
        clock.advance(60.0)  # quiet: nothing pending, nothing written
        assert len(caplog.records) == 2 and not clock.timers
        refusals.refused(5, clock.schedule)
        assert len(caplog.records) == 3 and refusals.pending == 0
