"""The benchmark's simulator: one workload, one contender, one simulated clock.

Every contender sees the same input at the same simulated times: the hosts (a host in
maintenance takes no VMs), each running VM's CPU samples, memory, dirty rate and disks, the
HA rules, the moves made so far and the migrations running. Its moves start as migrations
that take simulated time (memory / (bandwidth - dirty rate) + local disks / bandwidth +
setup) and cost CPU on both hosts while they run; the VM counts on its source host until
its migration ends. What the hosts actually serve each step is measured.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from corral.balancer.bench.contenders import Contender, cv
from corral.balancer.bench.workload import HostSpec, VmSpec, Workload
from corral.balancer.model import BalanceInput, HostLoad, Move, PastMove, VmLoad
from corral.balancer.rules import NO_RULES, VmRules, index

BANDWIDTH_MB_S = 1000.0  # about a 10 GbE migration link
MIGRATION_CPU = 1.0  # cores a running migration costs on each of its two hosts
SETUP_S = 5.0
HOT = 0.9  # a host above this fraction of its CPUs is hot
RESERVE_MB = 512
PINGPONG_S = 2 * 3600.0  # a move to a host the VM left less than this ago is ping-pong
HISTORY_S = 12 * 3600.0  # moves older than this are not passed on
SAMPLES = 60  # samples of history every contender gets (an hour at 60 s)


@dataclass
class Result:
    contender: str
    workload: str
    imbalance: list[float] = field(default_factory=list)  # per step
    hot_host_s: float = 0.0
    unmet_core_s: float = 0.0
    migrations: int = 0
    gib_moved: float = 0.0
    pingpong: int = 0
    capacity_violations: int = 0
    rule_violations: int = 0
    decisions: list[float] = field(default_factory=list)  # seconds per decide()

    @property
    def mean_imbalance(self) -> float:
        return sum(self.imbalance) / len(self.imbalance) if self.imbalance else 0.0

    @property
    def p95_imbalance(self) -> float:
        s = sorted(self.imbalance)
        return s[min(len(s) - 1, math.ceil(0.95 * len(s)) - 1)] if s else 0.0


def imbalance(cpu_use: list[float], mem_use: list[float]) -> float:
    """The benchmark's measure: the mean of the coefficients of variation of host CPU use
    and host memory use (fractions of each host's own size)."""
    return (cv(cpu_use) + cv(mem_use)) / 2


@dataclass
class _Migration:
    vm: int  # index
    source: int
    target: int
    end: float


def run(w: Workload, contender: Contender) -> Result:
    res = Result(contender.name, w.name)
    hosts = list(w.hosts)
    hidx = {h.name: i for i, h in enumerate(hosts)}
    vms = list(w.vms)
    where = [hidx[v.host] for v in vms]
    on: list[set[int]] = [set() for _ in hosts]
    for i, h in enumerate(where):
        on[h].add(i)
    cpu_at = list(zip(*(v.cpu for v in vms), strict=True))
    mem_at = list(zip(*(v.memory_used_mb for v in vms), strict=True))
    rules = index(w.rules)
    vm_of = {v.vmid: i for i, v in enumerate(vms)}
    migrating: dict[int, _Migration] = {}
    other: list[list[float]] = [[] for _ in hosts]
    history: list[PastMove] = []
    left: dict[int, list[tuple[int, float]]] = {}
    next_due = 0.0
    step = w.step_s
    for t in range(w.steps):
        now = t * step
        for i, m in sorted(migrating.items()):
            if m.end <= now:
                on[m.source].discard(i)
                on[m.target].add(i)
                where[i] = m.target
                del migrating[i]
        overhead = [0.0] * len(hosts)
        for m in migrating.values():
            overhead[m.source] += MIGRATION_CPU
            overhead[m.target] += MIGRATION_CPU
        for h in range(len(hosts)):
            other[h].append(overhead[h])
        accepts = [h.accepts(t) for h in hosts]

        if now >= next_due:
            next_due = now + contender.interval_s
            lo = max(0, t + 1 - SAMPLES)
            moving_to = {i: hosts[m.target].name for i, m in migrating.items()}
            inp = BalanceInput(
                now=now, step_s=step,
                hosts=tuple(HostLoad(h.name, h.cpus, h.memory_mb, accepts[k],
                                     "" if accepts[k] else "is in maintenance",
                                     tuple(other[k][lo:t + 1]))
                            for k, h in enumerate(hosts)),
                vms=tuple(VmLoad(v.vmid, hosts[where[i]].name, v.cores, v.memory_mb,
                                 tuple(v.cpu[lo:t + 1]), v.memory_used_mb[t], v.dirty_mb_s[t],
                                 v.local_disk_mb, movable=i not in migrating,
                                 why_fixed="migrating" if i in migrating else "",
                                 moving_to=moving_to.get(i, ""))
                          for i, v in enumerate(vms)),
                rules=w.rules,
                history=tuple(m for m in history if now - m.at < HISTORY_S),
                migrations_running=len(migrating))
            t0 = time.process_time()
            moves = contender.decide(inp)
            res.decisions.append(time.process_time() - t0)
            for mv in moves:
                _start(mv, t, now, res, hosts, hidx, vms, vm_of, where, migrating, accepts,
                       rules, history, left)

        cpu_use = []
        mem_use = []
        cpu_now, mem_now = cpu_at[t], mem_at[t]
        for k, host in enumerate(hosts):
            if not accepts[k] and not on[k]:
                continue
            demand = sum(cpu_now[i] for i in on[k]) + overhead[k]
            cpu_use.append(demand / host.cpus)
            mem_use.append(sum(mem_now[i] for i in on[k]) / host.memory_mb)
            if demand > HOT * host.cpus:
                res.hot_host_s += step
            res.unmet_core_s += max(0.0, demand - host.cpus) * step
        res.imbalance.append(imbalance(cpu_use, mem_use))
    return res


def _start(mv: Move, t: int, now: float, res: Result, hosts: list[HostSpec],
           hidx: dict[str, int], vms: list[VmSpec], vm_of: dict[int, int],
           where: list[int], migrating: dict[int, _Migration], accepts: list[bool],
           rules: dict[int, VmRules], history: list[PastMove],
           left: dict[int, list[tuple[int, float]]]) -> None:
    i = vm_of.get(mv.vmid)
    if i is None or i in migrating or mv.target not in hidx:
        return
    src, dst = where[i], hidx[mv.target]
    if src == dst or hosts[src].name != mv.source:
        return
    v = vms[i]
    if not accepts[dst]:
        res.rule_violations += 1
    committed = sum(vms[j].memory_mb for j in range(len(vms)) if where[j] == dst)
    committed += sum(vms[m.vm].memory_mb for m in migrating.values() if m.target == dst)
    if committed + v.memory_mb + RESERVE_MB > hosts[dst].memory_mb:
        res.capacity_violations += 1
    settled = {vms[j].vmid: hosts[migrating[j].target if j in migrating else where[j]].name
               for j in range(len(vms))}
    leaving = {vms[j].vmid: hosts[where[j]].name for j in migrating}
    r = rules.get(v.vmid, NO_RULES)
    if r is not NO_RULES and r.breach(v.vmid, mv.target, settled, None, leaving):
        res.rule_violations += 1
    if any(h == dst and now - at < PINGPONG_S for h, at in left.get(i, [])):
        res.pingpong += 1
    mem = v.memory_used_mb[t]
    dirty = min(v.dirty_mb_s[t], 0.9 * BANDWIDTH_MB_S)
    copied = mem * BANDWIDTH_MB_S / (BANDWIDTH_MB_S - dirty) + v.local_disk_mb
    migrating[i] = _Migration(i, src, dst, now + SETUP_S + copied / BANDWIDTH_MB_S)
    res.migrations += 1
    res.gib_moved += copied / 1024
    history.append(PastMove(v.vmid, mv.source, mv.target, now))
    left.setdefault(i, []).append((src, now))
