"""The recent-usage window: 10 s samples folded into minute points, and the record it makes
(what the agent publishes at /corral/nodes/<node>/recent)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from corral.cluster import keys
from corral.cluster.models import RECENT_POINTS, RECENT_STEP, RecentUsage
from corral.cluster.records import Problem, dump, load, node_from
from corral.usage import figures
from corral.usage.recent import MIB, HostSample, RecentWindow, VmSample, other_cores

T0 = 1_700_000_040.0  # a minute boundary: 1_700_000_040 / 60 is whole
HOST = HostSample(cpu=0.5, memory_used_bytes=1000 * MIB, busy_cores=1.0)


def burn(cores: float | None, mib: int = 100) -> VmSample:
    return VmSample(cores, mib * MIB)


def test_no_record_before_the_first_sample() -> None:
    assert RecentWindow().record() is None


def test_samples_of_one_minute_make_one_point_with_average_and_maximum() -> None:
    w = RecentWindow()
    for i, cores in enumerate([0.2, 1.0, 0.6]):
        w.add(T0 + 5 + 10 * i, HOST, {101: burn(cores, 100 + i)})
    rec = w.record()
    assert rec is not None
    assert rec.step_seconds == RECENT_STEP and rec.points == RECENT_POINTS
    assert rec.last_at == T0 + 25
    vm = rec.vms[101]
    assert vm.cores_avg[-1] == 0.6 and vm.cores_max[-1] == 1.0
    assert vm.cores_avg[:-1] == [None] * (RECENT_POINTS - 1)  # gaps, never zeros
    assert vm.memory_mib == 102  # the latest sample's
    assert rec.cpu_avg[-1] == 0.5 and rec.memory_used_mib[-1] == 1000
    assert rec.point_start(RECENT_POINTS - 1) == T0
    assert rec.point_start(0) == T0 - (RECENT_POINTS - 1) * RECENT_STEP


def test_points_are_minute_slots_oldest_first_and_the_window_is_fixed() -> None:
    w = RecentWindow(points=3)
    for minute in range(5):  # five minutes, one sample each, demand = the minute
        w.add(T0 + 60 * minute + 30, HOST, {101: burn(float(minute))})
    rec = w.record()
    assert rec is not None
    assert rec.vms[101].cores_avg == [2.0, 3.0, 4.0]
    assert rec.point_start(0) == T0 + 120


def test_a_minute_without_samples_is_a_gap() -> None:
    w = RecentWindow(points=4)
    w.add(T0 + 1, HOST, {101: burn(0.5)})
    w.add(T0 + 120 + 1, HOST, {101: burn(0.7)})  # the agent was down for a minute
    rec = w.record()
    assert rec is not None
    assert rec.vms[101].cores_avg == [None, 0.5, None, 0.7]


def test_a_long_pause_empties_the_window_but_the_newest_sample() -> None:
    w = RecentWindow(points=3)
    w.add(T0, HOST, {101: burn(0.5)})
    w.add(T0 + 3600, HOST, {101: burn(0.25)})
    rec = w.record()
    assert rec is not None and rec.vms[101].cores_avg == [None, None, 0.25]


def test_a_sample_older_than_the_newest_point_is_left_out() -> None:
    w = RecentWindow(points=2)
    assert w.add(T0 + 65, HOST, {101: burn(0.5)})
    assert not w.add(T0 + 5, HOST, {101: burn(9.0)})  # the clock stepped back a minute
    rec = w.record()
    assert rec is not None and rec.vms[101].cores_max == [None, 0.5]


def test_only_the_vms_of_the_newest_sample_are_in_the_record() -> None:
    w = RecentWindow(points=2)
    w.add(T0 + 5, HOST, {101: burn(0.5), 102: burn(0.1)})
    w.add(T0 + 65, HOST, {102: burn(0.2), 103: burn(None)})  # 101 left, 103 came
    rec = w.record()
    assert rec is not None
    assert sorted(rec.vms) == [102, 103]
    assert rec.vms[102].cores_avg == [0.1, 0.2]
    # A VM that came here starts empty; its first sample has no rate yet.
    assert rec.vms[103].cores_avg == [None, None] and rec.vms[103].memory_mib == 100


def test_a_sample_without_a_rate_is_not_counted_as_zero() -> None:
    w = RecentWindow(points=1)
    w.add(T0 + 5, HOST, {101: burn(None)})
    w.add(T0 + 15, HOST, {101: burn(0.9)})
    rec = w.record()
    assert rec is not None and rec.vms[101].cores_avg == [0.9]


def test_other_cores_are_the_hosts_busy_cores_outside_the_vms() -> None:
    host = HostSample(cpu=0.75, memory_used_bytes=None, busy_cores=1.5)
    assert other_cores(host, {101: burn(1.0), 102: burn(0.25)}) == 0.25
    # Unknown while any VM's rate is: the difference would count that VM as the host's.
    assert other_cores(host, {101: burn(1.0), 102: burn(None)}) is None
    assert other_cores(HostSample(0.1, None, None), {}) is None
    # Counters read a moment apart may give a little more to the VMs than to the host.
    assert other_cores(host, {101: burn(1.6)}) == 0.0


def test_figures_give_cores_from_two_readings_of_the_same_process() -> None:
    a = figures.VmReading(at=10.0, pid=7, cpu_seconds=100.0, resident_bytes=0,
                          disk_read=None, disk_written=None)
    b = figures.VmReading(at=20.0, pid=7, cpu_seconds=105.0, resident_bytes=0,
                          disk_read=None, disk_written=None)
    assert figures.cores_used(a, b) == 0.5
    assert figures.cores_used(None, b) is None
    assert figures.cores_used(a, figures.VmReading(20.0, 8, 105.0, 0, None, None)) is None
    h1 = figures.HostReading(10.0, 50.0, 200.0, 0, 0, None, None, None, None)
    h2 = figures.HostReading(20.0, 65.0, 220.0, 0, 0, None, None, None, None)
    assert figures.busy_cores(h1, h2) == 1.5
    assert figures.busy_cores(None, h2) is None


def test_the_record_round_trips_through_its_json_and_a_host_key() -> None:
    w = RecentWindow()
    w.add(T0 + 5, HOST, {101: burn(0.5), 100_000: burn(0.01)})
    rec = w.record()
    assert rec is not None
    raw = dump(rec)
    assert load(RecentUsage, raw) == rec
    node = node_from("n1", {"recent": raw})
    assert node.recent == rec and node.recent is not None
    assert sorted(node.recent.vms) == [101, 100_000]


@pytest.mark.parametrize("change, field", [
    ({"cpu_max": [0.1]}, "cpu_max"),
    ({"cpu_avg": []}, "cpu_avg"),
    ({"other_cores": [-1.0, None]}, "other_cores"),
    ({"vms": {"101": {"cores_avg": [0.1], "cores_max": [0.1]}}}, "vms.101"),
    ({"vms": {"101": {"cores_avg": [0.1, 0.2], "cores_max": [0.1]}}}, "cores_avg"),
    ({"step_seconds": "soon"}, "step_seconds"),
])
def test_a_malformed_record_is_a_problem_not_a_crash(change: dict[str, object],
                                                     field: str) -> None:
    good = {"step_seconds": 60, "last_at": T0, "cpu_avg": [0.1, 0.2], "cpu_max": [0.1, 0.2],
            "memory_used_mib": [1, 2], "other_cores": [None, 0.1], "vms": {}}
    assert load(RecentUsage, json.dumps(good).encode()).points == 2
    problems: list[Problem] = []
    node = node_from("n1", {"recent": json.dumps(good | change).encode(),
                            "alive": b"1"}, problems)
    assert node.recent is None and node.alive  # the rest of the host still reads
    assert [p.key for p in problems] == [keys.node("n1", "recent")]
    assert field in problems[0].what


def test_nan_is_refused() -> None:
    raw = (b'{"step_seconds": 60, "last_at": 1, "cpu_avg": [NaN], "cpu_max": [0],'
           b' "memory_used_mib": [0], "other_cores": [0]}')
    with pytest.raises(ValidationError):
        load(RecentUsage, raw)


def test_the_view_decodes_a_hosts_recent_usage_again_only_when_it_changed() -> None:
    from corral.cluster.models import NodeUsage
    from corral.cluster.view_state import Change, ViewState, area_of

    w = RecentWindow()
    w.add(T0 + 5, HOST, {101: burn(0.5)})
    rec = w.record()
    assert rec is not None
    state = ViewState()
    state.apply([Change(keys.node("n1", "recent"), dump(rec), 2)])
    first = state.snapshot(T0).nodes["n1"].recent
    usage = NodeUsage(cpu=0.5, memory_used_mb=1, memory_total_mb=2)
    state.apply([Change(keys.node("n1", "usage"), dump(usage), 3)])  # every 5 s
    again = state.snapshot(T0).nodes["n1"]
    assert again.usage == usage and again.recent is first
    w.add(T0 + 15, HOST, {101: burn(1.5)})
    state.apply([Change(keys.node("n1", "recent"), dump(w.record()), 4)])  # type: ignore[arg-type]
    changed = state.snapshot(T0).nodes["n1"].recent
    assert changed is not None and changed.vms[101].cores_max[-1] == 1.5
    # Answers built from the hosts' other records stay valid while the figures change.
    assert area_of(keys.node("n1", "recent")) == area_of(keys.node("n1", "usage")) == "usage"
