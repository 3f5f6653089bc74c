"""HA records kept in etcd: per-VM settings, placement rules, fence confirmations, and the
manager's own HA state (persisted so a new leader continues from etcd alone)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from corral.cluster import keys
from corral.cluster.models import MAX_VMID, MIN_VMID, Model, ShutdownPolicy, check_name
from corral.cluster.records import Problem, vmid_of

if TYPE_CHECKING:  # the balancer's model uses HA's rules: no import at run time
    from corral.balancer.model import BalanceConfig


class HARequest(StrEnum):
    """What the operator wants of an HA VM (Proxmox: the resource's `state`)."""

    STARTED = "started"  # keep it running: restart, relocate, recover
    STOPPED = "stopped"  # keep it stopped, but still move it off a failed host
    DISABLED = "disabled"  # stopped and left alone on a failed host
    IGNORED = "ignored"  # HA looks away entirely (manual work on the VM)


class HASettings(Model):
    vmid: int = Field(ge=MIN_VMID, le=MAX_VMID)
    state: HARequest = HARequest.STARTED
    max_restart: int = Field(default=1, ge=0, le=10)
    max_relocate: int = Field(default=1, ge=0, le=10)


class HARule(Model):
    """anti-affinity: the listed VMs never share a host. affinity: the listed VMs run on one
    host together. node-preference: the listed VMs go to the highest-priority eligible host;
    strict forbids hosts not listed; failback moves a VM back (live, once) when a host it
    prefers returns and stays online for a while."""

    name: str
    kind: Literal["anti-affinity", "affinity", "node-preference"]
    vms: list[int] = Field(min_length=1)
    nodes: dict[str, int] = Field(default_factory=dict)
    strict: bool = False
    failback: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v)

    @field_validator("vms")
    @classmethod
    def _vms(cls, v: list[int]) -> list[int]:
        if any(not MIN_VMID <= x <= MAX_VMID for x in v):
            raise ValueError(f"VM ids are {MIN_VMID}..{MAX_VMID}")
        if len(set(v)) != len(v):
            raise ValueError("lists a VM twice")
        return v

    @model_validator(mode="after")
    def _shape(self) -> HARule:
        if self.kind in ("anti-affinity", "affinity"):
            if len(self.vms) < 2:
                raise ValueError(f"vms: {self.kind} needs at least two VMs")
            if self.nodes or self.strict:
                raise ValueError(f"nodes: {self.kind} takes no nodes")
            if not self.failback:
                raise ValueError("failback: applies to node-preference rules only")
        elif not self.nodes:
            raise ValueError("nodes: node-preference needs at least one node")
        for n in self.nodes:
            check_name(n)
        return self


class HAConfig(Model):
    """Cluster-wide HA settings."""

    # What a clean shutdown of a host does with its VMs (Proxmox's default: conditional).
    shutdown_policy: ShutdownPolicy = ShutdownPolicy.CONDITIONAL


class FenceConfirmation(Model):
    """Written by a fence agent (IPMI/Redfish) once it saw the host powered off."""

    node: str
    at: float
    by: str = "fence-agent"


class VMStatusHA(StrEnum):
    """The manager's view of an HA VM, close to what Proxmox admins know."""

    REQUEST_START = "request_start"
    STARTED = "started"
    REQUEST_STOP = "request_stop"
    STOPPED = "stopped"
    FENCE = "fence"  # its host is lost; waiting until the host is surely fenced
    RECOVERY = "recovery"  # its host is fenced; being (or waiting to be) started elsewhere
    MIGRATE = "migrate"  # moving (live migration, or relocation after failed restarts)
    ERROR = "error"  # gave up: see reason; `corral ha set` clears it
    DISABLED = "disabled"
    IGNORED = "ignored"
    FREEZE = "freeze"


class NodeStatusHA(StrEnum):
    ONLINE = "online"
    UNKNOWN = "unknown"  # never seen with facts (no info): not a place for VMs
    FENCE = "fence"  # lease gone since lost_at; its watchdog may not have fired yet
    FENCED = "fenced"  # surely without running VMs: watchdog deadline passed or confirmed
    # (or the host shut down cleanly, having stopped them, under policy failover or migrate)
    # Shut down cleanly under policy freeze: its VMs are stopped and wait for its return.
    SHUTDOWN = "shutdown"
    # Lease gone while in maintenance with nothing meant to run on it: nothing to fence or
    # recover, its VMs stay where they are for its return.
    MAINTENANCE = "maintenance"


class VMHAState(Model):
    status: VMStatusHA
    node: str = ""
    since: float = 0.0  # when status last changed
    restarts: int = 0
    relocates: int = 0
    attempt: int = 0  # numbers the manager's tasks on this VM, so task ids never repeat
    task: str | None = None  # the manager's task being waited for
    running_since: float | None = None
    reason: str = ""
    # Hosts where it failed to start in this round of relocations, in order: each is tried
    # once; emptied once it runs.
    tried: list[str] = Field(default_factory=list)
    # The host return a failback was made for ("<host>@<online since>"), so it happens once.
    failback: str = ""
    # The breach a corrective move was last made for ("<rule>@<host>"): if the VM still
    # breaks it there, that move failed, and it is tried again only after stable_after.
    rule_move: str = ""
    # The placement generation HA moved the VM to (recovery, relocation, a start off a host
    # in maintenance) and still owes a start on: any QEMU found there before that start was
    # left by something else (an unfinished migration's incoming QEMU) and proves nothing.
    owes_start: int | None = None


class NodeHAState(Model):
    status: NodeStatusHA
    lost_at: float | None = None  # wall clock, for people: never used for a deadline
    fenced_at: float | None = None  # wall clock, for people
    reason: str = ""
    # Deadlines run on the manager's monotonic clock, and only within the term that measured
    # them: a new manager starts every wait afresh.
    term: int = 0
    lost_mono: float | None = None  # when this term first saw the lease gone
    online_since: float | None = None  # monotonic, this term: when it was first seen online
    fence_mono: float | None = None  # monotonic, this term: when the wait for its fence ends


class HAState(Model):
    vms: dict[int, VMHAState] = Field(default_factory=dict)
    nodes: dict[str, NodeHAState] = Field(default_factory=dict)


@dataclass(frozen=True)
class HAInputs:
    """Everything HA reads besides the cluster snapshot."""

    settings: dict[int, HASettings] = field(default_factory=dict)
    rules: list[HARule] = field(default_factory=list)
    state: HAState = field(default_factory=HAState)
    fenced: dict[str, FenceConfirmation] = field(default_factory=dict)
    # The manager's term (its election token) and its monotonic clock, passed in by the
    # shell: waits are measured on these, never on snap.now (a wall clock may jump). None:
    # snap.now stands in (tests, the simulator's single clock).
    term: int = 0
    mono: float | None = None
    # HA records left out because they do not decode (reported in `ha status`).
    problems: tuple[Problem, ...] = ()
    # The balancer's settings: its weights rank the hosts a VM may go to. None: defaults.
    scoring: BalanceConfig | None = None

    @property
    def rule_problems(self) -> tuple[Problem, ...]:
        """The HA rules that exist but do not decode."""
        return tuple(p for p in self.problems if p.key.startswith(keys.HA_RULES))

    @property
    def unreadable_settings(self) -> frozenset[int]:
        """VMs whose HA settings exist but do not decode: HA leaves them as they are."""
        return frozenset(v for p in self.problems
                         if (v := vmid_of(p.key)) is not None and p.key.startswith(keys.HA))


@dataclass(frozen=True)
class HATiming:
    """The timing rule: a lost host is fenced at lost_at + watchdog_timeout + margin."""

    lease_ttl: float = 9.0
    watchdog_timeout: float = 5.0
    margin: float = 2.0
    start_timeout: float = 60.0  # a start task not finished by then counts as failed
    stable_after: float = 60.0  # running this long resets the restart/relocate counters
    shutdown_timeout: float = 60.0
    failback_hold: float = 60.0  # a preferred host online this long gets its VMs back

    def __post_init__(self) -> None:
        if not 0 < self.watchdog_timeout < self.lease_ttl:
            raise ValueError("watchdog_timeout must be positive and below lease_ttl")
