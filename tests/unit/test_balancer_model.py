"""The balancer's settings, its robust view of load and its migration cost model."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from corral.balancer.demand import level_and_variance, move_cost_s, percentile, robust
from corral.balancer.model import BalanceConfig, BalanceInput, HostLoad, VmLoad
from corral.balancer.planner import plan
from corral.scheduler.capacity import HOST_RESERVE_MB


def test_defaults_are_valid_and_off() -> None:
    c = BalanceConfig()
    assert c.enabled is False
    assert c.memory_reserve_mb == HOST_RESERVE_MB
    assert c.threshold > 0 and c.max_concurrent >= 1 and c.bandwidth_mb_s > 0


@pytest.mark.parametrize(("field", "value"), [
    ("interval_s", 0), ("cpu_weight", -1), ("memory_weight", -0.5), ("cpu_overcommit", 0),
    ("memory_reserve_mb", -1), ("percentile", 20), ("window_s", 1), ("horizon_s", 0),
    ("threshold", -0.1), ("hot_cpu", 0), ("min_gain", 2), ("max_moves_per_round", -1),
    ("max_concurrent", 0), ("cooldown_s", -5), ("pingpong_factor", 0.5),
    ("bandwidth_mb_s", 0), ("enabled", "maybe"),
])
def test_a_bad_value_is_refused_naming_its_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as e:
        BalanceConfig.model_validate({field: value})
    assert field in str(e.value)


def test_both_weights_zero_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="cpu_weight"):
        BalanceConfig(cpu_weight=0, memory_weight=0)


def test_the_robust_view_ignores_a_lone_spike_and_follows_a_rising_trend() -> None:
    config = BalanceConfig()
    spike = [1.0] * 7 + [8.0] + [1.0] * 7  # one sample of a burst long over
    view = robust(spike, 60, config)
    assert view is not None and view < 1.5
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    rising = [0.2 * i for i in range(15)]  # 0 .. 2.8 cores and climbing
    view = robust(rising, 60, config)
    assert view is not None and view > 2.8  # where it heads, not where it was
    level, var = level_and_variance(rising, 60, config, ceiling=4.0) or (0.0, 0.0)
    assert level > 2.8 and var > 0
    capped = level_and_variance(rising, 60, config, ceiling=2.0)
    assert capped is not None and capped[0] == 2.0  # never more than its cores
    assert robust([], 60, config) is None


def test_a_vm_without_samples_is_not_moved() -> None:
    hosts = (HostLoad("a", 4, 65536, True), HostLoad("b", 4, 65536, True))
    vms = tuple(VmLoad(100 + i, "a", 2, 1024, (2.0,) * 10, 800.0) for i in range(3))
    unknown = VmLoad(200, "a", 2, 1024, (), 800.0)
    p = plan(BalanceInput(1000.0, 60.0, hosts, (*vms, unknown)), BalanceConfig())
    assert p.moves
    assert 200 not in {m.vmid for m in p.moves}
    assert p.held[200] == "no usage samples yet"


def test_the_cost_model_counts_memory_dirty_rate_and_local_disks() -> None:
    config = BalanceConfig(bandwidth_mb_s=1000)
    quiet = VmLoad(1, "a", 2, 8192, (), 4000.0, dirty_mb_s=0.0)
    assert move_cost_s(quiet, config) == pytest.approx(4.0)
    busy = VmLoad(1, "a", 2, 8192, (), 4000.0, dirty_mb_s=500.0)
    assert move_cost_s(busy, config) == pytest.approx(8.0)
    disks = VmLoad(1, "a", 2, 8192, (), 4000.0, dirty_mb_s=0.0, local_disk_mb=20_000)
    assert move_cost_s(disks, config) == pytest.approx(24.0)
    never = VmLoad(1, "a", 2, 8192, (), 4000.0, dirty_mb_s=950.0)
    assert math.isinf(move_cost_s(never, config))


def test_a_vm_that_would_never_converge_is_held_with_the_reason() -> None:
    hosts = (HostLoad("a", 4, 65536, True), HostLoad("b", 4, 65536, True))
    vms = tuple(VmLoad(100 + i, "a", 2, 1024, (2.0,) * 10, 800.0, dirty_mb_s=2000.0)
                for i in range(3))
    p = plan(BalanceInput(1000.0, 60.0, hosts, vms), BalanceConfig())
    assert p.moves == ()
    assert "dirties memory" in p.held[100]


def test_the_gain_must_beat_the_cost_over_the_horizon() -> None:
    # Two hosts, one VM's worth of imbalance: the move helps, but a huge VM over a slow link
    # costs more than the gain over a short horizon.
    hosts = (HostLoad("a", 8, 1 << 20, True), HostLoad("b", 8, 1 << 20, True))
    vms = (VmLoad(100, "a", 4, 400_000, (2.0,) * 15, 300_000.0, dirty_mb_s=0.0),
           VmLoad(102, "a", 4, 400_000, (2.0,) * 15, 300_000.0, dirty_mb_s=0.0),
           VmLoad(101, "b", 1, 1024, (0.1,) * 15, 800.0))
    cheap = BalanceConfig(bandwidth_mb_s=100_000, horizon_s=600)
    assert plan(BalanceInput(1000.0, 60.0, hosts, vms), cheap).moves
    dear = BalanceConfig(bandwidth_mb_s=10, horizon_s=600)
    p = plan(BalanceInput(1000.0, 60.0, hosts, vms), dear)
    assert p.moves == ()
    assert "does not beat the cost" in p.held[100]
