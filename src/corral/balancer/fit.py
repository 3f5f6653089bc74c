"""The balancer's score for choosing among hosts that may all take a VM: HA recoveries and
relocations, maintenance evacuations and new VMs rank the eligible hosts by how even the
cluster is with the VM there, as a balancing round would judge it. Pure (a cache keeps each
VM's robust demand per usage record, which is a function of that record alone).

Eligibility (room, rules, maintenance) stays with the caller: this only ranks.
"""

from __future__ import annotations

import weakref
from collections.abc import Collection
from dataclasses import dataclass
from functools import partial

from corral.balancer.demand import robust
from corral.balancer.model import BalanceConfig
from corral.balancer.score import HostState, Score
from corral.cluster.models import VM, RunState, VmRecent
from corral.cluster.snapshot import ClusterSnapshot
from corral.scheduler.capacity import MIGRATION_KINDS, unusable

DEFAULT = BalanceConfig()

# Robust demand of a VM from one of its usage records: records are kept by the view until
# they change, so one VM's demand is worked out once per record (every 30 s), not per choice.
_Settings = tuple[float, float, float]  # what the robust view depends on
# id of the record -> (the record, weakly; the settings; the demand). Records are not
# hashable; an entry goes with its record.
_demand: dict[int, tuple[weakref.ref[VmRecent], _Settings, float]] = {}


def _forget(key: int, ref: weakref.ref[VmRecent]) -> None:
    entry = _demand.get(key)
    if entry is not None and entry[0] is ref:
        del _demand[key]


@dataclass(frozen=True)
class Demand:
    cpu: float  # cores
    memory_mb: float  # resident


def demand(snap: ClusterSnapshot, vm: VM, config: BalanceConfig = DEFAULT) -> Demand:
    """What vm uses, as its host last published it; unknown CPU counts as half its cores
    (a new VM, one just moved), unknown memory as all of it."""
    node = snap.nodes.get(vm.placement.node)
    recent = node.recent if node is not None else None
    rec = recent.vms.get(vm.vmid) if recent is not None else None
    if rec is None or recent is None:
        return Demand(vm.config.cores / 2, float(vm.config.memory_mb))
    settings = (config.window_s, config.horizon_s, config.percentile)
    key = id(rec)
    cached = _demand.get(key)
    if cached is None or cached[0]() is not rec or cached[1] != settings:
        points = [v for v in rec.cores_avg if v is not None]
        cpu = robust(points, float(recent.step_seconds), config, ceiling=float(vm.config.cores))
        ref = weakref.ref(rec, partial(_forget, key))
        cached = (ref, settings, vm.config.cores / 2 if cpu is None else cpu)
        _demand[key] = cached
    memory = float(rec.memory_mib) if rec.memory_mib is not None else float(vm.config.memory_mb)
    return Demand(cached[2], memory)


def _counts(vm: VM) -> bool:
    return vm.placement.state is not RunState.STOPPED


def fit_scores(snap: ClusterSnapshot, vm: VM, nodes: Collection[str],
               config: BalanceConfig = DEFAULT) -> dict[str, float]:
    """The balancer's score (lower: more even) of the cluster with vm moved to each of nodes,
    counting every VM meant to run where it is placed now."""
    hosts: dict[str, HostState] = {}
    for name, node in snap.nodes.items():
        if node.info is None or node.info.cpus <= 0 or node.info.memory_mb <= 0:
            continue
        if unusable(snap, name) is None or name in nodes:
            hosts[name] = HostState(name, node.info.cpus, node.info.memory_mb, 0.0, 0.0, 0, 0)
    # A VM on its way counts where it goes, as the capacity check counts its memory there:
    # choices made earlier in the same decision spread, not pile up.
    going: dict[int, str] = {}
    for task in snap.unfinished():
        target = task.params.get("target")
        if task.kind in MIGRATION_KINDS and task.vmid is not None and isinstance(target, str):
            going[task.vmid] = target
    for other in snap.vms.values():
        where = going.get(other.vmid)
        if other.vmid == vm.vmid or (where is None and not _counts(other)):
            continue
        h = hosts.get(where or other.placement.node)
        if h is not None:
            d = demand(snap, other, config)
            h.cpu += d.cpu
            h.mem += d.memory_mb
    score = Score(list(hosts.values()), config.cpu_weight, config.memory_weight, config.hot_cpu)
    mine = demand(snap, vm, config)
    out: dict[str, float] = {}
    for name in nodes:
        t = hosts.get(name)
        if t is None:
            continue
        c, m = score.uc(t), score.um(t)
        c2, m2 = (t.cpu + mine.cpu) / t.cpus, (t.mem + mine.memory_mb) / t.memory_mb
        sc, qc = score.sc - c + c2, score.qc - c * c + c2 * c2
        sm, qm = score.sm - m + m2, score.qm - m * m + m2 * m2
        pen = score.pen - max(c - score.hot, 0.0) + max(c2 - score.hot, 0.0)
        out[name] = round(score.imbalance(sc, qc, sm, qm) + pen, 9)
    return out
