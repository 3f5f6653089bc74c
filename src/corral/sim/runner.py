"""Runs a scenario: builds the world, advances the virtual clock, fires events, runs the
manager, and checks the expectations and the invariants after every tick:
- one-owner: a VM never runs on two hosts (a cut-off host runs its VMs until its watchdog
  fires, so a recovery before fencing shows up here; a hung QEMU still runs);
- configs-kept: no VM config is lost;
- ha-bound: an HA VM meant to be started is not down longer than the bound, counting only
  the time while the store has quorum, some host could run it (online, not in maintenance
  nor shutting down, with the memory, allowed by the VM's strict rules and able to start it)
  and HA is not waiting for its host on purpose (`freeze`: a clean shutdown under policy
  freeze).

The log (`Result.log`) is the scenario's golden record: events, what agents, watchdogs and
leases did, the manager's actions, HA state changes, checks and invariant failures, on the
virtual clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, cast

from corral.cluster.models import NodeRequest, ShutdownPolicy, Task
from corral.ha.models import (
    FenceConfirmation,
    HAConfig,
    HARequest,
    HASettings,
    HATiming,
    VMStatusHA,
)
from corral.ha.placement import rule_breach
from corral.scheduler.capacity import migration_refusal
from corral.sim import quorum, shutdown
from corral.sim.manager import SimManager
from corral.sim.scenario import (
    HOST_EVENTS,
    MACHINE_EVENTS,
    Line,
    Scenario,
    ScenarioError,
    rule_of,
    sides_of,
)
from corral.sim.world import Host, Witness, World, vm_list

DT = 0.5
MANAGER_EVERY = 1.0


@dataclass
class Result:
    scenario: str
    log: list[str]
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


class Run:
    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        cl = next((ln for ln in sc.setup if ln.words[0] == "cluster"), None)
        if cl is None:
            raise ScenarioError("no `cluster` line")
        ttl, wd = float(cl.opt("ttl", "10")), float(cl.opt("watchdog", "5"))
        self.timing = HATiming(lease_ttl=ttl, watchdog_timeout=wd,
                               margin=float(cl.opt("margin", "2")),
                               start_timeout=float(cl.opt("start-timeout", "30")),
                               stable_after=float(cl.opt("stable-after", "60")),
                               failback_hold=float(cl.opt("failback-hold", "60")))
        self.until = float(cl.opt("run", "60"))
        self.bound: float | None = ttl + wd + self.timing.margin + 10
        self.allow_down: set[int] = set()
        self.world = World(ttl, wd)
        for i in range(1, int(cl.opt("nodes", "3")) + 1):
            self.world.add_host(f"n{i}", int(cl.opt("memory", "4096")))
        self.manager = SimManager(self.world, self.timing)
        self.failures: list[str] = []
        self.down: dict[int, float] = {}
        self.reported: set[str] = set()
        for line in sc.setup[1:] if sc.setup[0] is cl else sc.setup:
            if line is not cl:
                self.setup(line)
        self.initial = set(self.world.store.configs)
        # What ran where at the previous tick: a VM new on a host was started (or moved) there.
        self.procs_before = self.procs_now()
        self.broken_windows: set[int] = set()

    def fail(self, message: str) -> None:
        if message not in self.reported:
            self.reported.add(message)
            self.failures.append(f"t={self.world.t:g}: {message}")
            self.world.say(f"check: FAILED {message}")

    # --- setup -----------------------------------------------------------------------------

    def setup(self, ln: Line) -> None:
        w, s = self.world, self.world.store
        head, args = ln.words[0], ln.words[1:]
        if head == "node":
            old = w.hosts.get(args[0])
            memory = int(ln.opt("memory", str(old.memory_mb if old else 4096)))
            wd = ln.opts.get("watchdog")
            voter = ln.opt("voter", "yes" if old is None or args[0] in w.members.voters
                           else "no") == "yes"
            w.add_host(args[0], memory,
                       watchdog=float(wd) if wd is not None else old.watchdog if old else None,
                       voter=voter)
        elif head == "witness":
            w.add_witness(args[0])
        elif head == "vm":
            vmid, node = int(args[0]), args[2]
            policy = cast(Literal["migrate", "stay", "stop"], ln.opt("maintenance", "migrate"))
            w.add_vm(vmid, node, int(ln.opt("memory", "512")), "stopped" not in args, policy)
            if "ha" in ln.opts:
                s.ha[vmid] = HASettings(vmid=vmid, state=HARequest(ln.opts["ha"]),
                                        max_restart=int(ln.opt("max-restart", "1")),
                                        max_relocate=int(ln.opt("max-relocate", "1")))
        elif head == "rule":
            s.rules[args[1]] = rule_of(ln)
        elif head == "maintenance":
            s.requests[args[0]] = NodeRequest(maintenance=True, requested_at=0)
        elif head == "bound":
            self.bound = None if args[0] == "off" else float(args[0])
        elif head == "allow-down":
            self.allow_down.update(int(v) for v in args[0].split(","))
        elif head == "shutdown-policy":
            s.ha_config = HAConfig(shutdown_policy=ShutdownPolicy(args[0]))
        else:
            raise ScenarioError(f"line {ln.number}: unknown setup '{ln.text}'")

    # --- events ----------------------------------------------------------------------------

    def hosts_of(self, ln: Line, name: str) -> list[str]:
        if name == "all":
            return sorted(self.world.hosts)
        if name == "leader":
            return [self.world.store.leader] if self.world.store.leader else []
        if name not in self.world.hosts:
            raise ScenarioError(f"line {ln.number}: no host {name}")
        return [name]

    def event(self, ln: Line) -> None:
        w, s = self.world, self.world.store
        verb, args = ln.words[0], ln.words[1:]
        w.say(f"event: {ln.text}")
        if verb in MACHINE_EVENTS and args[0] in w.witnesses:
            self.witness_event(verb, w.witnesses[args[0]])
        elif verb in HOST_EVENTS:
            for name in self.hosts_of(ln, args[0]):
                self.host_event(ln, verb, w.hosts[name])
            if verb in MACHINE_EVENTS and args[0] == "all":
                for name in sorted(w.witnesses):
                    self.witness_event(verb, w.witnesses[name])
        elif verb == "partition":
            # The first side (0) also holds every machine the line does not name.
            sides = {name: i for i, side in enumerate(sides_of(ln)) for name in side}
            for h in w.hosts.values():
                h.side = sides.get(h.name, 0)
            for wit in w.witnesses.values():
                wit.side = sides.get(wit.name, 0)
        elif verb == "expected":
            w.override(w.hosts[args[0]])
        elif verb == "rejoin":
            w.rejoin(args[0])
        elif verb == "maintenance":
            s.requests[args[0]] = NodeRequest(maintenance=args[1] == "on", requested_at=w.t)
        elif verb == "crash":
            for h in w.hosts.values():
                h.procs.discard(int(args[0]))
                h.hung.discard(int(args[0]))
        elif verb in ("hang", "unhang"):
            vmid = self.vm(ln, args[0])
            where = w.runs_on(vmid)
            if not where:
                w.say(f"sim: nothing to {verb} (VM {vmid} runs nowhere)")
            for name in where:
                (w.hosts[name].hung.add if verb == "hang" else w.hosts[name].hung.discard)(
                    vmid)
        elif verb in ("break", "fix"):
            vmid = int(args[0])
            names = [args[2]] if len(args) > 2 else list(w.hosts)
            for name in names:
                (w.hosts[name].broken.add if verb == "break" else w.hosts[name].broken.discard)(
                    vmid)
        elif verb == "ha":
            vmid = self.vm(ln, args[0])
            if vmid not in s.ha:
                raise ScenarioError(f"line {ln.number}: VM {vmid} is not an HA VM")
            s.ha[vmid] = s.ha[vmid].model_copy(update={"state": HARequest(args[1])})
        elif verb == "shutdown" and not args[0].isdigit():
            kind = cast(Literal["reboot", "poweroff"], args[1] if len(args) > 1 else "poweroff")
            for name in self.hosts_of(ln, args[0]):
                shutdown.begin(
                    w, w.hosts[name], kind,
                    back=float(ln.opt("back", str(shutdown.REBOOT_BACK))),
                    timeout=float(ln.opt("timeout", str(shutdown.DRAIN_TIMEOUT))),
                    stop_timeout=float(ln.opt("stop-timeout", str(shutdown.STOP_TIMEOUT))))
        elif verb == "shutdown-policy":
            s.ha_config = HAConfig(shutdown_policy=ShutdownPolicy(args[0]))
        elif verb in ("start", "shutdown"):
            # What the API does: queue the task, and the HA request follows.
            vmid = self.vm(ln, args[0])
            p, _ = s.placements[vmid]
            if vmid in s.ha:
                want = HARequest.STARTED if verb == "start" else HARequest.STOPPED
                s.ha[vmid] = s.ha[vmid].model_copy(update={"state": want})
            self.queue(f"vm.{verb}", p.node, vmid, {})
        elif verb == "migrate":
            # What the API does: refuse up front what cannot work, else queue on the VM's host.
            vmid, target = self.vm(ln, args[0]), args[1]
            snap = w.snapshot()
            vm = snap.vms[vmid]
            why = migration_refusal(snap, vm, target, with_local_disks=True)
            if why is None:
                why = rule_breach(snap, vm, w.ha_inputs().rules, target)
            if why is not None:
                w.say(f"api: refuses to migrate VM {vmid} to {target}: {why}")
                return
            self.queue("vm.migrate", vm.placement.node, vmid,
                       {"target": target, "with_local_disks": False, "bwlimit_mbps": None,
                        "origin": None})
        elif verb == "rule":
            # What the API does: store the rule (a new one, or the one of that name changed).
            rule = rule_of(ln)
            w.say(f"api: {'changes' if rule.name in s.rules else 'adds'} rule {rule.name}")
            s.rules[rule.name] = rule
        else:
            raise ScenarioError(f"line {ln.number}: unknown event '{verb}'")

    def vm(self, ln: Line, word: str) -> int:
        vmid = int(word)
        if vmid not in self.world.store.configs:
            raise ScenarioError(f"line {ln.number}: no VM {vmid}")
        return vmid

    def queue(self, kind: str, node: str, vmid: int, params: dict[str, object]) -> None:
        w = self.world
        tid = f"op-{vmid}-{kind.removeprefix('vm.')}-{w.t:g}"
        w.store.tasks[tid] = Task(id=tid, kind=kind, node=node, vmid=vmid, params=params,
                                  created_at=w.t)
        w.say(f"api: queue {kind} of VM {vmid} on {node} ({tid})")

    def host_event(self, ln: Line, verb: str, h: Host) -> None:
        w, s = self.world, self.world.store
        if verb in ("power-off", "fence-confirm"):
            h.powered, h.agent_up, h.agent_back_at, h.frozen = False, False, None, False
            h.going = h.power_on_at = None  # a shutdown cut short; a reboot that never ends
            h.procs.clear()
            h.hung.clear()
            if verb == "fence-confirm":
                s.fenced[h.name] = FenceConfirmation(node=h.name, at=w.t, by="sim-ipmi")
        elif verb == "power-on" and not h.powered:
            w.power_on(h)
        elif verb in ("net-off", "net-on", "heal"):
            h.reaches_store = h.reaches_peers = verb != "net-off"
            if verb != "net-off":
                h.side = 0
        elif verb == "cut-store":
            h.reaches_store = False
        elif verb == "cut-peers":
            h.reaches_peers = False
        elif verb == "agent-restart":
            # A new process (a new life) knows nothing of a shutdown under way: it gives it up.
            h.agent_up, h.frozen, h.going = False, False, None
            h.agent_back_at = w.t + float(ln.opt("for", "1"))
        elif verb == "agent-freeze":
            if not h.powered:
                w.say(f"{h.name}: nothing to freeze (the host is off)")
                return
            h.agent_up, h.agent_back_at, h.frozen = False, None, True
        elif verb == "agent-thaw":
            if not h.frozen:
                w.say(f"{h.name}: nothing to thaw (the agent is not frozen)")
                return
            # SIGCONT: no new process, so no start-up reconcile; it carries on with what it
            # knew, and its lease renewal finds out whether the lease outlived the freeze.
            h.agent_up, h.frozen = True, False
            w.say(f"{h.name}: thawed; continues where it stopped")

    def witness_event(self, verb: str, wit: Witness) -> None:
        """A witness has power and a link, nothing else: its etcd member runs while it is on,
        and a power-on brings it back at once."""
        if verb == "power-off":
            wit.powered = False
        elif verb == "power-on":
            wit.powered = True
        elif verb == "cut-store" or verb == "net-off":
            wit.reaches_store = False
        else:  # net-on, heal
            wit.reaches_store, wit.side = True, 0

    # --- checks ----------------------------------------------------------------------------

    def expect(self, ln: Line) -> None:
        text = ln.text
        problem = self.problem(ln)
        if problem is None:
            self.world.say(f"check: {text}: ok")
        else:
            self.fail(f"expected {text}; {problem}")

    def problem(self, ln: Line) -> str | None:
        """What is wrong with the expectation now, or None when it holds."""
        w, s = self.world, self.world.store
        what, args = ln.words[0], ln.words[1:]
        if what == "vm":
            vmid, cond = self.vm(ln, args[0]), args[1]
            where = w.runs_on(vmid)
            if cond == "running":
                if len(where) != 1:
                    return f"it runs on {', '.join(where) or 'no host'}"
                if len(args) > 3 and not matches(args[3], where[0]):
                    return f"it runs on {where[0]}"
            elif cond == "stopped":
                if where:
                    return f"it runs on {', '.join(where)}"
            elif cond == "ha":
                st = s.ha_state.vms.get(vmid)
                got = st.status.value if st else "none"
                if not matches(args[2], got):
                    return f"HA status is {got}" + (f" ({st.reason})" if st and st.reason else "")
            elif cond == "placed":
                got = s.placements[vmid][0].node
                if got != args[2]:
                    return f"placed on {got}"
            else:
                raise ScenarioError(f"line {ln.number}: unknown expectation '{ln.text}'")
        elif what == "node":
            ns = s.ha_state.nodes.get(args[0])
            got = ns.status.value if ns else "none"
            if not matches(args[1], got):
                return f"HA node status is {got}"
        elif what == "leader":
            got = s.leader or "nobody"
            if not matches(args[0], got):
                return f"leader is {got}"
        elif what == "quorum":
            m, machines = w.members, w.machines()
            held = quorum.answers(args[0], m, machines) if len(args) == 2 else \
                quorum.has_quorum(m, machines)
            if held != (args[-1] == "yes"):
                whom = f"the store answers {args[0]}" if len(args) == 2 else \
                    "a majority of voters " + quorum.names(m.voters) + " reach each other"
                return whom if held else "not: " + whom
        elif what == "member":
            got = "voter" if args[0] in w.members.voters else \
                "out" if args[0] in w.members.out else "client"
            if not matches(args[1], got):
                return f"it is {got}"
        else:
            raise ScenarioError(f"line {ln.number}: unknown expectation '{ln.text}'")
        return None

    def procs_now(self) -> dict[str, frozenset[int]]:
        return {name: frozenset(h.procs) for name, h in self.world.hosts.items()}

    def windows(self, started: list[tuple[str, int]]) -> None:
        """Window expectations: checked at every tick inside them (both ends included); the
        first tick that breaks one fails it, and the log says at its end that it held."""
        t = self.world.t
        for i, win in enumerate(self.sc.windows):
            if not win.start - 1e-9 <= t <= win.end + 1e-9 or i in self.broken_windows:
                continue
            words = win.line.words
            text = f"during {win.start:g}-{win.end:g} {win.line.text}"
            if words[0] == "vm" and words[2].startswith("never-started"):
                vmid = self.vm(win.line, words[1])
                hosts = [h for h, v in started
                         if v == vmid and (words[2] == "never-started" or h == words[3])]
                problem = f"it started on {hosts[0]}" if hosts else None
            else:
                problem = self.problem(win.line)
            if problem is not None:
                self.broken_windows.add(i)
                self.fail(f"expected {text}; {problem}")
            elif t + DT > win.end + 1e-9:
                self.world.say(f"check: {text}: ok")

    def could_run(self, vmid: int) -> bool:
        """Some host could run the VM now: online (its agent reaches etcd and its lease
        lives), not in maintenance, with the memory free, allowed by the VM's strict rules
        (strict node preferences, anti-affinity) and where its start does not fail."""
        w, s = self.world, self.world.store
        need = s.configs[vmid].memory_mb
        rules = [r for r in s.rules.values() if vmid in r.vms]
        for h in w.hosts.values():
            req = s.requests.get(h.name)
            if not h.connected or not w.alive(h.name) or (req and req.maintenance):
                continue
            if w.node(h.name).shutting_down is not None:
                continue
            if vmid in h.broken:
                continue
            used = sum(s.configs[v].memory_mb for v in h.procs if v in s.configs and v != vmid)
            if h.memory_mb - used < need:
                continue
            if any(r.kind == "node-preference" and r.strict and h.name not in r.nodes
                   for r in rules):
                continue
            if any(r.kind == "anti-affinity" and any(v != vmid and v in h.procs for v in r.vms)
                   for r in rules):
                continue
            return True
        return False

    def invariants(self) -> None:
        w = self.world
        for vmid in w.store.configs:
            where = w.runs_on(vmid)
            if len(where) > 1:
                self.fail(f"one-owner: VM {vmid} runs on {', '.join(where)}")
        lost = self.initial - set(w.store.configs)
        if lost:
            self.fail(f"configs-kept: VM config(s) {vm_list(lost)} lost")
        if self.bound is None:
            return
        for vmid, st in w.store.ha.items():
            if st.state is not HARequest.STARTED or vmid in self.allow_down or w.runs_on(vmid):
                self.down.pop(vmid, None)
                continue
            ha = w.store.ha_state.vms.get(vmid)
            if ha is not None and ha.status is VMStatusHA.FREEZE:
                # HA waits for its host on purpose (a clean shutdown under way, or done under
                # policy freeze): not down "while a host could run it"; the count pauses.
                continue
            if w.has_quorum() and self.could_run(vmid):
                self.down[vmid] = self.down.get(vmid, 0.0) + DT
                if self.down[vmid] > self.bound:
                    self.fail(f"ha-bound: HA VM {vmid} down longer than {self.bound:g}s "
                              "while a host could run it")

    # --- loop ------------------------------------------------------------------------------

    def run(self) -> Result:
        w = self.world
        events = list(self.sc.events)
        expects = sorted(self.sc.expects, key=lambda e: e[0])
        next_manager = 0.0
        while w.t <= self.until + 1e-9:
            while events and events[0][0] <= w.t + 1e-9:
                self.event(events.pop(0)[1])
                w.refresh_store()  # what the event changed holds for the next one
            w.leases_and_watchdogs()
            w.agents()
            if w.t >= next_manager - 1e-9:
                self.manager.step()
                next_manager += MANAGER_EVERY
            now = self.procs_now()
            started = sorted((name, v) for name, procs in now.items()
                             for v in procs - self.procs_before.get(name, frozenset()))
            self.procs_before = now
            self.invariants()
            self.windows(started)
            while expects and expects[0][0] <= w.t + 1e-9:
                self.expect(expects.pop(0)[1])
            w.t = round(w.t + DT, 6)
        w.t = self.until
        for at, ln in expects:
            self.fail(f"expectation at {at:g} after the end of the run: {ln.text}")
        for win in self.sc.windows:
            if win.end > self.until + 1e-9:
                self.fail(f"window {win.start:g}-{win.end:g} ends after the run: "
                          f"{win.line.text}")
        w.say(f"sim: end of run, {len(self.failures)} failure(s)" if self.failures
              else "sim: end of run, all checks passed")
        return Result(self.sc.name, w.log, self.failures)


def matches(want: str, got: str) -> bool:
    """`x` is x, `!x` anything but x."""
    return got != want[1:] if want.startswith("!") else got == want


def run(sc: Scenario) -> Result:
    return Run(sc).run()
