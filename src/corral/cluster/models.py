"""Every record Corral keeps in etcd, as a validated pydantic model.

Records are validated on the way in (store writes) and on the way out (store reads, where one
that does not decode is reported and skipped: `cluster.records`), so a malformed record is
dealt with at the edge, never a surprise deep inside. API request bodies are `Request`s.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
STORAGE_ID_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
# A volume id is "<storage>:<file name>"; the file name never holds a path separator.
VOLUME_RE = re.compile(r"^(?P<storage>[a-z][a-z0-9-]{0,31}):(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)$")
MIN_VMID = 100
MAX_VMID = 999_999_999


class Record(BaseModel):
    """What Corral keeps in etcd.

    During a rolling upgrade a newer version writes fields this one does not know. They are
    accepted and kept on the model, so a read-modify-write here (model_copy) writes them back
    instead of silently dropping a newer version's setting; they do not count in comparisons,
    which are about what this version understands.
    """

    model_config = ConfigDict(extra="allow")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self.__dict__ == other.__dict__


class Request(BaseModel):
    """What an operator sends: an unknown field is a mistake (a typo), refused naming it."""

    model_config = ConfigDict(extra="forbid")


# The former name of Record.
Model = Record


def check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError("must be 1-63 letters, digits or '-', not starting or ending with '-'")
    return value


# --- nodes ---------------------------------------------------------------------------------


class NodeInfo(Record):
    """Static facts a host publishes when its agent starts."""

    name: str
    cpus: int
    memory_mb: int
    address: str = "127.0.0.1"
    agent_url: str = ""  # where the API reaches this host's agent (serial console)
    accel: Literal["kvm", "tcg"] = "tcg"
    lease_ttl: float | None = None
    # Seconds after a missed renewal until the host's watchdog kills its VMs; 0: no watchdog
    # (its VMs are never recovered elsewhere without a confirmed power-off); None: unknown.
    watchdog_timeout: float | None = None
    # Seconds one lease renewal attempt may take (the watchdog is fed right after one
    # succeeds): with lease_ttl it tells how long the host may outlive its lease, if at all.
    renew_interval: float | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    started_at: float = Field(default_factory=time.time)


class NodeUsage(Record):
    """The latest usage sample of a host."""

    cpu: float  # fraction of all cpus, 0..1
    memory_used_mb: int
    memory_total_mb: int
    load1: float = 0.0
    vms_running: int = 0
    # The file system of the host's data directory, where its `dir` storage keeps the VMs'
    # disks; None from an agent that does not say.
    disk_used_mb: int | None = None
    disk_total_mb: int | None = None
    sampled_at: float = Field(default_factory=time.time)


# The recent usage a host publishes for the load balancer (docs/usage-history.md): a fixed
# window of minute points, so a record's size grows with the VMs on the host only.
RECENT_STEP = 60  # seconds per point
RECENT_POINTS = 15  # points kept: the last quarter of an hour
MAX_RECENT_POINTS = 120  # what a reader accepts (a newer writer may keep more)

# One value per point, oldest first; None: no sample (or no honest figure) in it.
Figure = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Series = list[Figure | None]


class VmRecent(Record):
    """One VM's recent demand on the host that runs it."""

    # CPU seconds per second of the VM's QEMU process (vCPUs and QEMU's own threads): the
    # average and the maximum of the 10 s samples that fell in each point.
    cores_avg: Series
    cores_max: Series
    memory_mib: int | None = Field(default=None, ge=0)  # resident, at the latest sample
    # MiB/s of guest memory written: not measured (see docs/usage-history.md), always None.
    dirty_mib_s: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _same_length(self) -> VmRecent:
        if len(self.cores_avg) != len(self.cores_max):
            raise ValueError("cores_avg and cores_max must have one value per point")
        return self


class RecentUsage(Record):
    """A host's last minutes, published by its agent at /corral/nodes/<node>/recent.

    Point i covers the `step_seconds` (Unix-time aligned) slot that ends
    `points - 1 - i` slots before the one `last_at` falls in: the last point is the current
    slot, holding the samples taken so far."""

    step_seconds: int = Field(gt=0, le=3600)
    last_at: float  # wall time of the newest sample
    # The host: busy share of all its CPUs (average, maximum), memory used (total - available,
    # at the latest sample of the point), and the CPU cores busy outside the VMs' QEMU
    # processes (average; None where not every VM's rate was known).
    cpu_avg: Series
    cpu_max: Series
    memory_used_mib: list[Annotated[int, Field(ge=0)] | None]
    other_cores: Series
    vms: dict[int, VmRecent] = Field(default_factory=dict)

    @property
    def points(self) -> int:
        return len(self.cpu_avg)

    def point_start(self, i: int) -> float:
        """Unix time at which point i begins."""
        last = int(self.last_at // self.step_seconds)
        return float((last - (self.points - 1 - i)) * self.step_seconds)

    @model_validator(mode="after")
    def _shape(self) -> RecentUsage:
        n = len(self.cpu_avg)
        if not 1 <= n <= MAX_RECENT_POINTS:
            raise ValueError(f"cpu_avg: must hold 1 to {MAX_RECENT_POINTS} points")
        for name in ("cpu_max", "memory_used_mib", "other_cores"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: must hold {n} points, as cpu_avg does")
        for vmid, vm in self.vms.items():
            if len(vm.cores_avg) != n:
                raise ValueError(f"vms.{vmid}: must hold {n} points, as cpu_avg does")
        return self


class NodeRequest(Record):
    """An operator request on a host (maintenance and the like)."""

    maintenance: bool = False
    # On leaving maintenance: the VMs that came from this host stay where they are (the
    # manager clears their origin) instead of moving back.
    no_return: bool = False
    parallel: int | None = Field(default=None, ge=1, le=64)  # migrations at once; None: default
    requested_at: float = Field(default_factory=time.time)
    # "shutdown": the host's agent asked for it to empty the host before a clean shutdown
    # (policy `migrate`), and takes it back when the host returns; an operator's request
    # is never taken back by an agent.
    by: Literal["operator", "shutdown"] = "operator"


class ShutdownPolicy(StrEnum):
    """What a clean shutdown of a host (reboot, power-off) does with its VMs."""

    FREEZE = "freeze"  # stop them; they stay placed on the host and start when it returns
    FAILOVER = "failover"  # stop them; HA starts its VMs elsewhere at once (no fence wait)
    MIGRATE = "migrate"  # empty the host as maintenance does (live), then shut down
    CONDITIONAL = "conditional"  # freeze on a reboot, failover on a power-off


class HostShutdown(Record):
    """Written by a host's agent when its host shuts down cleanly, with the policy it
    carries out. Counts only for the agent life that wrote it (`life` is that agent's
    NodeInfo.started_at) and, once `done`, only while the host holds no lease."""

    policy: Literal["freeze", "failover", "migrate"]
    kind: Literal["reboot", "poweroff"] = "poweroff"
    life: float
    at: float = Field(default_factory=time.time)
    # Every QEMU process of the host has ended; the lease is released right after.
    done: bool = False


# --- storage -------------------------------------------------------------------------------


class StorageType(StrEnum):
    DIR = "dir"  # a directory of its own on every host
    SHARED_DIR = "shared-dir"  # one directory every host mounts (NFS and the like)


class StorageConfig(Record):
    id: str
    type: StorageType
    # For `dir` a relative path is taken below each agent's data directory, so lab hosts that
    # share one machine still get storage of their own.
    path: str

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not STORAGE_ID_RE.match(v):
            raise ValueError("must be lower-case letters, digits or '-', starting with a letter")
        return v


# --- VMs -----------------------------------------------------------------------------------


class Disk(Record):
    volume: str  # "<storage>:<file>", e.g. "local:vm-101-disk-0.qcow2"
    size_mb: int = Field(gt=0)

    @field_validator("volume")
    @classmethod
    def _volume(cls, v: str) -> str:
        if not VOLUME_RE.match(v) or ".." in v:
            raise ValueError("must be '<storage>:<file name>' with no path in the name")
        return v

    @property
    def storage(self) -> str:
        return self.volume.split(":", 1)[0]


class VMConfig(Record):
    vmid: int = Field(ge=MIN_VMID, le=MAX_VMID)
    name: str
    memory_mb: int = Field(ge=16, le=4 * 1024 * 1024)
    cores: int = Field(ge=1, le=256)
    disks: list[Disk] = Field(default_factory=list)
    # Direct kernel boot from an image in the host's image directory ("tiny" is the guest
    # `corral image build-tiny` makes); None boots the first disk.
    image: str | None = "tiny"
    startup: int = Field(default=0, ge=0, le=9999)  # start order, low first
    # What host maintenance does with this VM: move it (live if running), leave it, stop it.
    maintenance: Literal["migrate", "stay", "stop"] = "migrate"
    description: str = ""
    # Extra kernel command line for direct kernel boot (e.g. "corral.diskmark=1" makes the
    # tiny guest write its heartbeat to its first disk, which migration tests check).
    append: str = Field(default="", max_length=1024)
    # False: the load balancer never moves this VM (maintenance and HA still may).
    balance: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v)


class RunState(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"


class Placement(Record):
    """Which host owns a VM and the run state the operator asked for.

    Changed only in etcd transactions conditioned on the revision read, so two writers can
    never both move a VM.
    """

    node: str
    state: RunState = RunState.STOPPED
    origin: str | None = None  # host a VM came from (maintenance), to return to
    generation: int = 0
    # The vm.migrate task whose switchover put the VM on `node` (None after any other move):
    # a target tells by it the flip that lets it run the guest from a move by someone else.
    moved_by: str | None = None


class VMStatus(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    SHUTTING_DOWN = "shutting-down"
    UNKNOWN = "unknown"


class VMRuntime(Record):
    """What the owning agent observes of a VM."""

    node: str
    status: VMStatus
    pid: int | None = None
    accel: str | None = None
    started_at: float | None = None
    updated_at: float = Field(default_factory=time.time)
    message: str = ""


# --- tasks ---------------------------------------------------------------------------------


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    OK = "ok"
    ERROR = "error"

    @property
    def finished(self) -> bool:
        # A set, not a tuple of the members: asked of every kept task whenever a snapshot
        # indexes them, and a tuple's look-up through the enum's attributes cost 4 times more.
        return self in FINISHED_STATES


FINISHED_STATES = frozenset({TaskState.OK, TaskState.ERROR})
TASK_LOG_LINES = 50


class Task(Record):
    """A long action, executed by the agent of `node`; its record is its progress report."""

    id: str
    kind: str  # "vm.create", "vm.start", "vm.shutdown", ...
    node: str
    vmid: int | None = None
    parent: str | None = None  # the bulk task this one belongs to
    params: dict[str, Any] = Field(default_factory=dict)
    state: TaskState = TaskState.QUEUED
    progress: float = 0.0  # 0..1
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None
    result: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    log: list[str] = Field(default_factory=list)

    def with_log(self, line: str) -> Task:
        return self.model_copy(update={"log": [*self.log, line][-TASK_LOG_LINES:]})


# --- the cluster: who belongs to it --------------------------------------------------------

HostRole = Literal["host", "witness"]  # a witness runs etcd only: it votes, it runs no VMs


class EpochOverride(Record):
    """One `cluster expected 1`: who rebuilt the cluster from its own data, when, and which
    members it left out."""

    epoch: int = Field(ge=2)  # the epoch it began
    host: str  # the host it ran on
    user: str  # who ran it there (the login name)
    at: float
    dropped: list[str] = Field(default_factory=list)  # etcd members left out, by name


class ClusterInfo(Record):
    """The cluster itself, written once by `cluster create`; the epoch is raised by each
    `expected 1` override, so a host whose data predates it can tell it is stale. Records
    made before overrides existed read with none."""

    name: str
    epoch: int = Field(default=1, ge=1)
    ca_hash: str = Field(pattern=r"^[0-9a-f]{64}$")  # `pki.ca.spki_sha256` of the cluster CA
    created_at: float = Field(default_factory=time.time)
    overrides: list[EpochOverride] = Field(default_factory=list)  # oldest first


class ClusterHost(Record):
    """A host or witness the cluster admitted. `member_id` is None for a moment while its
    join is under way (the name is claimed before its etcd member is added)."""

    name: str
    role: HostRole = "host"
    address: str
    member_id: int | None = None
    peer_urls: list[str] = Field(default_factory=list)
    client_urls: list[str] = Field(default_factory=list)
    joined_at: float = Field(default_factory=time.time)


# --- what a read of the cluster gives ------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A host as the cluster sees it: its records under /corral/nodes/<name>/."""

    name: str
    info: NodeInfo | None
    alive: bool
    usage: NodeUsage | None
    request: NodeRequest | None
    shutdown: HostShutdown | None = None
    recent: RecentUsage | None = None  # the last minutes of the host and its VMs

    @property
    def shutting_down(self) -> HostShutdown | None:
        """The clean shutdown of this host's current agent life, if one is under way or
        done (a record of an earlier life says nothing about this one)."""
        sd = self.shutdown
        if sd is None or self.info is None or sd.life != self.info.started_at:
            return None
        return sd


@dataclass(frozen=True)
class VM:
    """A VM's records, with the revision its placement was read at (for CAS writes)."""

    config: VMConfig
    placement: Placement
    placement_rev: int
    runtime: VMRuntime | None

    @property
    def vmid(self) -> int:
        return self.config.vmid
