"""The simulated cluster: a store (what etcd would hold), hosts with their QEMU processes,
leases, watchdogs and agents. An agent here is only I/O on this model: every decision is the
real agent's (`corral.agent.reconciler`): plan_startup when it (re)starts, accept_task when it
picks a task up, ownership_refusal right before it starts a guest, plan_orphans and
plan_observation in its monitor pass; a clean host shutdown is in `corral.sim.shutdown`.

A host has two links: to the store (etcd: its lease, its tasks, the manager's reads and
writes) and to its peers (migrations). Either can be cut alone, and a partition splits the
machines into sides that reach nobody across. Its watchdog kills its VMs once its agent has
not renewed the lease for `watchdog` seconds; a host with watchdog 0 has none, and its VMs run
until it is powered off.

The store is etcd's voters (every host unless told otherwise, and any witness: a voter with
no agent and no VMs). It answers a host only while that host reaches a majority of them
(`corral.sim.quorum`); the override (`expected 1`) makes one host the only member, and the
other old members get nothing from the store until they rejoin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from corral.agent.reconciler import (
    Do,
    Ownership,
    Placed,
    Purpose,
    Verdict,
    accept_task,
    ownership_refusal,
    plan_observation,
    plan_orphans,
    plan_startup,
)
from corral.cluster.models import (
    VM,
    HostShutdown,
    Node,
    NodeInfo,
    NodeRequest,
    Placement,
    RunState,
    Task,
    TaskState,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import (
    FenceConfirmation,
    HAConfig,
    HAInputs,
    HARule,
    HASettings,
    HAState,
)
from corral.sim import quorum, shutdown
from corral.sim.quorum import Member, Membership, names

PICKUP = 0.5  # an agent notices a queued task
DURATION = {"vm.start": 1.0, "vm.shutdown": 2.0, "vm.stop": 0.5, "vm.migrate": 3.0}
BOOT = 3.0  # a powered-on host's agent starts after this
RENEW = 0.5  # a connected agent renews its lease (and feeds its watchdog) at every step
KINDS = frozenset({"vm.start", "vm.shutdown", "vm.stop", "vm.migrate"})  # what `execute` runs
RECEIVES = frozenset({"vm.receive"})  # the target's half of a vm.migrate


@dataclass
class Host:
    name: str
    memory_mb: int
    watchdog: float = 5.0  # seconds from the last feed to the kill; 0: no watchdog
    powered: bool = True
    reaches_store: bool = True  # the link to etcd
    reaches_peers: bool = True  # the links to the other hosts (migrations)
    side: int = 0  # its side of a partition: it reaches no machine on another
    # etcd answers it (a majority of the voters in reach, a member); the world keeps it current
    answered: bool = True
    short: bool = False  # said in the log: its links work, the majority is out of reach
    refused: bool = False  # said in the log: out of the cluster, it reaches its members
    agent_up: bool = True
    frozen: bool = False  # the agent process is stopped (SIGSTOP); a thaw continues it
    agent_back_at: float | None = None
    procs: set[int] = field(default_factory=set)  # VMs whose QEMU runs here
    fed_at: float = 0.0  # the watchdog was last fed (after a successful lease renewal)
    lease_expires: float = 0.0
    started_at: float = 0.0
    seen: dict[int, VMStatus] = field(default_factory=dict)
    broken: set[int] = field(default_factory=set)  # VMs whose start fails here
    # VMs whose QEMU runs here but does not answer QMP: reported unknown, deaf to the power
    # button, ended only by a hard stop (or the process dying).
    hung: set[int] = field(default_factory=set)
    going: shutdown.Going | None = None  # a clean shutdown its agent carries out
    power_on_at: float | None = None  # a rebooting host comes back then

    @property
    def network(self) -> bool:
        """Reaches etcd and etcd answers (what the agent and the manager on this host
        need)."""
        return self.reaches_store and self.answered

    @property
    def connected(self) -> bool:
        """Reaches etcd with a working agent."""
        return self.powered and self.network and self.agent_up

    def talks_to(self, other: Host) -> bool:
        """A migration between the two can run."""
        return self.powered and other.powered and self.reaches_peers and other.reaches_peers \
            and self.side == other.side


@dataclass
class Witness:
    """An etcd voter with no agent and no VMs: a small machine that only breaks ties."""

    name: str
    powered: bool = True
    reaches_store: bool = True
    side: int = 0


@dataclass
class Store:
    """What etcd holds; leases are expiry times, so `alive` follows the virtual clock."""

    rev: int = 1
    info: dict[str, NodeInfo] = field(default_factory=dict)
    requests: dict[str, NodeRequest] = field(default_factory=dict)
    configs: dict[int, VMConfig] = field(default_factory=dict)
    placements: dict[int, tuple[Placement, int]] = field(default_factory=dict)
    runtimes: dict[int, VMRuntime] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    ha: dict[int, HASettings] = field(default_factory=dict)
    rules: dict[str, HARule] = field(default_factory=dict)
    fenced: dict[str, FenceConfirmation] = field(default_factory=dict)
    shutdowns: dict[str, HostShutdown] = field(default_factory=dict)
    ha_config: HAConfig = field(default_factory=HAConfig)
    ha_state: HAState = field(default_factory=HAState)
    leader: str | None = None

    def put_placement(self, vmid: int, p: Placement) -> None:
        self.rev += 1
        self.placements[vmid] = (p, self.rev)

    def cas_placement(self, vmid: int, p: Placement, expect_rev: int) -> bool:
        cur = self.placements.get(vmid)
        if cur is None or cur[1] != expect_rev:
            return False
        self.put_placement(vmid, p)
        return True

    def set_state(self, vmid: int, state: RunState) -> None:
        if vmid in self.placements:
            p, _ = self.placements[vmid]
            if p.state is not state:
                self.put_placement(vmid, p.model_copy(update={"state": state}))


def vm_list(vmids: set[int] | list[int]) -> str:
    return ", ".join(str(v) for v in sorted(vmids))


class World:
    def __init__(self, ttl: float, watchdog: float) -> None:
        self.t = 0.0
        self.ttl = ttl
        self.watchdog = watchdog
        self.hosts: dict[str, Host] = {}
        self.witnesses: dict[str, Witness] = {}
        self.members = Membership(frozenset())
        self.quorum_ok = True  # as last said in the log
        self.store = Store()
        self.log: list[str] = []

    def say(self, line: str) -> None:
        """One log line, "who: what". `who` is `event`, `manager`, `ha`, `check`, or a host
        with its part (`n2/watchdog`); a bare host name speaks for its agent. The log is the
        golden record of a scenario: fixed-width time, a padded source column, no reprs."""
        who, sep, what = line.partition(": ")
        if not sep:
            who, what = "sim", line
        elif who in self.hosts:
            who = f"{who}/agent"
        self.log.append(f"{self.t:7.1f}  {who:<12} {what}".rstrip())

    # --- setup -----------------------------------------------------------------------------

    def add_host(self, name: str, memory_mb: int, cpus: int = 8,
                 watchdog: float | None = None, voter: bool = True) -> None:
        """A host; `watchdog` is what its watchdog really does and what its agent publishes
        (the cluster's setting unless given); `voter`: it runs an etcd voter (else it is only
        a client of the others')."""
        wd = self.watchdog if watchdog is None else watchdog
        voters = self.members.voters | {name} if voter else self.members.voters - {name}
        self.members = Membership(voters, self.members.out, self.members.epoch)
        self.hosts[name] = Host(name, memory_mb, watchdog=wd, fed_at=self.t,
                                lease_expires=self.t + self.ttl)
        # The simulated agent renews (and feeds) at every step of the clock.
        self.store.info[name] = NodeInfo(name=name, cpus=cpus, memory_mb=memory_mb,
                                         lease_ttl=self.ttl, watchdog_timeout=wd,
                                         renew_interval=RENEW, started_at=self.t)

    def add_witness(self, name: str) -> None:
        self.witnesses[name] = Witness(name)
        self.members = Membership(self.members.voters | {name}, self.members.out,
                                  self.members.epoch)

    def add_vm(self, vmid: int, node: str, memory_mb: int, running: bool,
               maintenance: Literal["migrate", "stay", "stop"] = "migrate") -> None:
        self.store.configs[vmid] = VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=memory_mb,
                                            cores=1, maintenance=maintenance)
        state = RunState.RUNNING if running else RunState.STOPPED
        self.store.put_placement(vmid, Placement(node=node, state=state))
        if running:
            self.hosts[node].procs.add(vmid)
            self.hosts[node].seen[vmid] = VMStatus.RUNNING
        self.store.runtimes[vmid] = VMRuntime(
            node=node, status=VMStatus.RUNNING if running else VMStatus.STOPPED,
            updated_at=self.t)

    # --- reads -----------------------------------------------------------------------------

    def alive(self, name: str) -> bool:
        return self.t < self.hosts[name].lease_expires

    def runs_on(self, vmid: int) -> list[str]:
        return sorted(h.name for h in self.hosts.values() if vmid in h.procs)

    def snapshot(self) -> ClusterSnapshot:
        s = self.store
        nodes = {n: self.node(n) for n in self.hosts}
        vms = {vmid: VM(cfg, s.placements[vmid][0], s.placements[vmid][1], s.runtimes.get(vmid))
               for vmid, cfg in s.configs.items() if vmid in s.placements}
        tasks = sorted(s.tasks.values(), key=lambda t: (t.created_at, t.id))
        return ClusterSnapshot(now=self.t, nodes=nodes, vms=vms, tasks=tasks, revision=s.rev)

    def node(self, name: str) -> Node:
        s = self.store
        return Node(name, s.info.get(name), self.alive(name), None, s.requests.get(name),
                    s.shutdowns.get(name))

    def ha_inputs(self) -> HAInputs:
        s = self.store
        return HAInputs(settings=dict(s.ha), rules=[s.rules[k] for k in sorted(s.rules)],
                        state=s.ha_state, fenced=dict(s.fenced))

    # --- the store's quorum ----------------------------------------------------------------

    def machines(self) -> dict[str, Member]:
        """Every host and witness as the store network sees it."""
        found = {n: Member(h.powered, h.reaches_store, h.side) for n, h in self.hosts.items()}
        found.update({n: Member(w.powered, w.reaches_store, w.side)
                      for n, w in self.witnesses.items()})
        return found

    def has_quorum(self) -> bool:
        return quorum.has_quorum(self.members, self.machines())

    def refresh_store(self) -> None:
        """Whom the store answers now; the log says when the cluster loses or regains its
        quorum, when a host whose links work is cut off from a majority that exists, and when
        a host the override left out reaches the members (who refuse it)."""
        machines, m = self.machines(), self.members
        for h in self.hosts.values():
            h.answered = quorum.answers(h.name, m, machines)
        ok = quorum.has_quorum(m, machines)
        if ok != self.quorum_ok:
            self.quorum_ok = ok
            found = quorum.sides(m, machines)
            if ok:
                self.say(f"store: quorum back: {names(found[0])} of voters {names(m.voters)}")
            else:
                up = " | ".join(names(s) for s in found) or "none running"
                self.say(f"store: quorum lost: no side holds a majority of voters "
                         f"{names(m.voters)} (sides: {up}): no lease is renewed, no manager "
                         "acts")
        for h in self.hosts.values():
            short = ok and h.powered and h.reaches_store and h.name not in m.out \
                and not h.answered
            if short == h.short:
                continue
            h.short = short
            if short:
                seen = quorum.reaches(h.name, machines) & m.voters
                self.say(f"{h.name}/store: no majority in reach ({names(seen) or 'no voter'} "
                         f"of voters {names(m.voters)}): its lease is not renewed")
            elif h.answered:
                self.say(f"{h.name}/store: reaches the majority again")
        for h in self.hosts.values():
            refused = h.name in m.out and h.powered \
                and bool(quorum.reaches(h.name, machines) & m.voters)
            if refused != h.refused:
                h.refused = refused
                if refused:
                    self.say(f"{h.name}/store: the members of epoch {m.epoch} refuse it (its "
                             "etcd data is of the old cluster): no lease until it rejoins")

    def override(self, h: Host) -> None:
        """`corral cluster expected 1` on a lone survivor: etcd restarts as a one-member
        cluster from this host's data (a new epoch); every other member is out."""
        m, machines = self.members, self.machines()
        why = "it is off" if not h.powered else \
            "it is out of the cluster (rejoin it first)" if h.name in m.out else \
            "it runs no etcd voter" if h.name not in m.voters else \
            f"it reaches a majority of voters {names(m.voters)}" \
            if quorum.answers(h.name, m, machines) else None
        if why is not None:
            self.say(f"store: no override on {h.name}: {why}")
            return
        if quorum.has_quorum(m, machines):
            # Two clusters would hold the same VMs: the danger the docs warn of. The
            # simulator has one store and does not model the split.
            self.say(f"sim: the override on {h.name} while a majority lives elsewhere would "
                     "make two clusters; the simulator has one store: ignored")
            return
        gone = m.voters - {h.name}
        self.members = Membership(frozenset({h.name}), m.out | gone, m.epoch + 1)
        self.say(f"store: {h.name} forces a one-member cluster (expected 1): epoch "
                 f"{m.epoch + 1}" + (f"; no longer members: {names(gone)}" if gone else ""))
        self.refresh_store()

    def rejoin(self, name: str) -> None:
        """`corral cluster rejoin` (or a witness set up again): the old etcd data wiped, a
        clean join through a member of the majority; a host's services restart."""
        m, machines = self.members, self.machines()
        if name not in m.out:
            self.say(f"store: nothing to rejoin: {name} is "
                     + ("a voter" if name in m.voters else "no member (voter=no)"))
            return
        if not machines[name].up:
            self.say(f"store: {name} cannot rejoin: it is off")
            return
        reached = quorum.reaches(name, machines) & m.voters
        if not quorum.majority(m.voters, reached):
            self.say(f"store: {name} cannot rejoin: no majority of voters {names(m.voters)} "
                     "in reach")
            return
        self.members = Membership(m.voters | {name}, m.out - {name}, m.epoch)
        h = self.hosts.get(name)
        restart = h is not None and (h.agent_up or h.frozen)
        self.say(f"store: {name} rejoins, its old etcd data wiped: voters "
                 f"{names(self.members.voters)}" + ("; its agent restarts" if restart else ""))
        if h is not None and restart:
            h.agent_up, h.frozen, h.going, h.agent_back_at = False, False, None, self.t + 1
        self.refresh_store()

    # --- time ------------------------------------------------------------------------------

    def leases_and_watchdogs(self) -> None:
        self.refresh_store()
        for h in self.hosts.values():
            if not h.powered and h.power_on_at is not None and self.t >= h.power_on_at:
                self.say(f"{h.name}/host: on")
                self.power_on(h)
                self.refresh_store()
            if h.powered and not h.agent_up and h.agent_back_at is not None \
                    and self.t >= h.agent_back_at:
                self.agent_start(h)
            if h.connected:
                if not self.alive(h.name):
                    self.say(f"{h.name}/lease: expired; the agent registers a new one")
                h.lease_expires = self.t + self.ttl
                h.fed_at = self.t
            elif h.powered and h.procs and h.watchdog > 0 \
                    and self.t - h.fed_at >= h.watchdog:
                self.say(f"{h.name}/watchdog: fires, kills VM(s) {vm_list(h.procs)}")
                h.procs.clear()
                h.hung.clear()

    def power_on(self, h: Host) -> None:
        h.powered, h.agent_back_at, h.fed_at, h.frozen = True, self.t + BOOT, self.t, False
        h.power_on_at = None

    def agent_start(self, h: Host) -> None:
        h.agent_up, h.agent_back_at, h.seen = True, None, {}
        h.started_at = self.t
        if h.name in self.members.out:
            # Its etcd holds the old cluster's data, which the members refuse: no lease, so
            # every start below fails its ownership proof.
            self.say(f"{h.name}: agent finds its host out of the cluster (epoch "
                     f"{self.members.epoch} has no such member): no lease until it rejoins")
        else:
            self.store.info[h.name] = self.store.info[h.name].model_copy(
                update={"started_at": self.t})
        if h.network:  # the real agent registers (takes its lease) before it reconciles
            if not self.alive(h.name):
                self.say(f"{h.name}/lease: expired; the agent registers a new one")
            h.lease_expires, h.fed_at = self.t + self.ttl, self.t
            shutdown.on_start(self, h)
        placed = [seen for v in self.store.placements if (seen := self.placed(v)) is not None]
        for a in plan_startup(h.name, placed, {v: 0 for v in h.procs}):
            if a.do is Do.KILL_ORPHAN:
                h.procs.discard(a.vmid)
                h.hung.discard(a.vmid)
                self.say(f"{h.name}: agent kills orphan VM {a.vmid} ({a.reason})")
            elif a.do is Do.START and a.vmid not in h.broken:
                proof = self.prove(h, a.vmid, Purpose.RESTORE)
                if not proof.ok:
                    self.say(f"{h.name}: agent does not start VM {a.vmid}: {proof.reason}")
                    continue
                h.procs.add(a.vmid)
                self.say(f"{h.name}: agent starts VM {a.vmid} ({a.reason})")
        self.say(f"{h.name}: agent started")

    def placed(self, vmid: int) -> Placed | None:
        if vmid not in self.store.configs or vmid not in self.store.placements:
            return None
        p, _ = self.store.placements[vmid]
        return Placed(vmid, p.node, p.state)

    def prove(self, h: Host, vmid: int, purpose: Purpose) -> Verdict:
        """The ownership read: one store revision, this host's lease and the VM's placement."""
        seen = Ownership(vmid, self.placed(vmid), self.alive(h.name) and h.network,
                         revision=self.store.rev)
        return ownership_refusal(h.name, seen, purpose)

    def agents(self) -> None:
        self.refresh_store()
        for h in self.hosts.values():
            if h.going is not None and h.powered and h.agent_up:
                shutdown.step(self, h)
            elif h.connected:
                busy = self.run_tasks(h)
                self.monitor(h, busy)

    def run_tasks(self, h: Host) -> set[int]:
        busy: set[int] = set()
        for task in list(self.store.tasks.values()):
            if task.node != h.name or task.state.finished:
                continue
            if task.state is TaskState.QUEUED and self.t >= task.created_at + PICKUP:
                task = task.model_copy(update={"state": TaskState.RUNNING, "started_at": self.t})
                self.store.tasks[task.id] = task
                verdict = accept_task(task.kind, self.placed(task.vmid or 0), h.name,
                                      self.alive(h.name), KINDS,
                                      shutting_down=h.going is not None)
                if not verdict.ok:
                    self.finish(h, task, verdict.reason)
                    continue
            if task.state is TaskState.RUNNING:
                if self.t >= (task.started_at or 0) + self.duration(h, task):
                    self.finish(h, task)
                elif task.vmid is not None:
                    busy.add(task.vmid)
        return busy

    def duration(self, h: Host, task: Task) -> float:
        """How long a task runs. A hung guest never hears the power button: the shutdown
        waits its whole timeout (the handler's default 180 s), then stops QEMU hard."""
        if task.kind == "vm.shutdown" and task.vmid in h.hung:
            return float(str(task.params.get("timeout", 180)))
        return DURATION.get(task.kind, 1.0)

    def finish(self, h: Host, task: Task, refused: str | None = None) -> None:
        error = refused or self.execute(h, task)
        state = TaskState.ERROR if error else TaskState.OK
        self.store.tasks[task.id] = task.model_copy(update={
            "state": state, "ended_at": self.t, "error": error, "progress": 1.0})
        self.say(f"{h.name}: task {task.id} {state.value}" + (f": {error}" if error else ""))

    def execute(self, h: Host, task: Task) -> str | None:
        """A task's effect, as the real handlers have it: a start proves ownership right
        before QEMU would run (the task may have waited out a freeze since it was accepted)."""
        vmid, s = task.vmid or 0, self.store
        if vmid not in s.configs:
            return f"VM {vmid} no longer exists"
        if task.kind == "vm.start":
            if vmid in h.procs:  # as the real handler: done, and reported
                s.set_state(vmid, RunState.RUNNING)
                self.report(h, vmid, VMStatus.RUNNING)
                return None
            proof = self.prove(h, vmid, Purpose.START)
            if not proof.ok:
                return f"not owned: {proof.reason}"
            if vmid in h.broken:
                return f"QEMU for VM {vmid} exited at start on {h.name}"
            h.procs.add(vmid)
            s.set_state(vmid, RunState.RUNNING)
            self.report(h, vmid, VMStatus.RUNNING)
        elif task.kind in ("vm.shutdown", "vm.stop"):
            if vmid not in h.procs:
                return f"VM {vmid} is not running"
            if task.kind == "vm.shutdown" and vmid in h.hung:
                self.say(f"{h.name}: VM {vmid} did not answer the power button: "
                         "timed out, stopped hard")
            h.procs.discard(vmid)
            h.hung.discard(vmid)
            s.set_state(vmid, RunState.STOPPED)
            self.report(h, vmid, VMStatus.STOPPED)
        elif task.kind == "vm.migrate":
            target = self.hosts.get(str(task.params.get("target")))
            p, _ = s.placements[vmid]
            # A stopped VM migrates cold: only its placement (and disks) move.
            cold = p.state is RunState.STOPPED and vmid not in h.procs
            if vmid not in h.procs and not cold:
                return f"VM {vmid} is not running"
            if vmid in h.hung:
                return f"VM {vmid}: QMP migrate timed out (QEMU does not answer)"
            if target is None or not target.connected:
                return "the target host is unreachable"
            if not h.talks_to(target):
                return f"cannot reach {target.name} from {h.name}"
            # The receiving agent's own check (a host that shuts down takes no guest).
            receive = accept_task("vm.receive", self.placed(vmid), target.name,
                                  self.alive(target.name), RECEIVES,
                                  shutting_down=target.going is not None)
            if not receive.ok:
                return f"{target.name} refuses it: {receive.reason}"
            if not cold:
                h.procs.discard(vmid)
                target.procs.add(vmid)
            s.put_placement(vmid, p.model_copy(update={"node": target.name,
                                                       "origin": task.params.get("origin"),
                                                       "moved_by": task.id}))
            self.report(target, vmid, VMStatus.STOPPED if cold else VMStatus.RUNNING)
        else:
            return f"the simulator does not run {task.kind}"
        return None

    def report(self, h: Host, vmid: int, status: VMStatus) -> None:
        h.seen[vmid] = status
        self.store.runtimes[vmid] = VMRuntime(node=h.name, status=status, updated_at=self.t)

    def monitor(self, h: Host, busy: set[int]) -> None:
        here = {v: seen for v in self.store.placements if (seen := self.placed(v)) is not None}
        for a in plan_orphans(h.name, here, h.procs, busy):
            h.procs.discard(a.vmid)
            h.hung.discard(a.vmid)
            self.say(f"{h.name}: agent kills orphan VM {a.vmid} ({a.reason})")
        for vmid, (p, _) in list(self.store.placements.items()):
            if p.node != h.name or vmid in busy:
                continue
            # What the driver reports: no process is stopped; a process whose QMP does not
            # answer is unknown (it lives, and may run the guest).
            now = VMStatus.STOPPED if vmid not in h.procs else \
                VMStatus.UNKNOWN if vmid in h.hung else VMStatus.RUNNING
            for a in plan_observation(Placed(vmid, p.node, p.state), h.seen.get(vmid), now,
                                      False):
                if a.do is Do.MARK_STOPPED:
                    self.say(f"{h.name}: VM {vmid} {a.reason}")
                    self.store.set_state(vmid, RunState.STOPPED)
            was = h.seen.get(vmid)
            if (now is VMStatus.UNKNOWN) != (was is VMStatus.UNKNOWN):
                self.say(f"{h.name}: VM {vmid} " + (
                    "does not answer QMP: reports it unknown" if now is VMStatus.UNKNOWN
                    else "answers again: running" if now is VMStatus.RUNNING
                    else "exited while not answering QMP: reports it stopped"))
            h.seen[vmid] = now
            rt = self.store.runtimes.get(vmid)
            if rt is None or rt.status is not now or rt.node != h.name:
                self.report(h, vmid, now)
