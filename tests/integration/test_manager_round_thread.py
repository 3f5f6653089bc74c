"""A balancing round runs off the manager's event loop: the agent that hosts the manager
renews its lease and feeds its watchdog on that loop, and a round at thousands of VMs takes
hundreds of milliseconds. Real etcd; the round is made slow on purpose (the decision itself
is unchanged, it is followed by a blocking wait)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from corral.balancer.model import BalanceConfig
from corral.balancer.store import put_config
from corral.cluster.store import Store
from corral.cluster.view import ClusterView
from corral.manager import loop as manager_loop
from corral.manager.decide import decide_with_balance
from corral.manager.election import Election
from corral.manager.loop import Manager

pytestmark = pytest.mark.integration
SLOW_ROUND_S = 0.5


async def ticks_during(tick: Any) -> int:
    """How often a 10 ms timer fired on the loop while tick ran."""
    count = 0

    async def timer() -> None:
        nonlocal count
        while True:
            await asyncio.sleep(0.01)
            count += 1

    task = asyncio.create_task(timer())
    await asyncio.sleep(0)  # the timer is running
    try:
        await tick()
    finally:
        task.cancel()
    return count


@pytest.mark.parametrize("enabled", [True, False])
async def test_a_round_leaves_the_loop_free(store: Store, cluster_view: ClusterView,
                                            monkeypatch: pytest.MonkeyPatch,
                                            enabled: bool) -> None:
    real = decide_with_balance
    rounds: list[bool] = []

    def slow(*args: Any) -> Any:
        out = real(*args)
        if args[-1] is not None:  # a balancing round
            rounds.append(True)
            time.sleep(SLOW_ROUND_S)
        return out

    monkeypatch.setattr(manager_loop, "decide_with_balance", slow)
    await put_config(store, BalanceConfig(enabled=enabled))
    lease = await store.grant_lease(5)
    token = await Election(store, "n1", lambda: lease).win()
    await cluster_view.catch_up(await store.current_revision())
    fired = await ticks_during(Manager(store, cluster_view, token).tick)
    if enabled:
        assert rounds == [True]
        assert fired >= 10, f"the loop stood still during the round ({fired} timer ticks)"
    else:
        assert rounds == []  # no round: nothing to move off the loop
