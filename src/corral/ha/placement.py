"""Where HA may put a VM: eligible hosts under the rules, best first. Pure."""

from __future__ import annotations

import math
from dataclasses import replace

from corral.balancer.fit import DEFAULT as DEFAULT_SCORING
from corral.balancer.fit import fit_scores
from corral.balancer.model import BalanceConfig
from corral.cluster.models import VM, Placement, RunState
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import HARule
from corral.scheduler.capacity import MIGRATION_KINDS, free_memory, unusable


def rules_of(rules: list[HARule], vmid: int, kind: str) -> list[HARule]:
    return [r for r in rules if r.kind == kind and vmid in r.vms]


def _meant_to_run_on(snap: ClusterSnapshot, vmid: int, node: str) -> bool:
    """vmid is placed on node to run, or is migrating there (its source host alive: a
    migration from a lost host goes nowhere). One leaving node still counts there until it
    has left."""
    other = snap.vms.get(vmid)
    if other is None or other.placement.state is RunState.STOPPED:
        return False
    if other.placement.node == node:
        return True
    task = snap.active_task(vmid)
    source = snap.nodes.get(other.placement.node)
    return (task is not None and task.kind in MIGRATION_KINDS
            and task.params.get("target") == node and source is not None and source.alive)


def settled_host(snap: ClusterSnapshot, vmid: int) -> str | None:
    """Where a VM meant to run is staying: its migration's target while it moves, else its
    host, unless that host is lost or in maintenance (then it moves as well, and its partners
    choose first)."""
    other = snap.vms.get(vmid)
    if other is None or other.placement.state is RunState.STOPPED:
        return None
    node = other.placement.node
    task = snap.active_task(vmid)
    if task is not None and task.kind in MIGRATION_KINDS and task.params.get("target"):
        node = str(task.params["target"])
    n = snap.nodes.get(node)
    if n is None or not n.alive or snap.in_maintenance(node):
        return None
    return node


def rule_breach(snap: ClusterSnapshot, vm: VM, rules: list[HARule], node: str) -> str | None:
    """Which HA rule vm on node would break (a strict node rule, an affinity either way), or
    None.
    The API asks it of an operator's migration too: a rule binds people and HA alike."""
    for r in rules_of(rules, vm.vmid, "node-preference"):
        if r.strict and node not in r.nodes:
            return f"rule {r.name}: {node} is not among its nodes"
    # Anti-affinity is a hard rule: keeping the VMs apart is the point of it.
    for r in rules_of(rules, vm.vmid, "anti-affinity"):
        clash = [o for o in r.vms if o != vm.vmid and _meant_to_run_on(snap, o, node)]
        if clash:
            return f"rule {r.name}: VM {clash[0]} runs on {node}"
    for r in rules_of(rules, vm.vmid, "affinity"):
        hosts = {h: o for o in r.vms if o != vm.vmid
                 and (h := settled_host(snap, o)) is not None}
        if hosts and node not in hosts:
            h, o = sorted(hosts.items())[0]
            return f"rule {r.name}: keeps it with VM {o} on {h}"
    return None


def refusal(snap: ClusterSnapshot, vm: VM, rules: list[HARule], node: str,
            running: bool) -> str | None:
    """Why HA must not place vm on node, or None."""
    if (why := unusable(snap, node)) is not None:
        return why
    if (why := rule_breach(snap, vm, rules, node)) is not None:
        return why
    if running and (free := free_memory(snap, node)) < vm.config.memory_mb:
        return (f"not enough free memory on {node}: {free} MiB free, "
                f"VM {vm.vmid} needs {vm.config.memory_mb} MiB")
    return None


def priority(rules: list[HARule], vmid: int, node: str) -> int:
    """The highest priority any preference rule of vmid gives node; unlisted hosts rank
    below every listed one (non-strict rules only let them in as a last resort)."""
    prefs = rules_of(rules, vmid, "node-preference")
    return max((r.nodes.get(node, -1) for r in prefs), default=0)


def choose_node(snap: ClusterSnapshot, vm: VM, rules: list[HARule],
                exclude: frozenset[str], running: bool, scoring: BalanceConfig | None = None
                ) -> tuple[str | None, str]:
    """The best host for vm: highest rule priority, then the one that leaves the cluster
    most even by the balancer's score (so a recovery does not undo balancing)."""
    reasons: list[str] = []
    eligible: list[str] = []
    for node in sorted(snap.nodes):
        if node in exclude:
            continue
        why = refusal(snap, vm, rules, node, running)
        if why is not None:
            reasons.append(why)
            continue
        eligible.append(node)
    if not eligible:
        return None, "; ".join(reasons) or "no other host in the cluster"
    scores = fit_scores(snap, vm, eligible, scoring or DEFAULT_SCORING)
    # Equal scores (an empty cluster, hosts alike): the most free memory, then the name.
    best = min(eligible, key=lambda n: (-priority(rules, vm.vmid, n),
                                        scores.get(n, math.inf), -free_memory(snap, n), n))
    return best, ""


def with_placement(snap: ClusterSnapshot, vmid: int, placement: Placement) -> ClusterSnapshot:
    """snap as if placement were written: later decisions in the same pass see the memory
    and anti-affinity effect of earlier ones."""
    vm = snap.vms[vmid]
    vms = dict(snap.vms)
    vms[vmid] = replace(vm, placement=placement)
    return replace(snap, vms=vms)
