"""Usage archives over plain samples: slot boundaries, average and maximum, gaps, the ring
wrapping around, windows, and the bytes they are stored as."""

from __future__ import annotations

import pytest

from corral.usage import rrd

M = ("a", "b")
HOUR0 = 1_700_000_000 - 1_700_000_000 % 86400  # a UTC midnight: every range's slot starts


def window(r: rrd.Rrd, name: str, now: float, metric: str = "a",
           decimals: dict[str, int] | None = None) -> tuple[list[float | None],
                                                            list[float | None]]:
    return r.window(name, now, decimals or {"a": 3, "b": 3}).metrics[metric]


def test_the_ranges_are_an_hour_a_day_a_week_a_month_and_a_year() -> None:
    spans = {name: s.step * s.rows for name, s in rrd.RANGES.items()}
    assert spans == {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400,
                     "year": 365 * 86400}
    assert [s.step for s in rrd.RANGES.values()] == [10, 60, 1800, 7200, 86400]


def test_a_window_ends_at_the_current_slot_and_says_where_it_starts() -> None:
    r = rrd.Rrd(M)
    now = HOUR0 + 3600 + 25  # in the slot that begins at +3620
    w = r.window("hour", now, {})
    assert (w.range, w.step) == ("hour", 10)
    assert w.start == HOUR0 + 3620 - 359 * 10
    avg, top = w.metrics["a"]
    assert len(avg) == len(top) == 360 and set(avg) == set(top) == {None}
    assert set(w.metrics) == set(M)


def test_samples_in_one_slot_give_its_average_and_maximum() -> None:
    r = rrd.Rrd(M)
    for t, v in ((0, 1.0), (15, 4.0), (30, 7.0), (59.9, 4.0)):
        r.add(HOUR0 + t, {"a": v, "b": None})
    avg, top = window(r, "day", HOUR0 + 30)
    assert (avg[-1], top[-1]) == (4.0, 7.0)
    assert window(r, "day", HOUR0 + 30, "b") == ([None] * 1440, [None] * 1440)
    # In the hour, each of those samples has a 10 s slot of its own, the last one's ending
    # the window (t=59.9 is in the slot of +50).
    avg, top = window(r, "hour", HOUR0 + 59.9)
    assert avg[-6:] == [1.0, 4.0, None, 7.0, None, 4.0] and top[-6:] == avg[-6:]


def test_a_slot_boundary_starts_a_new_slot() -> None:
    r = rrd.Rrd(M)
    r.add(HOUR0 + 9.999, {"a": 1.0})
    r.add(HOUR0 + 10.0, {"a": 3.0})
    avg, _ = window(r, "hour", HOUR0 + 10)
    assert avg[-2:] == [1.0, 3.0]
    avg, top = window(r, "day", HOUR0 + 10)
    assert (avg[-1], top[-1]) == (2.0, 3.0)


def test_slots_no_sample_reached_are_gaps_and_the_window_moves_on_without_samples() -> None:
    r = rrd.Rrd(M)
    r.add(HOUR0 + 5, {"a": 1.0})
    r.add(HOUR0 + 35, {"a": 2.0})
    avg, _ = window(r, "hour", HOUR0 + 35)
    assert avg[-4:] == [1.0, None, None, 2.0]
    later, _ = window(r, "hour", HOUR0 + 65)  # no samples since: the window still moves
    assert later[-7:] == [1.0, None, None, 2.0, None, None, None]
    assert window(r, "hour", HOUR0 + 35 + 3600)[0] == [None] * 360  # all of it aged out


def test_a_metric_missing_from_a_sample_does_not_weigh_on_its_average() -> None:
    r = rrd.Rrd(M)
    r.add(HOUR0, {"a": 2.0, "b": 10.0})
    r.add(HOUR0 + 20, {"a": None, "b": 20.0})
    r.add(HOUR0 + 40, {"a": 4.0, "b": float("nan"), "unknown": 5.0})
    assert window(r, "day", HOUR0 + 40, "a")[0][-1] == 3.0
    assert window(r, "day", HOUR0 + 40, "b")[0][-1] == 15.0


def test_the_ring_wraps_around_and_keeps_the_newest_slots() -> None:
    r = rrd.Rrd(M)
    for i in range(400):
        r.add(HOUR0 + i * 10 + 5, {"a": float(i)})
    avg, top = window(r, "hour", HOUR0 + 399 * 10 + 5)
    assert avg == [float(i) for i in range(40, 400)] and top == avg
    # The day consolidates six 10 s samples per minute.
    day, day_max = window(r, "day", HOUR0 + 399 * 10 + 5)
    assert day[-67:-1] == [6 * k + 2.5 for k in range(66)]
    assert day[-1] == 397.5 and day_max[-1] == 399.0 and day_max[-2] == 395.0


def test_a_gap_longer_than_the_ring_clears_it() -> None:
    r = rrd.Rrd(M)
    r.add(HOUR0, {"a": 1.0})
    r.add(HOUR0 + 7200, {"a": 2.0})
    avg, _ = window(r, "hour", HOUR0 + 7200)
    assert avg == [None] * 359 + [2.0]
    # The new slot fell where the first one was in the ring: it holds the new figure only.
    assert window(r, "day", HOUR0 + 7200)[0][-121:] == [1.0] + [None] * 119 + [2.0]
    assert window(r, "hour", HOUR0 + 7200 + 3600)[0] == [None] * 360


def test_a_sample_older_than_the_newest_slot_is_left_out() -> None:
    r = rrd.Rrd(M)
    r.add(HOUR0 + 50, {"a": 1.0})
    r.add(HOUR0 + 20, {"a": 9.0})  # the clock stepped back 30 s
    avg, _ = window(r, "hour", HOUR0 + 50)
    assert avg[-4:] == [None, None, None, 1.0]
    # The day's slot is the same minute: the sample counts there.
    assert window(r, "day", HOUR0 + 50)[0][-1] == 5.0


def test_the_year_slot_is_a_utc_day_and_the_month_two_hours() -> None:
    r = rrd.Rrd(M)
    r.add(HOUR0 + 86399, {"a": 1.0})
    r.add(HOUR0 + 86400, {"a": 3.0})
    year = r.window("year", HOUR0 + 86400, {})
    assert year.metrics["a"][0][-2:] == [1.0, 3.0]
    assert year.start == HOUR0 + 86400 - 364 * 86400
    month = r.window("month", HOUR0 + 86400, {})
    assert month.metrics["a"][0][-2:] == [1.0, 3.0]
    assert month.start % 7200 == 0


def test_figures_are_rounded_as_asked() -> None:
    r = rrd.Rrd(M)
    r.add(HOUR0, {"a": 0.123456, "b": 1234.56})
    w = r.window("hour", HOUR0, {"a": 4})
    assert w.metrics["a"][0][-1] == 0.1235 and w.metrics["b"][0][-1] == 1235.0


def test_the_answer_has_the_documented_shape() -> None:
    r = rrd.Rrd(M)
    r.add(HOUR0, {"a": 1.0, "b": 2.0})
    body = rrd.answer(r.window("week", HOUR0, {}), "n1", 101)
    assert body["range"] == "week" and body["step_seconds"] == 1800
    assert body["start"] == HOUR0 - 335 * 1800
    assert (body["node"], body["vmid"]) == ("n1", 101)
    assert body["metrics"]["b"]["avg"][-1] == 2.0 and body["metrics"]["b"]["max"][-1] == 2.0
    assert list(body["metrics"]) == list(M)


def test_stored_archives_come_back_as_they_were_and_go_on_consolidating() -> None:
    r = rrd.Rrd(M)
    for i in range(100):
        r.add(HOUR0 + i * 10, {"a": float(i % 7), "b": float(i)})
    data = rrd.encode(r)
    back = rrd.decode(data, M)
    for name in rrd.RANGES:
        assert back.window(name, HOUR0 + 995, {}) == r.window(name, HOUR0 + 995, {})
    # The open slot's sample count came back too: the next sample weighs as it should.
    r.add(HOUR0 + 1000, {"a": 100.0})
    back.add(HOUR0 + 1000, {"a": 100.0})
    assert back.window("day", HOUR0 + 1000, {}) == r.window("day", HOUR0 + 1000, {})
    assert len(data) < 4 * 2861 * 8  # the gaps compress


def test_a_metric_added_later_starts_empty_and_one_dropped_is_left_behind() -> None:
    r = rrd.Rrd(("a", "b"))
    r.add(HOUR0, {"a": 1.0, "b": 2.0})
    back = rrd.decode(rrd.encode(r), ("b", "c"))
    assert back.metrics == ("b", "c")
    w = back.window("hour", HOUR0, {})
    assert w.metrics["b"][0][-1] == 2.0 and w.metrics["c"][0] == [None] * 360


@pytest.mark.parametrize("damage", [
    lambda d: b"not an archive",
    lambda d: d[:-10],  # cut short
    lambda d: d[:len(rrd.MAGIC) + 6] + b"x" + d[len(rrd.MAGIC) + 7:],  # header garbled
    lambda d: d[:40],
])
def test_a_damaged_file_is_refused(damage: object) -> None:
    r = rrd.Rrd(M)
    r.add(HOUR0, {"a": 1.0})
    with pytest.raises(ValueError):
        rrd.decode(damage(rrd.encode(r)), M)  # type: ignore[operator]
