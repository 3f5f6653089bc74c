"""The event loop's lateness: a loop held by synchronous work shows as lag, and the adaptive
bound counts that wait before admission as part of a window's latency."""

from __future__ import annotations

import asyncio
import time

from corral.api.loop_lag import IDLE_PROBE_SECONDS, LoopLag
from corral.api.shedding import WINDOW_REQUESTS, InFlight


async def test_a_held_loop_shows_as_lag_and_take_starts_over() -> None:
    lag = LoopLag(every=0.005)
    lag.take()  # requests are being served: the probe runs often
    async with lag.running():
        await asyncio.sleep(0.03)
        lag.take()
        time.sleep(0.06)  # noqa: ASYNC251 - holds the loop: the probe cannot run meanwhile
        await asyncio.sleep(0.02)
        assert lag.take() > 0.01
    assert lag.take() == 0.0  # stopped: no probe since


def test_the_probe_slows_down_while_nothing_asks() -> None:
    lag = LoopLag(every=0.01)
    assert lag.interval() == IDLE_PROBE_SECONDS
    lag.take()
    assert lag.interval() == 0.01


def test_no_probe_is_no_lag() -> None:
    lag = LoopLag()
    assert lag.take() == 0.0
    lag.note(-0.001)  # a timer can fire a hair early: not negative lag
    lag.note(0.004)
    assert lag.take() == 0.002


def test_the_bound_shrinks_when_fast_requests_wait_long_before_admission() -> None:
    """Requests take 1 ms once admitted, but the loop runs 20 ms late: clients wait 21 ms,
    and so must the bound see it."""
    late = [0.0]
    gate = InFlight(16, loop_lag=lambda: late[0])

    def window(at_once: int) -> None:
        """A window of finished requests, up to `at_once` in flight at a time."""
        finished = 0
        while finished < WINDOW_REQUESTS:
            admitted = 0
            while admitted < at_once and gate.admit():
                admitted += 1
            for _ in range(admitted):
                gate.release(0.001)
            finished += admitted

    for _ in range(20):  # calm: the baseline is 1 ms
        window(4)
    assert gate.places == 16
    late[0] = 0.020
    for _ in range(20):
        window(16)
    assert gate.places <= 8, gate.bound
