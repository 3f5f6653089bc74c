"""The load balancer's part of the manager's decision: when a round is due, plan on the
snapshot (with the tasks HA and maintenance just queued) and queue each move as a normal
migration task whose parameters say why. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from corral.balancer import planner
from corral.balancer.inputs import balance_input, balance_task_id
from corral.balancer.model import BalanceConfig, Move, Plan
from corral.cluster.actions import QueueTask
from corral.cluster.models import Task
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import HARule


@dataclass(frozen=True)
class BalanceRound:
    plan: Plan
    queued: tuple[QueueTask, ...]


def migration_task(snap: ClusterSnapshot, move: Move) -> Task:
    vm = snap.vms[move.vmid]
    return Task(id=balance_task_id(vm), kind="vm.migrate", node=move.source, vmid=move.vmid,
                params={"target": move.target, "with_local_disks": False,
                        "bwlimit_mbps": None, "origin": None,
                        "reason": f"load balancing: {move.reason}"},
                created_at=snap.now)


def round_due(config: BalanceConfig, since_last: float | None) -> bool:
    """A round runs every interval_s while enabled; the first at once."""
    return config.enabled and (since_last is None or since_last >= config.interval_s)


def decide_balance(snap: ClusterSnapshot, rules: Sequence[HARule], config: BalanceConfig
                   ) -> BalanceRound:
    plan = planner.plan(balance_input(snap, rules), config)
    queued = tuple(QueueTask(migration_task(snap, m)) for m in plan.moves
                   if m.vmid in snap.vms)
    return BalanceRound(plan, queued)
