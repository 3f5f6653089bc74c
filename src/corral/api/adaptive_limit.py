"""How many requests an API process serves at once, following the latency it keeps.

A fixed bound is either too high or too low. When the machine or etcd is slow, sixteen
requests in flight each wait for a core and for etcd behind the fifteen others: admitted
requests take several times their usual latency, and every refusal waits its turn too. When
they are fast, a low bound refuses what could have been served.

So the bound moves, as in a gradient concurrency limit: each window of finished requests is
compared with the latency the process keeps when it is not busy (its baseline). A window slower
than the baseline, beyond a tolerance, shrinks the bound in proportion; one within it lets
the bound grow by a little headroom. The bound never leaves [MIN_LIMIT, ceiling], the ceiling
being `--max-in-flight`. A pure function over plain numbers: the middleware
(api/shedding.py) feeds it and applies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_LIMIT = 2.0
# A window this much slower than the baseline is still fine: the mix of routes alone moves a
# window's median by tens of percent.
TOLERANCE = 1.5
# A window in which fewer than half the places were used is calm: its latency is the usual one
# (for the cluster's size and the mix of requests of the moment), and the baseline follows it
# with this weight, up or down.
BASELINE_CALM = 1 / 10
# In a busier window, the baseline rises towards a slower one with this weight, and a window
# counts at most TOLERANCE times the baseline: under a lasting overload it creeps up by at
# most 0.05 % a window (two or three minutes to double at a few hundred requests per second),
# so the bound keeps holding the latency down instead of taking the overloaded latency for
# the usual one.
BASELINE_RISE = 1 / 1000
# It falls towards a faster window far more quickly: once the load has gone, the next
# overload is measured against the latency of a calm process.
BASELINE_FALL = 1 / 10
# A new bound moves only part of the way to its target, so one odd window changes little.
SMOOTHING = 0.2
# The most a window can shrink the bound's target by.
STEEPEST = 0.5


@dataclass(frozen=True)
class Window:
    """Finished requests: the median of their latency (from admission to the last byte) plus
    how late the event loop ran meanwhile (the wait before admission), and the most that were
    in flight at once while they ran."""

    median_seconds: float
    peak_in_flight: int


@dataclass(frozen=True)
class Limit:
    value: float
    baseline: float | None = None  # seconds; None until a first window

    @property
    def places(self) -> int:
        return max(1, math.floor(self.value))


def next_limit(limit: Limit, window: Window, ceiling: int) -> Limit:
    """The bound after a window of finished requests."""
    rtt = max(window.median_seconds, 1e-6)
    if limit.baseline is None:
        return Limit(limit.value, rtt)
    if window.peak_in_flight < limit.value / 2:
        # The bound held nothing back: the latency is the usual one, and says nothing of the
        # bound.
        return Limit(limit.value, limit.baseline + (rtt - limit.baseline) * BASELINE_CALM)
    counted = min(rtt, TOLERANCE * limit.baseline)
    weight = BASELINE_FALL if counted < limit.baseline else BASELINE_RISE
    baseline = limit.baseline + (counted - limit.baseline) * weight
    gradient = min(1.0, max(STEEPEST, TOLERANCE * baseline / rtt))
    # Within the tolerance the bound grows by sqrt(bound). Beyond it, it shrinks in
    # proportion and keeps one place of headroom: with sqrt(bound) there, it settled where
    # admitted requests took twice to three times the baseline (docs/performance.md).
    headroom = math.sqrt(limit.value) if gradient >= 1.0 else 1.0
    target = limit.value * gradient + headroom
    value = limit.value * (1 - SMOOTHING) + target * SMOOTHING
    return Limit(min(float(ceiling), max(MIN_LIMIT, value)), baseline)
