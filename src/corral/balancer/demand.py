"""The robust view of load and the migration cost model. Pure.

One sample says little (a burst that is already over) and an hourly mean hides the peaks a
host must serve, so a VM's CPU is the configured percentile of its samples over the window,
raised to where its trend points half-way through the horizon when its load is rising.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import mul

from corral.balancer.model import BalanceConfig, VmLoad

RECENT = 3


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks; values need not be sorted."""
    s = sorted(values)
    if not s:
        return 0.0
    k = (len(s) - 1) * pct / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def trend_at(values: Sequence[float], ahead: float) -> float:
    """The least-squares line through values (one per step), read `ahead` steps after the
    last one."""
    n = len(values)
    if n < 4:
        return float(values[-1]) if values else 0.0
    total = float(sum(values))
    mx = (n - 1) / 2.0
    sxx = n * (n * n - 1) / 12.0
    sxy: float = sum(map(mul, range(n), values)) - mx * total
    return total / n + sxy / sxx * (n - 1 - mx + ahead)


def window(series: Sequence[float], step_s: float, config: BalanceConfig) -> Sequence[float]:
    n = max(1, round(config.window_s / max(step_s, 1e-9)))
    return series[-n:]


def robust(series: Sequence[float], step_s: float, config: BalanceConfig,
           ceiling: float | None = None) -> float | None:
    """One series' load to plan for on its own (a host's other work, a VM being placed):
    the configured percentile of the window, raised to the trend; None without samples."""
    w = window(series, step_s, config)
    if not w:
        return None
    level = max(percentile(w, config.percentile), _lift(w, step_s, config), 0.0)
    return min(level, ceiling) if ceiling is not None else level


def _lift(w: Sequence[float], step_s: float, config: BalanceConfig) -> float:
    """Where the load is heading: the least-squares trend half-way through the horizon, or
    the last few samples' mean when a burst has just begun."""
    ahead = config.horizon_s / 2.0 / max(step_s, 1e-9)
    recent = w[-RECENT:]
    return max(trend_at(w, ahead), sum(recent) / len(recent))


def level_and_variance(series: Sequence[float], step_s: float, config: BalanceConfig,
                       ceiling: float) -> tuple[float, float] | None:
    """A VM's CPU as the score adds it up: its mean over the window, raised to its trend
    (rising load counts where it is heading), and the variance of its samples; None without
    samples. A host's load is then the sum of levels + z * sqrt(sum of variances)."""
    w = window(series, step_s, config)
    if not w:
        return None
    n = len(w)
    mean = sum(w) / n
    var = max(sum(map(mul, w, w)) / n - mean * mean, 0.0)
    level = min(max(mean, _lift(w, step_s, config), 0.0), ceiling)
    return level, var


def move_cost_s(vm: VmLoad, config: BalanceConfig) -> float:
    """Seconds a live migration of vm is expected to take: its memory copied while it dirties
    pages (a geometric series: memory / (bandwidth - dirty rate)), plus its local disks.
    Infinite when it dirties memory as fast as the link copies it: it would never converge."""
    bw = config.bandwidth_mb_s
    dirty = vm.dirty_mb_s or 0.0
    if dirty >= bw * 0.9:
        return math.inf
    memory = max(vm.memory_used_mb, 0.0)
    return memory / (bw - dirty) + vm.local_disk_mb / bw
