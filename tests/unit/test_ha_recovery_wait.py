"""How long the manager waits after a host's lease is gone before its VMs may run elsewhere:
no less than the host may outlive its lease, by its own published figures."""

from __future__ import annotations

import pytest

from corral.cluster.models import NodeInfo
from corral.ha.models import HATiming
from corral.ha.nodes import recovery_wait

TIMING = HATiming(lease_ttl=10, watchdog_timeout=5, margin=2)


def info(fence: float, ttl: float | None = 10, renew: float | None = 1.0) -> NodeInfo:
    return NodeInfo(name="n1", cpus=1, memory_mb=1024, lease_ttl=ttl, watchdog_timeout=fence,
                    renew_interval=renew)


def test_a_host_reset_before_its_lease_ends_waits_the_margin() -> None:
    # Fed at most 1 s after the last accepted renewal, reset 6.5 s later: 2.5 s before etcd
    # can drop the lease.
    assert recovery_wait(info(6.5), 6.5, TIMING) == 2.0


def test_a_host_that_outlives_its_lease_adds_the_difference() -> None:
    # Reset up to 12 + 1 s after the last renewal, the lease ends 10 s after it.
    assert recovery_wait(info(12), 12, TIMING) == pytest.approx(3.0 + 2.0)


@pytest.mark.parametrize("ttl, renew", [(None, 1.0), (10, None)])
def test_an_older_agent_without_its_figures_waits_the_whole_fence_time(
        ttl: float | None, renew: float | None) -> None:
    assert recovery_wait(info(6.5, ttl, renew), 6.5, TIMING) == 6.5 + 2.0


def test_the_manager_knows_when_the_earliest_fence_wait_ends() -> None:
    from corral.ha.models import HAState, NodeHAState, NodeStatusHA
    from corral.ha.nodes import next_fence

    state = HAState(nodes={
        "n1": NodeHAState(status=NodeStatusHA.ONLINE),
        "n2": NodeHAState(status=NodeStatusHA.FENCE, lost_mono=100.0, fence_mono=102.0),
        "n3": NodeHAState(status=NodeStatusHA.FENCE, lost_mono=99.0, fence_mono=101.5),
        "n4": NodeHAState(status=NodeStatusHA.FENCED, fence_mono=50.0),
    })
    assert next_fence(state) == 101.5
    assert next_fence(HAState()) is None


def test_a_lost_host_carries_the_end_of_its_fence_wait() -> None:
    from corral.cluster.models import Node
    from corral.cluster.snapshot import ClusterSnapshot
    from corral.ha.models import HAInputs, NodeStatusHA
    from corral.ha.nodes import node_states

    snap = ClusterSnapshot(now=1000.0, nodes={"n1": Node("n1", info(6.5), False, None, None)},
                           vms={})
    states = node_states(snap, HAInputs(term=3, mono=50.0), TIMING)
    assert states["n1"].status is NodeStatusHA.FENCE
    assert states["n1"].fence_mono == 52.0  # seen lost at 50, waits the 2 s margin
