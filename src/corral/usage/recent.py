"""The last minutes of a host and its VMs, folded from the usage history's 10 s samples into
minute points: what the agent publishes in etcd for the load balancer (`RecentUsage`,
docs/usage-history.md). Pure: the agent's sampling pass feeds it.

Points are slots of `step` seconds aligned on Unix time, as the history's archives are. A
VM is in the record while it was in the newest sample (it runs here now); its points before
it came here are gaps. A sample older than the newest point (the clock stepped back) is left
out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from corral.cluster.models import RECENT_POINTS, RECENT_STEP, RecentUsage, VmRecent

MIB = 1024 * 1024
CORES_DECIMALS = 3  # a thousandth of a core
CPU_DECIMALS = 4  # as the history's fractions


@dataclass(frozen=True)
class HostSample:
    cpu: float | None  # busy share of all CPUs, 0..1
    memory_used_bytes: int | None
    busy_cores: float | None  # CPU seconds per second, all CPUs together


@dataclass(frozen=True)
class VmSample:
    cores: float | None  # CPU seconds per second of the QEMU process; None: no rate yet
    resident_bytes: int


@dataclass
class _Stat:
    """Average and maximum of the figures folded in (None ones are not counted)."""

    n: int = 0
    total: float = 0.0
    top: float = 0.0

    def add(self, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            return
        value = max(value, 0.0)
        self.top = value if self.n == 0 else max(self.top, value)
        self.total += value
        self.n += 1

    def avg(self, decimals: int) -> float | None:
        return round(self.total / self.n, decimals) if self.n else None

    def max(self, decimals: int) -> float | None:
        return round(self.top, decimals) if self.n else None


@dataclass
class _Point:
    slot: int
    cpu: _Stat = field(default_factory=_Stat)
    other: _Stat = field(default_factory=_Stat)
    memory_used: int | None = None
    vms: dict[int, _Stat] = field(default_factory=dict)


def other_cores(host: HostSample, vms: Mapping[int, VmSample]) -> float | None:
    """The host's busy cores outside its VMs' QEMU processes: honest only when the host's
    rate and every VM's are known over the same pass (a VM just started has none yet)."""
    if host.busy_cores is None or any(v.cores is None for v in vms.values()):
        return None
    return max(host.busy_cores - sum(v.cores or 0.0 for v in vms.values()), 0.0)


class RecentWindow:
    def __init__(self, step: int = RECENT_STEP, points: int = RECENT_POINTS) -> None:
        self.step = step
        self.points = points
        self._points: list[_Point] = []  # oldest first, at most `points`, slots increasing
        self._last_at: float | None = None
        self._vms_now: dict[int, VmSample] = {}  # the newest sample's VMs

    def add(self, t: float, host: HostSample, vms: Mapping[int, VmSample]) -> bool:
        """Fold one sampling pass taken at wall time t; False when it is older than the
        newest point."""
        slot = math.floor(t / self.step)
        if self._points and slot < self._points[-1].slot:
            return False
        if not self._points or slot > self._points[-1].slot:
            self._points.append(_Point(slot))
            first = slot - self.points + 1
            self._points = [p for p in self._points if p.slot >= first]
        point = self._points[-1]
        point.cpu.add(host.cpu)
        point.other.add(other_cores(host, vms))
        if host.memory_used_bytes is not None:
            point.memory_used = host.memory_used_bytes
        for vmid, sample in vms.items():
            point.vms.setdefault(vmid, _Stat()).add(sample.cores)
        self._last_at = t if self._last_at is None else max(self._last_at, t)
        self._vms_now = dict(vms)
        return True

    def record(self) -> RecentUsage | None:
        """The window ending with the newest point; None before the first sample."""
        if not self._points or self._last_at is None:
            return None
        last = self._points[-1].slot
        by_slot = {p.slot: p for p in self._points}
        window = [by_slot.get(s) for s in range(last - self.points + 1, last + 1)]

        def series(get: Callable[[_Point], float | None]) -> list[float | None]:
            return [None if p is None else get(p) for p in window]

        def vm_series(vmid: int, top: bool) -> list[float | None]:
            stats = [None if p is None else p.vms.get(vmid) for p in window]
            return [None if s is None else (s.max if top else s.avg)(CORES_DECIMALS)
                    for s in stats]

        return RecentUsage(
            step_seconds=self.step,
            last_at=self._last_at,
            cpu_avg=series(lambda p: p.cpu.avg(CPU_DECIMALS)),
            cpu_max=series(lambda p: p.cpu.max(CPU_DECIMALS)),
            memory_used_mib=[None if p is None or p.memory_used is None
                             else p.memory_used // MIB for p in window],
            other_cores=series(lambda p: p.other.avg(CORES_DECIMALS)),
            vms={vmid: VmRecent(
                cores_avg=vm_series(vmid, top=False),
                cores_max=vm_series(vmid, top=True),
                memory_mib=sample.resident_bytes // MIB,
            ) for vmid, sample in sorted(self._vms_now.items())},
        )
