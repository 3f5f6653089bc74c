"""What the load balancer decides on and what it decides: plain, frozen data, no I/O.

The shell (the manager) builds a `BalanceInput` from etcd: hosts with their size and whether
they take VMs, running VMs with their recent usage, the HA rules and the balancer's past
moves. `planner.plan` turns it into a `Plan`: moves, and for every VM considered but left
where it is, why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field, model_validator

from corral.cluster.models import Model
from corral.ha.models import HARule
from corral.scheduler.capacity import HOST_RESERVE_MB

# The rule type is HA's own: a rule binds HA, operators and the balancer alike.
Rule = HARule


@dataclass(frozen=True)
class HostLoad:
    name: str
    cpus: int
    memory_mb: int
    # False for a host offline, in maintenance or shutting down: never a target, and its
    # VMs are not moved by the balancer (maintenance evacuates itself; an offline host's VMs
    # are HA's business).
    accepts: bool
    why_not: str = ""
    # Cores busy on the host with other work than its VMs, one sample per step, oldest first.
    cpu_other: tuple[float, ...] = ()


@dataclass(frozen=True)
class VmLoad:
    vmid: int
    node: str
    cores: int
    memory_mb: int  # configured: what capacity is checked against
    # CPU demand in cores, one sample per step, oldest first; empty: not known yet.
    cpu: tuple[float, ...]
    memory_used_mb: float
    dirty_mb_s: float | None = None  # pages dirtied per second; None: unknown
    local_disk_mb: int = 0  # disks a move copies along
    movable: bool = True
    why_fixed: str = ""
    # The host it is migrating to, if a migration runs: its configured memory counts there
    # too until the migration ends (as the scheduler's capacity check counts it).
    moving_to: str = ""


@dataclass(frozen=True)
class PastMove:
    vmid: int
    source: str
    target: str
    at: float


@dataclass(frozen=True)
class BalanceInput:
    now: float
    step_s: float  # seconds between two samples of the usage series
    hosts: tuple[HostLoad, ...]
    vms: tuple[VmLoad, ...]  # running VMs only; their configured memory counts on their host
    rules: tuple[HARule, ...] = ()
    history: tuple[PastMove, ...] = ()  # the balancer's (and operators') recent moves
    migrations_running: int = 0


class BalanceConfig(Model):
    """Cluster-wide balancer settings. Out-of-range values are refused naming the field."""

    enabled: bool = False
    interval_s: float = Field(default=60.0, ge=10.0, le=86_400.0)  # between two rounds
    cpu_weight: float = Field(default=1.0, ge=0.0, le=100.0)
    memory_weight: float = Field(default=1.0, ge=0.0, le=100.0)
    # vCPUs allowed per physical CPU on a host: a move never takes a host past it.
    cpu_overcommit: float = Field(default=4.0, gt=0.0, le=64.0)
    # Kept free on every host: configured memory of its VMs + this <= its memory.
    memory_reserve_mb: int = Field(default=HOST_RESERVE_MB, ge=0, le=1_048_576)
    # The robust view of a host's CPU: this percentile of its demand over window_s (from its
    # VMs' means and variances), each VM raised to where its trend points half-way through
    # horizon_s when its load is rising.
    percentile: float = Field(default=80.0, ge=50.0, le=100.0)
    window_s: float = Field(default=900.0, ge=60.0, le=7 * 86_400.0)
    horizon_s: float = Field(default=1800.0, ge=60.0, le=7 * 86_400.0)
    # Imbalance (weighted coefficient of variation of host load) below which nothing moves,
    # unless a host is hot. A round that acts goes down to half of it.
    threshold: float = Field(default=0.06, ge=0.0, le=10.0)
    # A host whose CPU demand is above this fraction of its CPUs is hot: it is relieved
    # whatever the imbalance.
    hot_cpu: float = Field(default=0.9, gt=0.0, le=2.0)
    # A move must lower the score by at least this fraction of it, and by min_gain_abs: a
    # move that only shaves noise off a balanced cluster is not worth a migration. On more
    # than 8 hosts a move's gain counts n / 8 times (see planner._reach).
    min_gain: float = Field(default=0.04, ge=0.0, le=1.0)
    min_gain_abs: float = Field(default=0.01, ge=0.0, le=1.0)
    max_moves_per_round: int = Field(default=4, ge=0, le=1000)
    max_concurrent: int = Field(default=4, ge=1, le=100)
    cooldown_s: float = Field(default=900.0, ge=0.0, le=30 * 86_400.0)
    # A VM never goes back to a host it left less than this many cooldowns ago.
    pingpong_factor: float = Field(default=8.0, ge=1.0, le=100.0)
    # Migration cost model: seconds = memory / (bandwidth - dirty rate) + local disks /
    # bandwidth; a VM that dirties memory as fast as it is copied never moves.
    bandwidth_mb_s: float = Field(default=1000.0, gt=0.0, le=1_000_000.0)

    @model_validator(mode="after")
    def _weights(self) -> BalanceConfig:
        if self.cpu_weight + self.memory_weight <= 0:
            raise ValueError("cpu_weight: cpu_weight and memory_weight cannot both be 0")
        return self


@dataclass(frozen=True)
class Move:
    vmid: int
    source: str
    target: str
    reason: str
    gain: float  # how much the move lowers the score (weighted CV + hot-host penalty)
    cost_s: float  # the cost model's estimate of the migration's duration
    imbalance_before: float
    imbalance_after: float


@dataclass(frozen=True)
class Plan:
    moves: tuple[Move, ...]
    imbalance: float  # before the moves
    notes: tuple[str, ...] = ()
    # VMs considered but not moved, and why (cooldown, ping-pong guard, opt-out, rules...).
    held: dict[int, str] = field(default_factory=dict)
