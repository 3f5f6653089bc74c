"""The balancer's score for choosing among hosts that may all take a VM: HA recoveries and
relocations, maintenance evacuations and new VMs rank the eligible hosts by how even the
cluster is with the VM there, as a balancing round would judge it. Pure (a cache keeps each
VM's robust demand per usage record, which is a function of that record alone).

Eligibility (room, rules, maintenance) stays with the caller: this only ranks.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Collection
from dataclasses import dataclass
from functools import partial

from corral.balancer.demand import robust
from corral.balancer.model import BalanceConfig
from corral.balancer.score import HostState, Score
from corral.cluster.models import VM, RecentUsage, RunState
from corral.cluster.snapshot import ClusterSnapshot
from corral.scheduler.capacity import MIGRATION_KINDS, unusable

DEFAULT = BalanceConfig()

# Robust demand of a VM from one of its usage records: records are kept by the view until
# they change, so one VM's demand is worked out once per record (every 30 s), not per choice.
_Settings = tuple[float, float, float]  # what the robust view depends on
_Uses = dict[int, tuple[float, float]]  # vmid -> (cores, resident MiB)
# id of a host's record -> (the record, weakly; the settings; what each VM in it uses).
# Records are not hashable; an entry goes with its record.
_uses: dict[int, tuple[weakref.ref[RecentUsage], _Settings, _Uses]] = {}


def _forget(key: int, ref: weakref.ref[RecentUsage]) -> None:
    entry = _uses.get(key)
    if entry is not None and entry[0] is ref:
        del _uses[key]


def _uses_in(recent: RecentUsage, config: BalanceConfig) -> _Uses:
    settings = (config.window_s, config.horizon_s, config.percentile)
    key = id(recent)
    cached = _uses.get(key)
    if cached is not None and cached[0]() is recent and cached[1] == settings:
        return cached[2]
    uses: _Uses = {}
    step = float(recent.step_seconds)
    for vmid, rec in recent.vms.items():
        cpu = robust([v for v in rec.cores_avg if v is not None], step, config)
        uses[vmid] = (math.nan if cpu is None else cpu,
                      math.nan if rec.memory_mib is None else float(rec.memory_mib))
    _uses[key] = (weakref.ref(recent, partial(_forget, key)), settings, uses)
    return uses


@dataclass(frozen=True)
class Demand:
    cpu: float  # cores
    memory_mb: float  # resident


def demand(snap: ClusterSnapshot, vm: VM, config: BalanceConfig = DEFAULT) -> Demand:
    """What vm uses, as its host last published it (at most its cores); unknown CPU counts
    as half its cores (a new VM, one just moved), unknown memory as all of it."""
    node = snap.nodes.get(vm.placement.node)
    recent = node.recent if node is not None else None
    cpu, memory = math.nan, math.nan
    if recent is not None:
        cpu, memory = _uses_in(recent, config).get(vm.vmid, (math.nan, math.nan))
    cores = vm.config.cores
    return Demand(cores / 2 if math.isnan(cpu) else min(cpu, float(cores)),
                  float(vm.config.memory_mb) if math.isnan(memory) else memory)


_UNKNOWN = (math.nan, math.nan)




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
    # Host by host, with each host's usage record looked up once: this runs for every
    # choice HA makes in a pass, over every VM.
    for name, node in snap.nodes.items():
        uses = _uses_in(node.recent, config) if node.recent is not None else {}
        for other in snap.vms_on(name):
            vmid = other.config.vmid
            where = going.get(vmid)
            if vmid == vm.vmid or (where is None and other.placement.state is RunState.STOPPED):
                continue
            h = hosts.get(where or name)
            if h is None:
                continue
            cores = other.config.cores
            cpu, memory = uses.get(vmid, _UNKNOWN)
            h.cpu += cores / 2 if cpu != cpu else (cpu if cpu < cores else cores)  # nan: unknown
            h.mem += other.config.memory_mb if memory != memory else memory
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
