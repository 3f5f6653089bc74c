"""The balancer's score, kept up to date move by move in constant time. Pure.

A host's CPU load is a high percentile of its demand: the sum of its VMs' recent means
(each raised by its rising trend) plus z times the square root of the sum of their
variances, z the normal quantile of the configured percentile. Summing each VM's own
percentile instead would count every VM at its peak at once and make hosts with many
small noisy VMs look far busier than they ever are.

Score = imbalance + hot penalty, where
- imbalance is the weighted mean of the coefficients of variation (std / mean, the mean
  taken as at least MEAN_FLOOR) of host CPU use (load / CPUs) and host memory use (used /
  memory), over hosts that take VMs: a fraction, so hosts of different sizes compare;
- the hot penalty is, over hosts, HOT_WEIGHT times the square of how far CPU use is above
  `hot_cpu`: a hot host is relieved even when the spread is small, the hottest first.
Only sums and sums of squares are kept, so trying a move costs O(1) whatever the cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HOT_WEIGHT = 10.0
# A spread is divided by the hosts' mean use, but never by less than this: hosts at 2 % and
# 1 % CPU differ by half, yet moving a VM between them serves nobody. Below 20 % mean use
# the spread counts as it is (in points of use), so a nearly idle cluster stays put.
MEAN_FLOOR = 0.2


@dataclass
class HostState:
    name: str
    cpus: int
    memory_mb: int
    cpu: float  # cores: the sum of its VMs' levels + other work
    mem: float  # MiB used by its VMs
    committed_mb: int  # configured memory of the VMs meant to run there (and arriving)
    vcpus: int
    cpu_var: float = 0.0  # the sum of its VMs' CPU variances (cores squared)


def _cv(total: float, squares: float, n: int) -> float:
    if n == 0 or total <= 0:
        return 0.0
    mean = total / n
    var = max(squares / n - mean * mean, 0.0)
    return math.sqrt(var) / max(mean, MEAN_FLOOR)


class Score:
    def __init__(self, hosts: list[HostState], cpu_weight: float, memory_weight: float,
                 hot_cpu: float, z: float = 0.0) -> None:
        self.wc = cpu_weight / (cpu_weight + memory_weight)
        self.wm = memory_weight / (cpu_weight + memory_weight)
        self.hot = hot_cpu
        self.z = z
        self.n = len(hosts)
        self.sc = sum(self.uc(h) for h in hosts)
        self.qc = sum(self.uc(h) ** 2 for h in hosts)
        self.sm = sum(self.um(h) for h in hosts)
        self.qm = sum(self.um(h) ** 2 for h in hosts)
        self.pen = sum(self.over(self.uc(h)) for h in hosts)

    def over(self, u: float) -> float:
        d = u - self.hot
        return HOT_WEIGHT * d * d if d > 0 else 0.0

    def cpu_use(self, cpu: float, var: float, cpus: int) -> float:
        if cpus <= 0:
            return 0.0
        return (cpu + self.z * math.sqrt(var if var > 0 else 0.0)) / cpus

    def uc(self, h: HostState) -> float:
        return self.cpu_use(h.cpu, h.cpu_var, h.cpus)

    @staticmethod
    def um(h: HostState) -> float:
        return h.mem / h.memory_mb if h.memory_mb > 0 else 0.0

    def imbalance(self, sc: float | None = None, qc: float | None = None,
                  sm: float | None = None, qm: float | None = None) -> float:
        return (self.wc * _cv(self.sc if sc is None else sc, self.qc if qc is None else qc,
                              self.n)
                + self.wm * _cv(self.sm if sm is None else sm, self.qm if qm is None else qm,
                                self.n))

    def value(self) -> float:
        return self.imbalance() + self.pen

    def try_move(self, a: HostState, b: HostState, cpu: float, var: float, mem: float
                 ) -> tuple[float, float]:
        """(score, imbalance) if a VM of CPU level cpu, variance var and mem MiB used moved
        from a to b."""
        ca, cb = self.uc(a), self.uc(b)
        ma, mb = self.um(a), self.um(b)
        ca2 = self.cpu_use(a.cpu - cpu, a.cpu_var - var, a.cpus)
        cb2 = self.cpu_use(b.cpu + cpu, b.cpu_var + var, b.cpus)
        ma2, mb2 = (a.mem - mem) / a.memory_mb, (b.mem + mem) / b.memory_mb
        sc = self.sc - ca - cb + ca2 + cb2
        qc = self.qc - ca * ca - cb * cb + ca2 * ca2 + cb2 * cb2
        sm = self.sm - ma - mb + ma2 + mb2
        qm = self.qm - ma * ma - mb * mb + ma2 * ma2 + mb2 * mb2
        over = self.over
        pen = self.pen - over(ca) - over(cb) + over(ca2) + over(cb2)
        imb = self.imbalance(sc, qc, sm, qm)
        return imb + pen, imb

    def try_add(self, h: HostState, cpu: float, var: float, mem: float) -> float:
        """The score with a VM added to h (a new or displaced VM)."""
        c, m = self.uc(h), self.um(h)
        c2, m2 = self.cpu_use(h.cpu + cpu, h.cpu_var + var, h.cpus), (h.mem + mem) / h.memory_mb
        sc, qc = self.sc - c + c2, self.qc - c * c + c2 * c2
        sm, qm = self.sm - m + m2, self.qm - m * m + m2 * m2
        return self.imbalance(sc, qc, sm, qm) + self.pen - self.over(c) + self.over(c2)

    def apply(self, a: HostState, b: HostState, cpu: float, var: float, mem: float,
              mem_mb: int, cores: int) -> None:
        """Record the move in the sums and the two hosts. The source keeps the VM's memory
        committed: it is held there until the migration ends, so nothing planned in the same
        round may count on it."""
        for h, sign in ((a, -1.0), (b, 1.0)):
            c, m = self.uc(h), self.um(h)
            self.sc -= c
            self.qc -= c * c
            self.sm -= m
            self.qm -= m * m
            self.pen -= self.over(c)
            h.cpu += sign * cpu
            h.cpu_var += sign * var
            h.mem += sign * mem
            if sign > 0:
                h.committed_mb += mem_mb
            h.vcpus += int(sign) * cores
            c, m = self.uc(h), self.um(h)
            self.sc += c
            self.qc += c * c
            self.sm += m
            self.qm += m * m
            self.pen += self.over(c)
