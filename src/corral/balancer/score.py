"""The balancer's score, kept up to date move by move in constant time. Pure.

Score = imbalance + hot penalty, where
- imbalance is the weighted mean of the coefficients of variation (std / mean) of host CPU
  use (demand / CPUs) and host memory use (used / memory), over hosts that take VMs: a
  fraction, so hosts of different sizes compare;
- the hot penalty is the sum over hosts of how far CPU use is above `hot_cpu`: a hot host
  is relieved even when the spread is small.
Only sums and sums of squares are kept, so trying a move costs O(1) whatever the cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class HostState:
    name: str
    cpus: int
    memory_mb: int
    cpu: float  # cores demanded (VMs' robust view + other work)
    mem: float  # MiB used by its VMs
    committed_mb: int  # configured memory of the VMs meant to run there (and arriving)
    vcpus: int


def _cv(total: float, squares: float, n: int) -> float:
    if n == 0 or total <= 0:
        return 0.0
    mean = total / n
    var = max(squares / n - mean * mean, 0.0)
    return math.sqrt(var) / mean


class Score:
    def __init__(self, hosts: list[HostState], cpu_weight: float, memory_weight: float,
                 hot_cpu: float) -> None:
        self.wc = cpu_weight / (cpu_weight + memory_weight)
        self.wm = memory_weight / (cpu_weight + memory_weight)
        self.hot = hot_cpu
        self.n = len(hosts)
        self.sc = sum(self.uc(h) for h in hosts)
        self.qc = sum(self.uc(h) ** 2 for h in hosts)
        self.sm = sum(self.um(h) for h in hosts)
        self.qm = sum(self.um(h) ** 2 for h in hosts)
        self.pen = sum(max(self.uc(h) - self.hot, 0.0) for h in hosts)

    @staticmethod
    def uc(h: HostState) -> float:
        return h.cpu / h.cpus if h.cpus > 0 else 0.0

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

    def try_move(self, a: HostState, b: HostState, cpu: float, mem: float
                 ) -> tuple[float, float]:
        """(score, imbalance) if a VM using cpu cores and mem MiB moved from a to b."""
        ca, cb = self.uc(a), self.uc(b)
        ma, mb = self.um(a), self.um(b)
        ca2, cb2 = (a.cpu - cpu) / a.cpus, (b.cpu + cpu) / b.cpus
        ma2, mb2 = (a.mem - mem) / a.memory_mb, (b.mem + mem) / b.memory_mb
        sc = self.sc - ca - cb + ca2 + cb2
        qc = self.qc - ca * ca - cb * cb + ca2 * ca2 + cb2 * cb2
        sm = self.sm - ma - mb + ma2 + mb2
        qm = self.qm - ma * ma - mb * mb + ma2 * ma2 + mb2 * mb2
        hot = self.hot
        pen = (self.pen - max(ca - hot, 0.0) - max(cb - hot, 0.0)
               + max(ca2 - hot, 0.0) + max(cb2 - hot, 0.0))
        imb = self.imbalance(sc, qc, sm, qm)
        return imb + pen, imb

    def apply(self, a: HostState, b: HostState, cpu: float, mem: float, mem_mb: int,
              cores: int) -> None:
        """Record the move in the sums and the two hosts. The source keeps the VM's memory
        committed: it is held there until the migration ends, so nothing planned in the same
        round may count on it."""
        for h, sign in ((a, -1.0), (b, 1.0)):
            c, m = self.uc(h), self.um(h)
            self.sc -= c
            self.qc -= c * c
            self.sm -= m
            self.qm -= m * m
            self.pen -= max(c - self.hot, 0.0)
            h.cpu += sign * cpu
            h.mem += sign * mem
            if sign > 0:
                h.committed_mb += mem_mb
            h.vcpus += int(sign) * cores
            c, m = self.uc(h), self.um(h)
            self.sc += c
            self.qc += c * c
            self.sm += m
            self.qm += m * m
            self.pen += max(c - self.hot, 0.0)
