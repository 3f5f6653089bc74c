"""The load balancer's part of the manager's decision: when a round is due, plan on the
snapshot (with the tasks HA and maintenance just queued) and queue each move as a normal
migration task whose parameters say why. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from corral.balancer import planner
from corral.balancer.inputs import balance_input, balance_task_id
from corral.balancer.model import BalanceConfig, Move, Plan
from corral.cluster import keys
from corral.cluster.actions import QueueTask
from corral.cluster.models import Task
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import HAInputs


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


def blind_spots(snap: ClusterSnapshot, ha: HAInputs) -> list[str]:
    """Records a round cannot plan without, as their keys: a VM whose config or placement
    does not decode still runs somewhere and uses memory there, and a rule that does not
    decode may forbid a move; planning as if they were not there could overfill a host or
    break the rule."""
    vms = [f"{keys.VMS}{v}" for v in sorted(snap.unreadable_vms)]
    rules = sorted(p.key for p in ha.rule_problems)
    return [*vms, *rules]


def decide_balance(snap: ClusterSnapshot, ha: HAInputs, config: BalanceConfig
                   ) -> BalanceRound:
    plan = planner.plan(balance_input(snap, ha.rules), config)
    if plan.moves and (blind := blind_spots(snap, ha)):
        note = (f"records that do not decode: {' '.join(blind)}; nothing moves until they "
                "are mended (`corral ha status` says what is wrong with them)")
        return BalanceRound(Plan((), plan.imbalance, (*plan.notes, note), plan.held), ())
    queued = tuple(QueueTask(migration_task(snap, m)) for m in plan.moves
                   if m.vmid in snap.vms)
    return BalanceRound(plan, queued)
