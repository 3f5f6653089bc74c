"""Which HA rule a running VM breaks where it runs, and where it must go to keep it. Pure.

A rule added or changed while its VMs run can be broken by where they already are; HA then
moves one VM live. Exactly one side of a clash moves, chosen the same way whichever VM of it
is looked at, so the pair never swaps and, once the move is done, the rule holds:
- strict node-preference: the VM moves to a listed host;
- anti-affinity: of VMs on one host, the one with the higher id moves, unless HA cannot
  move the other (not an HA VM meant to run, or away for maintenance, which brings it
  back): then the one HA can move goes;
- affinity: the members gather on one host of the group, its "home": a host every member's
  strict node rules allow, then one with a member HA cannot move, then the most members,
  then the host of the lowest VM id. Only members away from home move, straight to it.
Where VMs stay is their settled host (a migration's target while it moves), so a move
queued earlier is seen by its partners.
"""

from __future__ import annotations

from dataclasses import dataclass

from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import HARequest, HARule, HASettings
from corral.ha.placement import rules_of, settled_host


@dataclass(frozen=True)
class Breach:
    rule: HARule
    why: str  # what is wrong where it runs, for the HA reason
    only: str | None = None  # the one host that fixes it (affinity), or any compliant host


def _movable(snap: ClusterSnapshot, settings: dict[int, HASettings], vmid: int) -> bool:
    """HA may move vmid to keep a rule: an HA VM meant to run, not away for maintenance
    (maintenance brings it back to its host, whatever HA does)."""
    s, vm = settings.get(vmid), snap.vms.get(vmid)
    return (s is not None and s.state is HARequest.STARTED and vm is not None
            and vm.placement.origin is None)


def _allowed(rules: list[HARule], vmid: int, node: str) -> bool:
    return all(node in r.nodes for r in rules_of(rules, vmid, "node-preference") if r.strict)


def _home(snap: ClusterSnapshot, rule: HARule, where: dict[int, str], rules: list[HARule],
          settings: dict[int, HASettings]) -> str:
    hosts = sorted(set(where.values()))
    fit = [h for h in hosts if all(_allowed(rules, v, h) for v in rule.vms)] or hosts

    def rank(h: str) -> tuple[bool, int, int]:
        on = [v for v, n in where.items() if n == h]
        return (all(_movable(snap, settings, v) for v in on), -len(on), min(on))

    return min(fit, key=rank)


def breach_here(snap: ClusterSnapshot, vmid: int, node: str, rules: list[HARule],
                settings: dict[int, HASettings]) -> Breach | None:
    """The rule vmid, running on node, breaks there and must move for; None when it keeps
    every rule or another VM of the clash is the one to move."""
    for r in rules_of(rules, vmid, "node-preference"):
        if r.strict and node not in r.nodes:
            return Breach(r, f"rule {r.name}: {node} is not among its nodes")
    for r in rules_of(rules, vmid, "anti-affinity"):
        here = [o for o in r.vms if o != vmid and settled_host(snap, o) == node]
        stays = [o for o in here if o < vmid or not _movable(snap, settings, o)]
        if stays:
            return Breach(r, f"rule {r.name}: VM {stays[0]} runs on {node} too")
    for r in rules_of(rules, vmid, "affinity"):
        where = {o: h for o in r.vms
                 if (h := node if o == vmid else settled_host(snap, o)) is not None}
        if len(set(where.values())) < 2:
            continue
        home = _home(snap, r, where, rules, settings)
        if home != node:
            with_ = ", ".join(str(v) for v in sorted(where) if where[v] == home)
            return Breach(r, f"rule {r.name}: its group gathers on {home} (VM {with_})", home)
    return None
