"""The adaptive bound on requests in flight: it shrinks when a full window is slower than the
baseline, grows back when windows are fast again, ignores windows it did not limit, stays
within [MIN_LIMIT, ceiling], and does not take a lasting overload for the usual latency."""

from __future__ import annotations

import pytest

from corral.api.adaptive_limit import MIN_LIMIT, Limit, Window, next_limit

CEILING = 16
MS = 0.001


def run(limit: Limit, windows: list[Window], ceiling: int = CEILING) -> Limit:
    for window in windows:
        limit = next_limit(limit, window, ceiling)
    return limit


def full(ms: float, limit: Limit) -> Window:
    """A window in which as many requests as the bound allows were in flight."""
    return Window(ms * MS, limit.places)


def test_the_first_window_sets_the_baseline_and_leaves_the_bound() -> None:
    limit = next_limit(Limit(16.0), Window(4 * MS, 16), CEILING)
    assert limit == Limit(16.0, 4 * MS)


def test_a_slow_full_window_shrinks_the_bound_and_fast_ones_grow_it_back() -> None:
    limit = Limit(16.0, 4 * MS)
    for _ in range(40):
        limit = next_limit(limit, full(40, limit), CEILING)
    assert limit.places <= 5, limit
    shrunk = limit
    for _ in range(200):
        limit = next_limit(limit, full(4, limit), CEILING)
    assert limit.value > shrunk.value and limit.places == CEILING, limit


def test_a_window_within_the_tolerance_does_not_shrink_the_bound() -> None:
    limit = Limit(10.0, 4 * MS)
    after = next_limit(limit, full(5.5, limit), CEILING)  # 1.375 times the baseline
    assert after.value >= limit.value


def test_a_window_that_did_not_fill_half_the_bound_leaves_it_and_teaches_the_baseline() -> None:
    limit = Limit(16.0, 4 * MS)
    after = next_limit(limit, Window(400 * MS, 7), CEILING)
    assert after.value == 16.0 and after.baseline is not None and after.baseline > 4 * MS


def test_calm_windows_of_a_grown_cluster_raise_the_baseline_so_the_bound_holds() -> None:
    """Learned while the cluster was empty (2 ms); with thousands of VMs the same requests take
    6 ms when calm. A few calm windows make that the usual latency, and a full window at
    that latency then leaves the bound where it is."""
    limit = Limit(16.0, 2 * MS)
    for _ in range(30):
        limit = next_limit(limit, Window(6 * MS, 3), CEILING)
    assert limit.baseline == pytest.approx(6 * MS, rel=0.1)
    assert next_limit(limit, full(7, limit), CEILING).value >= limit.value


def test_the_bound_stays_between_the_floor_and_the_ceiling() -> None:
    limit = run(Limit(16.0, 1 * MS), [Window(5.0, 16)] * 500)
    assert limit.value >= MIN_LIMIT and limit.places >= int(MIN_LIMIT)
    limit = Limit(3.0, 1 * MS)
    for _ in range(500):
        limit = next_limit(limit, full(1, limit), CEILING)
    assert limit.value == CEILING
    assert run(Limit(1.0), [Window(100 * MS, 1)] * 50, ceiling=1).places == 1


def test_a_lasting_overload_is_not_taken_for_the_usual_latency() -> None:
    """A minute of windows four times slower than the calm ones (at ten windows a second):
    the baseline may creep, but the bound still holds the latency down."""
    limit = Limit(16.0, 4 * MS)
    for _ in range(600):
        limit = next_limit(limit, full(16, limit), CEILING)
    assert limit.baseline is not None and limit.baseline < 8 * MS, limit
    assert limit.places <= 5, limit


def test_when_the_load_falls_the_baseline_falls_with_it() -> None:
    limit = Limit(16.0, 40 * MS)  # learned while every request was slow
    for _ in range(60):
        limit = next_limit(limit, full(4, limit), CEILING)
    assert limit.baseline == pytest.approx(4 * MS, rel=0.05)


def test_a_cpu_bound_overload_settles_near_the_tolerance() -> None:
    """A process whose requests share one core: beyond three at once, each takes longer in
    proportion to how many run. Beyond the tolerance the bound keeps one place of headroom,
    so it settles where admitted requests take about twice the baseline; with sqrt(bound) of
    headroom there it settled at two and a half times."""
    baseline = 2 * MS
    limit = Limit(16.0, baseline)
    medians = []
    for _ in range(300):
        median = baseline * max(1.0, limit.places / 3)
        medians.append(median)
        limit = next_limit(limit, Window(median, limit.places), CEILING)
    settled = sum(medians[-100:]) / 100
    assert settled < 2.2 * baseline, (settled, limit)
