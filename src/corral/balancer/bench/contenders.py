"""The balancers the benchmark compares, re-implemented from their published behaviour, all
behind one protocol: `decide(inp)` returns the moves to start now; each keeps whatever state
between rounds its original keeps. The simulator calls `decide` every `interval_s`.

- noop: never moves anything.
- proxlb: ProxLB's model. One metric (memory used by default, or CPU); "balanciness" is the
  max - min of node usage in percent; when above 10 points, one greedy pass moves guests
  from the most to the least used node until the spread is under it. Guest CPU is the mean
  over the last hour; memory is the only capacity check. Runs every 12 h (the simulator
  scales it down for short spans, keeping it coarse).
- pve: Proxmox VE 9.2's dynamic load balancer. Node load = (cpu% + mem%) / 2; imbalance =
  coefficient of variation of node loads / sqrt(n - 1); acts when it is above 0.3 for 3
  rounds in a row (a round every ~10 s); one move per round, the one that lowers the
  imbalance most, only if it lowers it by at least 10 % relatively; nothing while a
  migration runs. All VMs count as HA VMs.
- greedy: a DRS / Ganeti-hbal style hill climb. Score = cpu_weight * std(cpu%) +
  memory_weight * std(mem%); repeatedly take the single move lowering it most, until no move
  lowers it by at least min_gain; at most max_moves per round.
- corral: `corral.balancer.planner.plan`.

Every contender keeps the HA rules (ProxLB's affinity tags, PVE's HA rules, hbal's
exclusion tags) and never overfills memory with configured sizes: the benchmark measures
balance, not rule-breaking.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from corral.balancer.model import BalanceConfig, BalanceInput, Move, VmLoad
from corral.balancer.planner import plan
from corral.balancer.rules import NO_RULES, VmRules, index


def cv(values: list[float]) -> float:
    """Coefficient of variation (population standard deviation over the mean); 0 for fewer
    than two values or a mean of 0."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    if mean <= 0:
        return 0.0
    return math.sqrt(sum((x - mean) ** 2 for x in values) / n) / mean

RESERVE_MB = 512


class Contender(Protocol):
    name: str
    interval_s: float

    def decide(self, inp: BalanceInput) -> list[Move]: ...


def _mean_last(series: tuple[float, ...], n: int) -> float:
    w = series[-n:]
    return sum(w) / len(w) if w else 0.0


@dataclass
class _Cluster:
    """Hosts that take VMs with a per-VM load view, for the simple contenders."""

    cpus: dict[str, int]
    memory: dict[str, int]
    cpu: dict[str, float]
    mem: dict[str, float]
    committed: dict[str, int]
    where: dict[int, str]
    leaving: dict[int, str]
    vms: list[VmLoad]
    load: dict[int, float]  # the contender's view of each VM's CPU
    rules: dict[int, VmRules] = field(default_factory=dict)

    def fits(self, vm: VmLoad, target: str) -> bool:
        if self.committed[target] + vm.memory_mb + RESERVE_MB > self.memory[target]:
            return False
        r = self.rules.get(vm.vmid, NO_RULES)
        return r is NO_RULES or r.breach(vm.vmid, target, self.where, vm.node,
                                         self.leaving) is None

    def move(self, vm: VmLoad, source: str, target: str) -> None:
        c = self.load[vm.vmid]
        self.cpu[source] -= c
        self.cpu[target] += c
        self.mem[source] -= vm.memory_used_mb
        self.mem[target] += vm.memory_used_mb
        self.committed[target] += vm.memory_mb
        self.where[vm.vmid] = target
        self.leaving[vm.vmid] = source


def _cluster(inp: BalanceInput, samples: int) -> _Cluster:
    hosts = sorted((h for h in inp.hosts if h.accepts), key=lambda h: h.name)
    c = _Cluster({h.name: h.cpus for h in hosts}, {h.name: h.memory_mb for h in hosts},
                 {h.name: _mean_last(h.cpu_other, samples) for h in hosts},
                 {h.name: 0.0 for h in hosts}, {h.name: 0 for h in hosts}, {}, {}, [], {},
                 index(inp.rules))
    for v in sorted(inp.vms, key=lambda v: v.vmid):
        load = _mean_last(v.cpu, samples)
        c.load[v.vmid] = load
        c.where[v.vmid] = v.moving_to or v.node
        if v.moving_to:
            c.leaving[v.vmid] = v.node
            if v.moving_to in c.committed:
                c.committed[v.moving_to] += v.memory_mb
        if v.node in c.cpus:
            c.cpu[v.node] += load
            c.mem[v.node] += v.memory_used_mb
            c.committed[v.node] += v.memory_mb
            if v.movable and not v.moving_to:
                c.vms.append(v)
    return c


def _move(vm: VmLoad, source: str, target: str, why: str) -> Move:
    return Move(vm.vmid, source, target, why, 0.0, 0.0, 0.0, 0.0)


class NoOp:
    name = "noop"

    def __init__(self, interval_s: float = 300.0) -> None:
        self.interval_s = interval_s

    def decide(self, inp: BalanceInput) -> list[Move]:
        return []


class ProxLB:
    def __init__(self, metric: str = "memory", threshold: float = 10.0,
                 interval_s: float = 12 * 3600.0) -> None:
        self.metric = metric
        self.threshold = threshold
        self.interval_s = interval_s
        self.name = "proxlb" if metric == "memory" else f"proxlb-{metric}"

    def decide(self, inp: BalanceInput) -> list[Move]:
        c = _cluster(inp, max(1, round(3600 / inp.step_s)))
        if len(c.cpus) < 2:
            return []

        def pct(n: str, delta: float = 0.0) -> float:
            if self.metric == "memory":
                return 100.0 * (c.mem[n] + delta) / c.memory[n]
            return 100.0 * (c.cpu[n] + delta) / c.cpus[n]

        def use(v: VmLoad) -> float:
            return v.memory_used_mb if self.metric == "memory" else c.load[v.vmid]

        moves: list[Move] = []
        moved: set[int] = set()
        for _ in range(len(c.vms)):
            order = sorted(c.cpus, key=lambda n: (pct(n), n))
            cold, hot = order[0], order[-1]
            spread = pct(hot) - pct(cold)
            if spread <= self.threshold:
                break
            rest = [pct(n) for n in order[1:-1]]
            done = False
            for v in sorted((v for v in c.vms if c.where[v.vmid] == hot and
                             v.vmid not in moved), key=lambda v: (-use(v), v.vmid)):
                if not c.fits(v, cold):
                    continue
                after = [*rest, pct(hot, -use(v)), pct(cold, use(v))]
                if max(after) - min(after) >= spread:  # overshoots: try a smaller guest
                    continue
                c.move(v, hot, cold)
                moves.append(_move(v, hot, cold, f"balanciness {spread:.1f}"))
                moved.add(v.vmid)
                done = True
                break
            if not done:
                break
        return moves


class PveDynamic:
    name = "pve"

    def __init__(self, interval_s: float = 10.0, threshold: float = 0.3, rounds: int = 3,
                 min_relative_gain: float = 0.1) -> None:
        self.interval_s = interval_s
        self.threshold = threshold
        self.rounds = rounds
        self.min_relative_gain = min_relative_gain
        self.over = 0

    @staticmethod
    def _imbalance(loads: list[float]) -> float:
        n = len(loads)
        return cv(loads) / math.sqrt(n - 1) if n >= 2 else 0.0

    def decide(self, inp: BalanceInput) -> list[Move]:
        if inp.migrations_running > 0:
            self.over = 0
            return []
        c = _cluster(inp, 1)
        names = sorted(c.cpus)

        def load(n: str, dc: float = 0.0, dm: float = 0.0) -> float:
            return ((c.cpu[n] + dc) / c.cpus[n] + (c.mem[n] + dm) / c.memory[n]) / 2

        loads = {n: load(n) for n in names}
        imb = self._imbalance(list(loads.values()))
        self.over = self.over + 1 if imb > self.threshold else 0
        if self.over < self.rounds:
            return []
        n = len(names)
        s = sum(loads.values())
        q = sum(x * x for x in loads.values())
        best: tuple[float, int, str] | None = None
        pick: tuple[VmLoad, str] | None = None
        for v in c.vms:
            src = v.node
            for t in names:
                if t == src or not c.fits(v, t):
                    continue
                a2 = load(src, -c.load[v.vmid], -v.memory_used_mb)
                b2 = load(t, c.load[v.vmid], v.memory_used_mb)
                s2 = s - loads[src] - loads[t] + a2 + b2
                q2 = q - loads[src] ** 2 - loads[t] ** 2 + a2 * a2 + b2 * b2
                mean = s2 / n
                new = (math.sqrt(max(q2 / n - mean * mean, 0.0)) / mean / math.sqrt(n - 1)
                       if mean > 0 else 0.0)
                key = (new, v.vmid, t)
                if best is None or key < best:
                    best, pick = key, (v, t)
        if best is None or pick is None or (imb - best[0]) / imb < self.min_relative_gain:
            return []
        self.over = 0
        return [_move(pick[0], pick[0].node, pick[1], f"imbalance {imb:.3f}")]


class Greedy:
    name = "greedy"

    def __init__(self, interval_s: float = 300.0, cpu_weight: float = 1.0,
                 memory_weight: float = 1.0, min_gain: float = 0.01,
                 max_moves: int = 10) -> None:
        self.interval_s = interval_s
        self.wc = cpu_weight
        self.wm = memory_weight
        self.min_gain = min_gain
        self.max_moves = max_moves

    def decide(self, inp: BalanceInput) -> list[Move]:
        c = _cluster(inp, max(1, round(300 / inp.step_s)))
        names = sorted(c.cpus)
        n = len(names)
        if n < 2:
            return []
        uc = {h: c.cpu[h] / c.cpus[h] for h in names}
        um = {h: c.mem[h] / c.memory[h] for h in names}
        sums = [sum(uc.values()), sum(x * x for x in uc.values()),
                sum(um.values()), sum(x * x for x in um.values())]

        def score(sc: float, qc: float, sm: float, qm: float) -> float:
            return (self.wc * math.sqrt(max(qc / n - (sc / n) ** 2, 0.0))
                    + self.wm * math.sqrt(max(qm / n - (sm / n) ** 2, 0.0)))

        moves: list[Move] = []
        moved: set[int] = set()
        while len(moves) < self.max_moves:
            cur = score(*sums)
            best: tuple[float, int, str] | None = None
            pick: tuple[VmLoad, str, list[float]] | None = None
            for v in c.vms:
                if v.vmid in moved:
                    continue
                src = c.where[v.vmid]
                dc, dm = c.load[v.vmid], v.memory_used_mb
                a_c2 = uc[src] - dc / c.cpus[src]
                a_m2 = um[src] - dm / c.memory[src]
                for t in names:
                    if t == src or not c.fits(v, t):
                        continue
                    b_c2 = uc[t] + dc / c.cpus[t]
                    b_m2 = um[t] + dm / c.memory[t]
                    new = [sums[0] - uc[src] - uc[t] + a_c2 + b_c2,
                           sums[1] - uc[src] ** 2 - uc[t] ** 2 + a_c2 ** 2 + b_c2 ** 2,
                           sums[2] - um[src] - um[t] + a_m2 + b_m2,
                           sums[3] - um[src] ** 2 - um[t] ** 2 + a_m2 ** 2 + b_m2 ** 2]
                    sc = score(*new)
                    key = (sc, v.vmid, t)
                    if best is None or key < best:
                        best, pick = key, (v, t, new)
            if best is None or pick is None or cur - best[0] < self.min_gain:
                break
            v, t, new = pick
            src = c.where[v.vmid]
            uc[src] -= c.load[v.vmid] / c.cpus[src]
            uc[t] += c.load[v.vmid] / c.cpus[t]
            um[src] -= v.memory_used_mb / c.memory[src]
            um[t] += v.memory_used_mb / c.memory[t]
            sums = new
            c.move(v, src, t)
            moved.add(v.vmid)
            moves.append(_move(v, src, t, f"score {cur:.4f} -> {best[0]:.4f}"))
        return moves


class Corral:
    name = "corral"

    def __init__(self, config: BalanceConfig | None = None) -> None:
        self.config = config or BalanceConfig(enabled=True)
        self.interval_s = self.config.interval_s

    def decide(self, inp: BalanceInput) -> list[Move]:
        return list(plan(inp, self.config).moves)


def all_contenders(span_s: float, overrides: Mapping[str, object] | None = None
                   ) -> list[Contender]:
    """Fresh contenders for one run. ProxLB's 12 h interval is scaled to a quarter of a
    span shorter than two days (never under an hour)."""
    proxlb_every = 12 * 3600.0 if span_s >= 2 * 86_400 else max(3600.0, span_s / 4)
    config = BalanceConfig.model_validate({"enabled": True, **(overrides or {})})
    return [NoOp(), ProxLB("memory", interval_s=proxlb_every),
            ProxLB("cpu", interval_s=proxlb_every), PveDynamic(), Greedy(),
            Corral(config)]
