"""How late the API's event loop runs what is ready: the wait a request gets before its first
step, which the request's own timing (from admission to the last byte) cannot see.

When the process is full, a request that arrives waits for the loop to finish what is ahead
of it, and on a busy machine for the process to get a core at all. Clients see that wait;
the adaptive bound (api/adaptive_limit.py) has to see it too, or it admits more while the
queue before admission grows. A timer that should fire every PROBE_SECONDS measures it: how
late it fires is that wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from corral.aio import cancel_and_wait

# Often enough that a window of 32 requests at a few hundred a second sees several probes.
PROBE_SECONDS = 0.01
# While no window of requests asked for the lag this long, the probe wakes only this often:
# 100 wake-ups a second cost an idle API process 1.5 % of a core.
IDLE_AFTER_SECONDS = 2.0
IDLE_PROBE_SECONDS = 1.0


class LoopLag:
    """The mean lateness of the probe's timer since the last `take`."""

    def __init__(self, every: float = PROBE_SECONDS) -> None:
        self.every = every
        self._late = 0.0
        self._probes = 0
        self._taken_at = float("-inf")

    def take(self) -> float:
        """Seconds late on average since the last call (0 without a probe since)."""
        mean = self._late / self._probes if self._probes else 0.0
        self._late, self._probes = 0.0, 0
        self._taken_at = time.monotonic()
        return mean

    def interval(self) -> float:
        """How long the probe sleeps next: briefly while requests are being served."""
        idle = time.monotonic() - self._taken_at > IDLE_AFTER_SECONDS
        return IDLE_PROBE_SECONDS if idle else self.every

    def note(self, late: float) -> None:
        self._late += max(0.0, late)
        self._probes += 1

    async def probe(self) -> None:
        while True:
            every = self.interval()
            # The clock, not the loop's time: uvloop's is cached to the millisecond.
            due = time.monotonic() + every
            await asyncio.sleep(every)
            self.note(time.monotonic() - due)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LoopLag]:
        task = asyncio.create_task(self.probe(), name="loop-lag probe")
        try:
            yield self
        finally:
            await cancel_and_wait([task])
