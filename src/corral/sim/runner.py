"""Runs a scenario: builds the world, advances the virtual clock, fires events, runs the
manager, and checks the expectations and the invariants after every tick:
- one-owner: a VM never runs on two hosts (a cut-off host runs its VMs until its watchdog
  fires, so a recovery before fencing shows up here);
- configs-kept: no VM config is lost;
- ha-bound: an HA VM meant to be started is not down longer than the bound while some host
  could run it."""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.cluster.models import NodeRequest, Task
from corral.ha.models import FenceConfirmation, HARequest, HARule, HASettings, HATiming
from corral.sim.manager import SimManager
from corral.sim.scenario import Line, Scenario, ScenarioError
from corral.sim.world import World

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
                               stable_after=float(cl.opt("stable-after", "60")))
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

    def fail(self, message: str) -> None:
        if message not in self.reported:
            self.reported.add(message)
            self.failures.append(f"t={self.world.t:g}: {message}")
            self.world.say(f"FAIL {message}")

    # --- setup -----------------------------------------------------------------------------

    def setup(self, ln: Line) -> None:
        w, s = self.world, self.world.store
        head, args = ln.words[0], ln.words[1:]
        if head == "node":
            w.add_host(args[0], int(ln.opt("memory", "4096")))
        elif head == "vm":
            vmid, node = int(args[0]), args[2]
            w.add_vm(vmid, node, int(ln.opt("memory", "512")), "stopped" not in args)
            if "ha" in ln.opts:
                s.ha[vmid] = HASettings(vmid=vmid, state=HARequest(ln.opts["ha"]),
                                        max_restart=int(ln.opt("max-restart", "1")),
                                        max_relocate=int(ln.opt("max-relocate", "1")))
        elif head == "rule" and args[0] == "anti":
            s.rules[args[1]] = HARule(name=args[1], kind="anti-affinity",
                                      vms=[int(v) for v in args[2].split(",")])
        elif head == "rule" and args[0] == "prefer":
            nodes = {n: int(p) for n, _, p in (x.partition(":") for x in args[2].split(","))}
            s.rules[args[1]] = HARule(name=args[1], kind="node-preference", nodes=nodes,
                                      vms=[int(v) for v in ln.opts["vms"].split(",")],
                                      strict="strict" in args)
        elif head == "maintenance":
            s.requests[args[0]] = NodeRequest(maintenance=True, requested_at=0)
        elif head == "bound":
            self.bound = None if args[0] == "off" else float(args[0])
        elif head == "allow-down":
            self.allow_down.update(int(v) for v in args[0].split(","))
        else:
            raise ScenarioError(f"line {ln.number}: unknown setup '{' '.join(ln.words)}'")

    # --- events ----------------------------------------------------------------------------

    def hosts_of(self, name: str) -> list[str]:
        if name == "all":
            return sorted(self.world.hosts)
        if name == "leader":
            return [self.world.store.leader] if self.world.store.leader else []
        if name not in self.world.hosts:
            raise ScenarioError(f"no host {name}")
        return [name]

    def event(self, ln: Line) -> None:
        w, s = self.world, self.world.store
        verb, args = ln.words[0], ln.words[1:]
        w.say(f"event: {' '.join(ln.words)}")
        if verb in ("power-off", "power-on", "net-off", "net-on", "agent-restart",
                    "agent-freeze", "fence-confirm"):
            for name in self.hosts_of(args[0]):
                h = w.hosts[name]
                if verb in ("power-off", "fence-confirm"):
                    h.powered, h.agent_up, h.agent_back_at = False, False, None
                    h.procs.clear()
                    if verb == "fence-confirm":
                        s.fenced[name] = FenceConfirmation(node=name, at=w.t, by="sim-ipmi")
                elif verb == "power-on" and not h.powered:
                    h.powered, h.agent_back_at, h.fed_at = True, w.t + 3.0, w.t
                elif verb in ("net-off", "net-on"):
                    h.network = verb == "net-on"
                elif verb == "agent-restart":
                    h.agent_up, h.agent_back_at = False, w.t + float(ln.opt("for", "1"))
                elif verb == "agent-freeze":
                    h.agent_up, h.agent_back_at = False, None
        elif verb == "maintenance":
            s.requests[args[0]] = NodeRequest(maintenance=args[1] == "on", requested_at=w.t)
        elif verb == "crash":
            for h in w.hosts.values():
                h.procs.discard(int(args[0]))
        elif verb in ("break", "fix"):
            vmid = int(args[0])
            names = [args[2]] if len(args) > 2 else list(w.hosts)
            for name in names:
                (w.hosts[name].broken.add if verb == "break" else w.hosts[name].broken.discard)(
                    vmid)
        elif verb == "ha":
            vmid = int(args[0])
            s.ha[vmid] = s.ha[vmid].model_copy(update={"state": HARequest(args[1])})
        elif verb in ("start", "shutdown"):
            # What the API does: queue the task, and the HA request follows.
            vmid = int(args[0])
            p, _ = s.placements[vmid]
            if vmid in s.ha:
                want = HARequest.STARTED if verb == "start" else HARequest.STOPPED
                s.ha[vmid] = s.ha[vmid].model_copy(update={"state": want})
            tid = f"op-{vmid}-{verb}-{w.t:g}"
            s.tasks[tid] = Task(id=tid, kind=f"vm.{verb}", node=p.node, vmid=vmid,
                                created_at=w.t)
        else:
            raise ScenarioError(f"line {ln.number}: unknown event '{verb}'")

    # --- checks ----------------------------------------------------------------------------

    def expect(self, ln: Line) -> None:
        w, s = self.world, self.world.store
        what, args = ln.words[0], ln.words[1:]
        text = " ".join(ln.words)
        if what == "vm":
            vmid, cond = int(args[0]), args[1]
            where = w.runs_on(vmid)
            if cond == "running":
                if len(where) != 1:
                    return self.fail(f"expected {text}; it runs on {where or 'no host'}")
                if len(args) > 3 and args[2] == "on":
                    want = args[3]
                    bad = where[0] == want[1:] if want.startswith("!") else where[0] != want
                    if bad:
                        return self.fail(f"expected {text}; it runs on {where[0]}")
            elif cond == "stopped":
                if where:
                    return self.fail(f"expected {text}; it runs on {where}")
            elif cond == "ha":
                st = s.ha_state.vms.get(vmid)
                got = st.status.value if st else "none"
                if got != args[2]:
                    return self.fail(f"expected {text}; HA status is {got} "
                                     f"({st.reason if st else ''})")
            elif cond == "placed":
                got = s.placements[vmid][0].node
                if got != args[2]:
                    return self.fail(f"expected {text}; placed on {got}")
            else:
                raise ScenarioError(f"line {ln.number}: unknown expectation '{text}'")
        elif what == "node":
            ns = s.ha_state.nodes.get(args[0])
            got = ns.status.value if ns else "none"
            if got != args[1]:
                self.fail(f"expected {text}; HA node status is {got}")
        elif what == "leader":
            want, got = args[0], s.leader or "nobody"
            bad = got == want[1:] if want.startswith("!") else got != want
            if bad:
                self.fail(f"expected {text}; leader is {got}")
        else:
            raise ScenarioError(f"line {ln.number}: unknown expectation '{text}'")
        return None

    def invariants(self) -> None:
        w = self.world
        for vmid in w.store.configs:
            where = w.runs_on(vmid)
            if len(where) > 1:
                self.fail(f"one-owner: VM {vmid} runs on {', '.join(where)}")
        lost = self.initial - set(w.store.configs)
        if lost:
            self.fail(f"configs-kept: VM config(s) {sorted(lost)} lost")
        if self.bound is None:
            return
        someone_up = any(h.connected for h in w.hosts.values())
        for vmid, st in w.store.ha.items():
            if st.state is not HARequest.STARTED or vmid in self.allow_down or w.runs_on(vmid):
                self.down.pop(vmid, None)
                continue
            if someone_up:
                self.down[vmid] = self.down.get(vmid, 0.0) + DT
                if self.down[vmid] > self.bound:
                    self.fail(f"ha-bound: HA VM {vmid} down longer than {self.bound:g}s")

    # --- loop ------------------------------------------------------------------------------

    def run(self) -> Result:
        w = self.world
        events = list(self.sc.events)
        expects = sorted(self.sc.expects, key=lambda e: e[0])
        next_manager = 0.0
        while w.t <= self.until + 1e-9:
            while events and events[0][0] <= w.t + 1e-9:
                self.event(events.pop(0)[1])
            w.leases_and_watchdogs()
            w.agents()
            if w.t >= next_manager - 1e-9:
                self.manager.step()
                next_manager += MANAGER_EVERY
            self.invariants()
            while expects and expects[0][0] <= w.t + 1e-9:
                self.expect(expects.pop(0)[1])
            w.t = round(w.t + DT, 6)
        for at, ln in expects:
            self.fail(f"expectation at {at:g} after the end of the run: {' '.join(ln.words)}")
        return Result(self.sc.name, w.log, self.failures)


def run(sc: Scenario) -> Result:
    return Run(sc).run()
