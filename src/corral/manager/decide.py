"""The manager's whole decision: a pure function of one cluster snapshot.

No I/O, no clock (snap.now is the time), no randomness: the same snapshot always gives the
same actions, so production, the simulator and the tests run the very same code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from corral.balancer.model import BalanceConfig
from corral.cluster.actions import Action, QueueTask
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.actions import HAAction
from corral.ha.machine import decide_ha
from corral.ha.models import HAInputs, HARule, HAState, HATiming
from corral.manager.balance import BalanceRound, decide_balance
from corral.manager.bulk import decide_bulk
from corral.manager.housekeeping import decide_prune
from corral.manager.maintenance import decide_maintenance

Decider = Callable[[ClusterSnapshot], list[Action]]

def parts(rules: Sequence[HARule], scoring: BalanceConfig | None = None
          ) -> tuple[Decider, ...]:
    """In priority order: each part sees the tasks the earlier parts queued, so two parts
    never send one VM two tasks or fill one host twice. HA placement rules bind maintenance's
    choice of targets too."""
    return (partial(decide_maintenance, rules=rules, scoring=scoring), decide_bulk,
            decide_prune)


def decide(snap: ClusterSnapshot, rules: Sequence[HARule] = (),
           scoring: BalanceConfig | None = None) -> list[Action]:
    actions: list[Action] = []
    for part in parts(rules, scoring):
        more = part(snap)
        actions.extend(more)
        snap = snap.with_tasks([a.task for a in more if isinstance(a, QueueTask)])
    return actions


def decide_with_ha(snap: ClusterSnapshot, ha: HAInputs, timing: HATiming
                   ) -> tuple[list[HAAction], HAState]:
    """decide(), then HA over the snapshot with their tasks, so HA waits for a maintenance
    migration instead of acting on the same VM. Returns the HA state to persist as well."""
    actions: list[HAAction] = list(decide(snap, ha.rules, ha.scoring))
    snap = snap.with_tasks([a.task for a in actions if isinstance(a, QueueTask)])
    ha_actions, state = decide_ha(snap, ha, timing)
    return actions + ha_actions, state


def decide_with_balance(snap: ClusterSnapshot, ha: HAInputs, timing: HATiming,
                        balance: BalanceConfig | None
                        ) -> tuple[list[HAAction], HAState, BalanceRound | None]:
    """decide_with_ha(), then a balancing round when one is due (balance given): it plans
    on the snapshot with every task the other parts queued, so it never moves a VM they
    move, and counts their moves' memory where it goes."""
    actions, state = decide_with_ha(snap, ha, timing)
    if balance is None:
        return actions, state, None
    queued = snap.with_tasks([a.task for a in actions if isinstance(a, QueueTask)])
    rnd = decide_balance(queued, ha, balance)
    return [*actions, *rnd.queued], state, rnd
