"""Workloads for the balancer benchmark: generated from a seed, or read from a trace file.

Trace format (JSON; `bench/traces/small.json` is an example):

    {"step_s": 60,                       # seconds between samples
     "hosts": [{"name": "h01", "cpus": 32, "memory_mb": 131072,
                "maintenance": [[0, 120]]}],   # optional: step ranges [from, to) it is in
                                               # maintenance (takes no VMs, holds none)
     "vms": [{"vmid": 101, "host": "h01", "cores": 4, "memory_mb": 8192,
              "local_disk_mb": 0,              # optional
              "cpu": [1.2, 1.3, ...],          # cores demanded, one per step
              "memory_used_mb": [4000, ...],   # one per step, or one number
              "dirty_mb_s": [20, ...]}],       # optional: one per step, or one number
     "rules": [{"name": "web", "kind": "anti-affinity", "vms": [101, 102]}]}  # HA rules

Every VM's series has the same length (the number of steps). Pure data and its checks; the
files are read and written by bench/balance.py.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Any

from corral.ha.models import HARule

DAY_S = 86_400.0


@dataclass(frozen=True)
class HostSpec:
    name: str
    cpus: int
    memory_mb: int
    maintenance: tuple[tuple[int, int], ...] = ()

    def accepts(self, step: int) -> bool:
        return not any(a <= step < b for a, b in self.maintenance)


@dataclass(frozen=True)
class VmSpec:
    vmid: int
    host: str
    cores: int
    memory_mb: int
    cpu: list[float]
    memory_used_mb: list[float]
    dirty_mb_s: list[float]
    local_disk_mb: int = 0


@dataclass(frozen=True)
class Workload:
    name: str
    step_s: float
    steps: int
    hosts: tuple[HostSpec, ...]
    vms: tuple[VmSpec, ...]
    rules: tuple[HARule, ...] = ()
    notes: tuple[str, ...] = field(default=())


def _series(raw: Any, steps: int, what: str) -> list[float]:
    if isinstance(raw, int | float):
        return [float(raw)] * steps
    if not isinstance(raw, list) or len(raw) != steps:
        raise ValueError(f"{what}: expected a number or a list of {steps} numbers")
    return [float(x) for x in raw]


def from_trace(data: dict[str, Any], name: str = "trace") -> Workload:
    """A workload from a parsed trace; errors name the field."""
    step_s = float(data.get("step_s", 60))
    if step_s <= 0:
        raise ValueError("step_s: must be positive")
    hosts = []
    for i, h in enumerate(data.get("hosts") or []):
        try:
            hosts.append(HostSpec(str(h["name"]), int(h["cpus"]), int(h["memory_mb"]),
                                  tuple((int(a), int(b)) for a, b in h.get("maintenance", []))))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"hosts[{i}]: {e!r}") from e
    if not hosts:
        raise ValueError("hosts: at least one host")
    names = {h.name for h in hosts}
    raw_vms = data.get("vms") or []
    if not raw_vms:
        raise ValueError("vms: at least one VM")
    steps = len(raw_vms[0].get("cpu", []))
    if steps < 2:
        raise ValueError("vms[0].cpu: at least two samples")
    vms = []
    for i, v in enumerate(raw_vms):
        try:
            host = str(v["host"])
            if host not in names:
                raise ValueError(f"host {host} is not among the hosts")
            vms.append(VmSpec(
                int(v["vmid"]), host, int(v["cores"]), int(v["memory_mb"]),
                _series(v["cpu"], steps, "cpu"),
                _series(v["memory_used_mb"], steps, "memory_used_mb"),
                _series(v.get("dirty_mb_s", 10.0), steps, "dirty_mb_s"),
                int(v.get("local_disk_mb", 0))))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"vms[{i}]: {e}") from e
    rules = tuple(HARule.model_validate(r) for r in data.get("rules", []))
    return Workload(name, step_s, steps, tuple(hosts), tuple(vms), rules)


def to_trace(w: Workload) -> dict[str, Any]:
    return {
        "step_s": w.step_s,
        "hosts": [{"name": h.name, "cpus": h.cpus, "memory_mb": h.memory_mb,
                   **({"maintenance": [list(m) for m in h.maintenance]}
                      if h.maintenance else {})} for h in w.hosts],
        "vms": [{"vmid": v.vmid, "host": v.host, "cores": v.cores, "memory_mb": v.memory_mb,
                 "local_disk_mb": v.local_disk_mb,
                 "cpu": [round(x, 3) for x in v.cpu],
                 "memory_used_mb": [round(x) for x in v.memory_used_mb],
                 "dirty_mb_s": [round(x, 1) for x in v.dirty_mb_s]} for v in w.vms],
        "rules": [r.model_dump(exclude_defaults=True) for r in w.rules],
    }


HOST_SIZES = ((16, 64), (32, 128), (48, 192), (64, 256))  # (cpus, GiB)
RESERVE_MB = 512


def generate(seed: int, n_hosts: int, n_vms: int, span_s: float = DAY_S,
             step_s: float = 60.0) -> Workload:
    """A seeded workload: mixed host sizes; diurnal load with correlated groups and bursts;
    the last host freshly added (empty) and, from 4 hosts, the one before it back from
    maintenance after two hours (empty); anti-affinity, affinity and strict node rules; the
    VMs packed onto the other hosts unevenly."""
    rnd = random.Random(seed)
    steps = int(span_s / step_s)
    hosts = []
    for i in range(n_hosts):
        cpus, gib = rnd.choice(HOST_SIZES)
        hosts.append(HostSpec(f"h{i + 1:02d}", cpus, gib * 1024))
    fresh = {hosts[-1].name}
    if n_hosts >= 4:
        back = hosts[-2]
        hosts[-2] = HostSpec(back.name, back.cpus, back.memory_mb,
                             ((0, int(7200 / step_s)),))
        fresh.add(back.name)
    loaded = [h for h in hosts if h.name not in fresh]

    # Configured memory: about 70 % of the hosts that start with VMs.
    cores = [rnd.choice((1, 2, 2, 4, 4, 8)) for _ in range(n_vms)]
    ratio = [rnd.choice((1, 2, 2, 4)) for _ in range(n_vms)]
    room = sum(h.memory_mb - RESERVE_MB for h in loaded) * 0.70
    raw = [c * r for c, r in zip(cores, ratio, strict=True)]
    unit = room / sum(raw)
    memory = [max(512, int(x * unit / 256) * 256) for x in raw]

    # CPU: each VM a base level; groups share a daily phase and bursts.
    n_groups = max(3, n_vms // 12)
    group = [rnd.randrange(n_groups) for _ in range(n_vms)]
    phase = [rnd.gauss(0, 1.5) for _ in range(n_groups)]
    amp = [rnd.uniform(0.2, 0.7) for _ in range(n_groups)]
    bursts: list[list[tuple[int, int, float]]] = []
    for _ in range(n_groups):
        events = []
        t = 0
        while True:
            t += int(rnd.expovariate(1 / (6 * 3600 / step_s)))
            if t >= steps:
                break
            events.append((t, t + int(rnd.uniform(600, 3600) / step_s),
                           rnd.uniform(1.5, 3.0)))
        bursts.append(events)
    base = [rnd.betavariate(1.5, 4) * c for c in cores]
    # Scale so the cluster's mean CPU demand is about 45 % of all CPUs.
    total_cpus = sum(h.cpus for h in hosts)
    scale = 0.45 * total_cpus / max(sum(base), 1e-9)
    base = [b * scale for b in base]
    vms: list[VmSpec] = []
    for i in range(n_vms):
        g = group[i]
        cpu: list[float] = []
        mem: list[float] = []
        dirty: list[float] = []
        frac = rnd.uniform(0.3, 0.85)
        drift = rnd.uniform(0, 2 * math.pi)
        dirty_per_core = rnd.uniform(2, 60)
        ev = bursts[g]
        for t in range(steps):
            x = t * step_s
            daily = 1 + amp[g] * math.sin(2 * math.pi * x / DAY_S + phase[g])
            burst = 1.0
            for a, b, f in ev:
                if a <= t < b:
                    burst = f
                    break
            level = base[i] * daily * burst * max(0.2, rnd.gauss(1, 0.15))
            c = min(max(level, 0.01), float(cores[i]))
            cpu.append(c)
            m = memory[i] * min(0.98, frac * (1 + 0.08 * math.sin(x / 9000 + drift))
                                * (1.1 if burst > 1 else 1.0))
            mem.append(m)
            dirty.append(dirty_per_core * c)
        disk = rnd.choice((10_240, 20_480, 40_960)) if rnd.random() < 0.08 else 0
        vms.append(VmSpec(100 + i, "", cores[i], memory[i], cpu, mem, dirty, disk))

    rules, placed = _place(rnd, loaded, vms)
    specs = tuple(replace(v, host=placed[v.vmid]) for v in vms)
    return Workload(f"seed{seed}-{n_hosts}x{n_vms}", step_s, steps, tuple(hosts), specs,
                    tuple(rules))


def _place(rnd: random.Random, loaded: list[HostSpec], vms: list[VmSpec]
           ) -> tuple[list[HARule], dict[int, str]]:
    """Rules, and a start placement on the loaded hosts that keeps them and fits memory:
    uneven on purpose (a random host preference per VM, skewed towards a few hosts)."""
    free = {h.name: h.memory_mb - RESERVE_MB for h in loaded}
    names = [h.name for h in loaded]
    weight = {n: rnd.uniform(0.3, 3.0) for n in names}
    ids = [v.vmid for v in vms]
    mem = {v.vmid: v.memory_mb for v in vms}
    rnd.shuffle(ids)
    rules: list[HARule] = []
    pos = 0
    apart: dict[int, set[int]] = {}
    together: dict[int, int] = {}
    strict: dict[int, list[str]] = {}
    for k in range(len(ids) // 20):
        size = min(3, len(names)) if rnd.random() < 0.5 else 2
        if size < 2 or pos + size > len(ids):
            break
        group = ids[pos:pos + size]
        pos += size
        rules.append(HARule(name=f"apart{k}", kind="anti-affinity", vms=sorted(group)))
        for v in group:
            apart[v] = set(group) - {v}
    for k in range(len(ids) // 40):
        if pos + 2 > len(ids):
            break
        a, b = ids[pos:pos + 2]
        pos += 2
        rules.append(HARule(name=f"with{k}", kind="affinity", vms=sorted((a, b))))
        together[b] = a
    for k in range(len(ids) // 50):
        if pos + 1 > len(ids) or len(names) < 2:
            break
        v = ids[pos]
        pos += 1
        allowed = sorted(rnd.sample(names, 2))
        rules.append(HARule(name=f"only{k}", kind="node-preference", vms=[v],
                            nodes={n: 1 for n in allowed}, strict=True))
        strict[v] = allowed
    placed: dict[int, str] = {}
    order = sorted(ids, key=lambda v: (v in together, -mem[v], v))
    for v in order:
        if v in together and together[v] in placed:
            options = [placed[together[v]]]
        else:
            options = strict.get(v, names)
        options = [n for n in options
                   if free[n] >= mem[v] and not any(placed.get(o) == n
                                                    for o in apart.get(v, ()))]
        if not options:
            options = [n for n in names if free[n] >= mem[v]] or names
        n = rnd.choices(options, [weight[o] for o in options])[0]
        placed[v] = n
        free[n] -= mem[v]
    return rules, placed
