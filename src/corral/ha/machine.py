"""The HA state machine: a pure function from (snapshot, HA inputs, timing) to actions and
the next HA state. No I/O, no clock (snap.now), no randomness; task ids derive from the VM,
its placement generation and an attempt counter, so they never repeat.

Per HA VM, each pass:
- ignored: hands off. disabled/stopped: shut it down if it runs (disabled VMs also stay on a
  lost host; stopped ones are moved off it, stopped). On a lost host their placement turns
  stopped at once (CAS), so the host starts nothing when it returns.
- error: stays, whatever happens to its host, until the operator clears it.
- its host is lost: `fence` until the host is fenced (watchdog_timeout + margin after this
  manager first saw the lease gone, or a fence agent's confirmation), then `recovery`:
  placement moves (CAS) to the best eligible host; the start follows on the next pass, once
  the new placement is read back, so no start is ever queued for a placement that lost its
  race. A host in maintenance with nothing meant to run is not fenced: its VMs stay.
- its state is unknown (QEMU alive, QMP not answering): it may run, so nothing is started
  or moved until its host reports it stopped or is fenced.
- started, host online: start it if it does not run; a VM that stopped on its own, or a start
  that failed, is restarted in place up to max_restart, then relocated up to max_relocate
  (each eligible host once, best first; with none left, the start is retried in place),
  then `error` with the reason. Counters reset after stable_after seconds of running.
- failback: a VM running on a host its preference rule ranks below a host that returned and
  stayed online for failback_hold moves back live, once per return.
- its host shuts down cleanly (the agent announced it: `HostShutdown`): under policy freeze
  or failover the agent stops the VMs, so HA neither restarts nor moves them meanwhile
  (`freeze`); once the host is down, freeze keeps them for its return, failover recovers
  them at once (the host is `fenced`: it said every QEMU ended). Under policy migrate the
  host is in maintenance, which empties it.
- hard rules: a VM running where it breaks a strict node rule, an anti-affinity or an
  affinity rule (one added or changed while it runs) moves live to a host that keeps them;
  of a clashing pair or group only one side moves (ha.compliance), and a move queued earlier
  in the pass counts where it goes, so nothing swaps. With no such host it stays, running,
  and its reason says why; a move that failed is tried again after stable_after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from corral.cluster.actions import QueueTask, SetPlacement
from corral.cluster.models import VM, Placement, RunState, Task, TaskState, VMStatus
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.actions import ClearFenceConfirmation, HAAction, SaveHAState
from corral.ha.compliance import breach_here
from corral.ha.models import (
    HAInputs,
    HARequest,
    HARule,
    HASettings,
    HAState,
    HATiming,
    NodeHAState,
    NodeStatusHA,
    VMHAState,
    VMStatusHA,
)
from corral.ha.nodes import clock, node_states
from corral.ha.placement import choose_node, priority, rules_of, with_placement
from corral.scheduler.capacity import migration_refusal

S = VMStatusHA
ALIVE = (VMStatus.RUNNING, VMStatus.PAUSED, VMStatus.STARTING, VMStatus.SHUTTING_DOWN)
MIGRATIONS = ("vm.migrate",)
# Statuses in which the manager's own start task is awaited.
STARTING = (S.REQUEST_START, S.RECOVERY, S.MIGRATE)
# Statuses HA moves a VM into before the start it owes on the new host.
OWING = (S.RECOVERY, S.MIGRATE)


def runs(vm: VM) -> bool:
    """The VM runs where it is placed (a stale report from a lost host does not count)."""
    rt = vm.runtime
    return rt is not None and rt.node == vm.placement.node and rt.status in ALIVE


def unknown(vm: VM) -> bool:
    """Its host reports it neither running nor stopped (QMP not answering, an unmapped QEMU
    state): the process is alive and may run the guest, so it counts as neither."""
    rt = vm.runtime
    return rt is not None and rt.node == vm.placement.node and rt.status is VMStatus.UNKNOWN


def unknown_reason(vm: VM) -> str:
    rt = vm.runtime
    what = rt.message if rt is not None and rt.message else "QEMU does not answer"
    return (f"state unknown on {vm.placement.node} ({what}): waiting until its host reports "
            "it stopped or is fenced")


@dataclass
class Step:
    state: VMHAState
    actions: list[HAAction] = field(default_factory=list)
    placement: Placement | None = None


@dataclass(frozen=True)
class Ctx:
    snap: ClusterSnapshot
    inputs: HAInputs
    timing: HATiming
    nodes: dict[str, NodeHAState]

    @property
    def mono(self) -> float:
        return clock(self.snap, self.inputs)


def _to(base: VMHAState, now: float, status: S, reason: str = "", **changes: Any
        ) -> VMHAState:
    since = base.since if status is base.status else now
    if status not in OWING:
        changes.setdefault("owes_start", None)
    return base.model_copy(update={"status": status, "since": since, "reason": reason,
                                   **changes})


def _task(vm: VM, node: str, kind: str, attempt: int, now: float,
          params: dict[str, object] | None = None) -> Task:
    verb = kind.removeprefix("vm.")
    return Task(id=f"ha-{vm.vmid}-g{vm.placement.generation}-a{attempt}-{verb}", kind=kind,
                node=node, vmid=vm.vmid, params=dict(params or {}), created_at=now)


def _active(c: Ctx, vm: VM) -> Task | None:
    """The unfinished task on vm, ignoring tasks of hosts that are not online: a lost host's
    task never finishes, and must not hold up the VM's recovery."""
    def online(node: str) -> bool:
        ns = c.nodes.get(node)
        return ns is not None and ns.status is NodeStatusHA.ONLINE
    return next((t for t in c.snap.unfinished_on(vm.vmid) if online(t.node)), None)


def _move(c: Ctx, vm: VM, target: str, state: RunState, reason: str) -> SetPlacement:
    p = vm.placement.model_copy(update={"node": target, "state": state, "origin": None,
                                        "generation": vm.placement.generation + 1,
                                        "moved_by": None})
    return SetPlacement(vm.vmid, p, vm.placement_rev, reason)


def _moved(move: SetPlacement) -> dict[str, Any]:
    """HA state changes for a VM whose placement HA just moved: the start it owes there
    follows once the move is read back."""
    p = move.placement
    return {"task": None, "node": p.node,
            "owes_start": p.generation if p.state is RunState.RUNNING else None}


def _start(c: Ctx, vm: VM, base: VMHAState, status: S, reason: str, **changes: object) -> Step:
    attempt = base.attempt + 1
    task = _task(vm, vm.placement.node, "vm.start", attempt, c.snap.now)
    return Step(_to(base, c.snap.now, status, reason, attempt=attempt, task=task.id,
                    node=vm.placement.node, running_since=None, owes_start=None, **changes),
                [QueueTask(task)])


def _owed_start(c: Ctx, vm: VM, base: VMHAState, task: Task | None) -> Step:
    """HA moved the VM here and has not started it yet, yet a QEMU of it seems to run: start
    it all the same. The move was a compare-and-swap on a placement that named another host,
    so nothing here was meant to run the guest: the QEMU is an unfinished migration's
    incoming one (or a source's paused copy), whose guest state nobody can vouch for. The
    agent's start stops such a QEMU and boots afresh; one that truly runs it keeps."""
    if task is not None:  # the leftover's own task (its receive) ends first
        return Step(_to(base, c.snap.now, base.status, f"waiting for task {task.id} "
                        f"({task.kind}) before starting on {vm.placement.node}"))
    return _start(c, vm, base, base.status, base.reason)


def _failure(c: Ctx, vm: VM, base: VMHAState) -> str | None:
    """Why the VM is down against the manager's wish, or None when it simply should start
    (new HA VM, operator asked, just recovered) or a start is still on its way."""
    if base.status is S.STARTED:
        return "stopped unexpectedly (crash or guest power-off)"
    if base.status not in STARTING or base.task is None:
        return None
    task = c.snap.task(base.task)
    if task is None:
        if c.snap.now - base.since < c.timing.start_timeout:
            return None
        return f"start task {base.task} vanished"
    if task.state is TaskState.ERROR:
        return f"start failed: {task.error or 'no reason given'}"
    if task.state is TaskState.OK:
        return "stopped right after it started"
    return None


def _pending(c: Ctx, base: VMHAState) -> bool:
    """Our start was queued but is not in the snapshot yet (or not finished): wait."""
    if base.status not in STARTING or base.task is None:
        return False
    task = c.snap.task(base.task)
    if task is None:
        return c.snap.now - base.since < c.timing.start_timeout
    return not task.state.finished


def _retry(c: Ctx, vm: VM, s: HASettings, base: VMHAState, why: str) -> Step:
    now, node = c.snap.now, vm.placement.node
    if base.restarts < s.max_restart:
        n = base.restarts + 1
        return _start(c, vm, base, S.REQUEST_START,
                      f"restart {n}/{s.max_restart} on {node}: {why}", restarts=n)
    if base.relocates < s.max_relocate:
        n = base.relocates + 1
        # Each host once, best first: the hosts it failed on this round are not tried again.
        tried = base.tried if node in base.tried else [*base.tried, node]
        target, whynot = choose_node(c.snap, vm, c.inputs.rules, frozenset(tried), True,
                                     c.inputs.scoring)
        if target is None:
            # Every eligible host tried, or none fits: try here again while budget is left.
            return _start(c, vm, base, S.REQUEST_START,
                          f"relocate {n}/{s.max_relocate}: no other host to try "
                          f"({whynot or 'tried ' + ', '.join(tried)}), starting again on "
                          f"{node}: {why}", relocates=n, restarts=0, tried=tried)
        move = _move(c, vm, target, RunState.RUNNING, f"HA relocate to {target}")
        # Restarts count per host: the new host gets its own max_restart tries.
        return Step(_to(base, now, S.MIGRATE, f"relocate {n}/{s.max_relocate} to {target}: "
                        f"{why}", relocates=n, restarts=0, tried=tried, **_moved(move)),
                    [move], move.placement)
    return Step(_to(base, now, S.ERROR, f"{why}; gave up after {base.restarts} restart(s) "
                    f"and {base.relocates} relocation(s)", task=None))


def _failback_rules(rules: list[HARule], vmid: int) -> list[HARule]:
    """The rules a failback obeys: an affinity group whose members all share vmid's
    preference rules fails back together, so the first member may leave its partners
    (which then follow it, since the rule now points at its new host); without this no
    member of such a group could ever move first."""
    prefs = {r.name for r in rules_of(rules, vmid, "node-preference")}

    def whole_group(r: HARule) -> bool:
        return r.kind == "affinity" and vmid in r.vms and all(
            {p.name for p in rules_of(rules, o, "node-preference")} == prefs for o in r.vms)

    return [r for r in rules if not whole_group(r)]


def _failback(c: Ctx, vm: VM, base: VMHAState) -> Step | None:
    """A live move back to a host its preference rules rank above its current one, once the
    host has been online for failback_hold; once per return of that host."""
    prefs = rules_of(c.inputs.rules, vm.vmid, "node-preference")
    if not prefs or not all(r.failback for r in prefs) or vm.placement.origin is not None:
        return None  # no preference, failback off, or maintenance owns its return
    node, mono = vm.placement.node, c.mono
    here = priority(c.inputs.rules, vm.vmid, node)
    not_yet = frozenset(
        n for n in c.snap.nodes
        if n == node or priority(c.inputs.rules, vm.vmid, n) <= here
        or (ns := c.nodes.get(n)) is None or ns.status is not NodeStatusHA.ONLINE
        or ns.online_since is None or mono - ns.online_since < c.timing.failback_hold
        or migration_refusal(c.snap, vm, n, with_local_disks=True) is not None)
    target, _ = choose_node(c.snap, vm, _failback_rules(c.inputs.rules, vm.vmid), not_yet, True,
                            c.inputs.scoring)
    if target is None:
        return None
    since = c.nodes[target].online_since
    assert since is not None  # only hosts online long enough are left
    key = f"{target}@{since:.3f}"
    if base.failback == key:
        return None  # tried for this return already (it failed, or moved away since)
    attempt = base.attempt + 1
    task = _task(vm, node, "vm.migrate", attempt, c.snap.now, _migrate_params(c, vm, target))
    return Step(_to(base, c.snap.now, S.MIGRATE,
                    f"failback to {target} (priority {priority(c.inputs.rules, vm.vmid, target)}"
                    f" over {here} on {node})", attempt=attempt, task=task.id, failback=key),
                [QueueTask(task)])


def _migrate_params(c: Ctx, vm: VM, target: str) -> dict[str, object]:
    return {"target": target, "with_local_disks": bool(c.snap.local_disks(vm)),
            "bwlimit_mbps": None, "origin": None}


def _comply(c: Ctx, vm: VM, base: VMHAState) -> Step | None:
    """A live move off a host where the VM breaks a hard rule (strict node rule,
    anti-affinity, affinity), e.g. one added while it runs; a Step without actions that says
    why it stays when no host keeps the rules; None when it keeps them, or when another VM of
    the clash is the one to move (ha.compliance decides which, the same from either side)."""
    node, now = vm.placement.node, c.snap.now
    if vm.placement.origin is not None or c.snap.in_maintenance(node):
        return None  # maintenance moves it, and brings it back
    breach = breach_here(c.snap, vm.vmid, node, c.inputs.rules, c.inputs.settings)
    if breach is None:
        return None
    key = f"{breach.rule.name}@{node}"
    if base.rule_move == key and now - base.since < c.timing.stable_after:
        # It was moved for this very breach and is still here: that move failed.
        return Step(_to(base, now, S.STARTED, f"{breach.why}; the move off {node} failed, "
                        f"tried again {c.timing.stable_after:g}s after the failure"))
    candidates = [n for n in sorted(c.snap.nodes)
                  if n != node and (breach.only is None or n == breach.only)]
    refused = {n: why for n in candidates
               if (why := migration_refusal(c.snap, vm, n, with_local_disks=True))}
    exclude = frozenset(c.snap.nodes.keys() - (set(candidates) - refused.keys()))
    target, whynot = choose_node(c.snap, vm, c.inputs.rules, exclude, True, c.inputs.scoring)
    if target is None:
        # Hosts migration_refusal ruled out never reach choose_node: their reasons first.
        whys = [*refused.values(), *([whynot] if len(refused) < len(candidates) else [])]
        return Step(_to(base, now, S.STARTED, f"{breach.why}; stays, no host keeps the "
                        f"rules: {'; '.join(whys) or 'no other host in the cluster'}"))
    attempt = base.attempt + 1
    task = _task(vm, node, "vm.migrate", attempt, now, _migrate_params(c, vm, target))
    return Step(_to(base, now, S.MIGRATE, f"{breach.why}: moving to {target}",
                    attempt=attempt, task=task.id, rule_move=key), [QueueTask(task)])


def _started(c: Ctx, vm: VM, s: HASettings, base: VMHAState) -> Step:
    now, node = c.snap.now, vm.placement.node
    task = _active(c, vm)
    if runs(vm) and base.owes_start == vm.placement.generation and base.task is None:
        return _owed_start(c, vm, base, task)
    if runs(vm):
        if task is not None and task.kind in MIGRATIONS:
            return Step(_to(base, now, S.MIGRATE, f"migrating ({task.id})", node=node))
        since = base.running_since if base.status is S.STARTED and base.running_since else now
        counters: dict[str, Any] = {}
        if now - since >= c.timing.stable_after:
            counters = {"restarts": 0, "relocates": 0}
        step = Step(_to(base, now, S.STARTED, task=None, node=node, running_since=since,
                        tried=[], **counters))
        if task is None and base.status is S.STARTED:
            # A broken hard rule first; failback (preferences) when none is, or when the
            # rules leave it nowhere to go.
            fix = _comply(c, vm, step.state)
            if fix is not None and fix.actions:
                return fix
            return _failback(c, vm, step.state) or fix or step
        return step
    if unknown(vm):
        # It may still run: a restart would fail and a relocation would run it twice.
        return Step(_to(base, now, base.status, unknown_reason(vm)))
    if task is not None:  # a start, shutdown or migration in flight: let it finish
        status = S.MIGRATE if task.kind in MIGRATIONS else base.status
        if status in (S.STARTED, S.STOPPED, S.DISABLED, S.IGNORED, S.ERROR):
            status = S.REQUEST_START
        return Step(_to(base, now, status, f"waiting for task {task.id} ({task.kind})"))
    if base.status is S.ERROR:
        return Step(base)  # stays until the operator sets the VM disabled, then started
    if _pending(c, base):
        return Step(base)
    if (wait := _restore_wait(c, vm, base)) is not None:
        return Step(_to(base, now, S.FREEZE, wait))
    if c.snap.in_maintenance(node):
        # A host in maintenance starts nothing: start it elsewhere, without counting that.
        target, whynot = choose_node(c.snap, vm, c.inputs.rules, frozenset({node}), True,
                                     c.inputs.scoring)
        if target is None:
            return Step(_to(base, now, S.REQUEST_START,
                            f"{node} is in maintenance and no host fits: {whynot}", task=None))
        move = _move(c, vm, target, RunState.RUNNING, f"HA start off maintenance host {node}")
        return Step(_to(base, now, S.MIGRATE, f"{node} is in maintenance: starting on {target}",
                        **_moved(move)), [move], move.placement)
    why = _failure(c, vm, base)
    if why is not None:
        return _retry(c, vm, s, base, why)
    status = base.status if base.status in (S.RECOVERY, S.MIGRATE) else S.REQUEST_START
    return _start(c, vm, base, status, base.reason if status is not S.REQUEST_START
                  else f"starting on {node}")


def _stopped(c: Ctx, vm: VM, s: HASettings, base: VMHAState) -> Step:
    now = c.snap.now
    final = S.DISABLED if s.state is HARequest.DISABLED else S.STOPPED
    task = _active(c, vm)
    if runs(vm) or unknown(vm):  # an unknown VM may run: stop it for sure
        if task is not None:
            return Step(_to(base, now, S.REQUEST_STOP, f"waiting for task {task.id} "
                            f"({task.kind})"))
        prev = c.snap.task(base.task) if base.task else None
        # A shutdown that did not stop it is followed by a hard stop.
        hard = prev is not None and prev.kind == "vm.shutdown" and prev.state.finished
        attempt = base.attempt + 1
        kind = "vm.stop" if hard else "vm.shutdown"
        params: dict[str, object] = {} if hard else {"timeout": c.timing.shutdown_timeout}
        t = _task(vm, vm.placement.node, kind, attempt, now, params)
        return Step(_to(base, now, S.REQUEST_STOP, f"{kind} on {vm.placement.node}",
                        attempt=attempt, task=t.id), [QueueTask(t)])
    if task is not None:
        return Step(_to(base, now, base.status if base.status is S.REQUEST_STOP else final,
                        f"waiting for task {task.id} ({task.kind})"))
    actions: list[HAAction] = []
    placement = None
    if vm.placement.state is not RunState.STOPPED:
        # So a host coming back does not start it again.
        p = vm.placement.model_copy(update={"state": RunState.STOPPED})
        actions.append(SetPlacement(vm.vmid, p, vm.placement_rev, "HA: requested stopped"))
        placement = p
    return Step(_to(base, now, final, task=None, node=vm.placement.node, restarts=0,
                    relocates=0, running_since=None), actions, placement)


def _lost_host(c: Ctx, vm: VM, s: HASettings, base: VMHAState, ns: NodeHAState | None
               ) -> Step:
    now, node = c.snap.now, vm.placement.node
    if s.state is not HARequest.STARTED and vm.placement.state is not RunState.STOPPED:
        # Asked stopped (or disabled) while its host is away: say so in the placement now,
        # so the host's agent does not boot it when the host returns.
        p = vm.placement.model_copy(update={"state": RunState.STOPPED})
        status = S.DISABLED if s.state is HARequest.DISABLED else S.FENCE
        return Step(_to(base, now, status, f"host {node} is lost; kept stopped for its return",
                        task=None),
                    [SetPlacement(vm.vmid, p, vm.placement_rev,
                                  f"HA: {s.state.value} while {node} is lost")], p)
    if ns is not None and ns.status is NodeStatusHA.MAINTENANCE:
        final = S.DISABLED if s.state is HARequest.DISABLED else S.STOPPED
        return Step(_to(base, now, final, f"host {node} is offline in maintenance; stays "
                        "there", task=None))
    if s.state is HARequest.DISABLED:
        return Step(_to(base, now, S.DISABLED, f"host {node} is lost; disabled VMs stay",
                        task=None))
    if ns is None or ns.status is not NodeStatusHA.FENCED:
        what = ns.reason if ns else "unknown host"
        return Step(_to(base, now, S.FENCE, f"host {node}: {what}", task=None))
    want = RunState.RUNNING if s.state is HARequest.STARTED else RunState.STOPPED
    local = c.snap.local_disks(vm)
    if local:
        # Its disks went down with the host: started elsewhere it would find none.
        return Step(_to(base, now, S.RECOVERY if want is RunState.RUNNING else S.STOPPED,
                        f"not recovered: its disks ({', '.join(local)}) are on {node}'s local "
                        f"storage; it waits for {node} to return", task=None))
    target, whynot = choose_node(c.snap, vm, c.inputs.rules, frozenset({node}),
                                 want is RunState.RUNNING, c.inputs.scoring)
    if target is None:
        return Step(_to(base, now, S.RECOVERY, f"no host to recover to: {whynot}", task=None))
    move = _move(c, vm, target, want, f"HA recovery from fenced host {node}")
    status = S.RECOVERY if want is RunState.RUNNING else S.STOPPED
    return Step(_to(base, now, status, f"recovered from {node} to {target}", **_moved(move)),
                [move], move.placement)


def _frozen(c: Ctx, vm: VM, s: HASettings, base: VMHAState, why: str) -> Step:
    """Its host is shutting down, or shut down under policy freeze: wait for it."""
    now, node = c.snap.now, vm.placement.node
    if s.state is not HARequest.STARTED and vm.placement.state is not RunState.STOPPED:
        # Asked stopped meanwhile: so the host does not boot it when it returns.
        p = vm.placement.model_copy(update={"state": RunState.STOPPED})
        final = S.DISABLED if s.state is HARequest.DISABLED else S.STOPPED
        return Step(_to(base, now, final, f"{why}; kept stopped for its return", task=None),
                    [SetPlacement(vm.vmid, p, vm.placement_rev,
                                  f"HA: {s.state.value} while {node} is shut down")], p)
    if s.state is not HARequest.STARTED:
        final = S.DISABLED if s.state is HARequest.DISABLED else S.STOPPED
        return Step(_to(base, now, final, why, task=None))
    return Step(_to(base, now, S.FREEZE, why, task=None))


def _restore_wait(c: Ctx, vm: VM, base: VMHAState) -> str | None:
    """A frozen VM whose host is back: the host's agent starts what is meant to run there
    on its return, and a start of HA's own beside it would fail (`already running`) and
    count as a failure. HA starts it only if the host has not within start_timeout."""
    ns = c.nodes.get(vm.placement.node)
    if (base.status is not S.FREEZE or vm.placement.state is RunState.STOPPED or ns is None
            or ns.online_since is None or c.mono - ns.online_since >= c.timing.start_timeout):
        return None
    return f"{vm.placement.node} is back: waiting for it to start the VM"


def _failed_over(c: Ctx, vm: VM, s: HASettings, base: VMHAState) -> Step | None:
    """Policy failover, host still shutting down: a VM its agent has already stopped (and
    reported stopped, with no task of the host on it) starts elsewhere now, not when the
    host's slowest guest is down. The host brings no guest up any more, and its agent
    reports a VM stopped only once its QEMU has ended."""
    node = vm.placement.node
    n = c.snap.nodes.get(node)
    sd = n.shutting_down if n is not None else None
    rt = vm.runtime
    if (sd is None or sd.policy != "failover" or s.state is not HARequest.STARTED
            or rt is None or rt.node != node or rt.status is not VMStatus.STOPPED
            or _active(c, vm) is not None):
        return None
    target, whynot = choose_node(c.snap, vm, c.inputs.rules, frozenset({node}), True,
                                 c.inputs.scoring)
    if target is None:
        return Step(_to(base, c.snap.now, S.FREEZE, f"stopped by {node}'s shutdown (policy "
                        f"failover); no host to start it on: {whynot}", task=None))
    move = _move(c, vm, target, RunState.RUNNING, f"HA failover from {node}, shutting down")
    return Step(_to(base, c.snap.now, S.RECOVERY, f"stopped by {node}'s shutdown (policy "
                    f"failover): recovered to {target}", **_moved(move)),
                [move], move.placement)


def _shutdown_wait(c: Ctx, node: str) -> str | None:
    """Why HA leaves the VMs of node alone while its host shuts down or is shut down, or
    None."""
    n = c.snap.nodes.get(node)
    sd = n.shutting_down if n is not None else None
    ns = c.nodes.get(node)
    if ns is not None and ns.status is NodeStatusHA.SHUTDOWN:
        return f"host {node}: {ns.reason}"
    if sd is None or n is None or not n.alive or sd.policy == "migrate":
        return None
    then = ("waits for its return" if sd.policy == "freeze"
            else "starts elsewhere once its host has stopped it")
    return f"host {node} is shutting down ({sd.kind}, policy {sd.policy}): the VM {then}"


def vm_step(c: Ctx, s: HASettings, vm: VM, prev: VMHAState | None) -> Step:
    now = c.snap.now
    up = runs(vm)
    base = prev or VMHAState(status=S.STARTED if up else S.STOPPED, node=vm.placement.node,
                             since=now, running_since=now if up else None)
    if s.state is HARequest.IGNORED:
        return Step(_to(base, now, S.IGNORED, task=None, restarts=0, relocates=0))
    ns = c.nodes.get(vm.placement.node)
    online = ns is not None and ns.status is NodeStatusHA.ONLINE
    if base.status is S.ERROR and s.state is HARequest.STARTED and not (online and up):
        # Not recovered, not restarted, wherever it is: the operator clears `error`.
        return Step(base)
    if (why := _shutdown_wait(c, vm.placement.node)) is not None:
        return _failed_over(c, vm, s, base) or _frozen(c, vm, s, base, why)
    if not online:
        return _lost_host(c, vm, s, base, ns)
    if s.state is HARequest.STARTED:
        return _started(c, vm, s, base)
    return _stopped(c, vm, s, base)


def decide_ha(snap: ClusterSnapshot, inputs: HAInputs, timing: HATiming
              ) -> tuple[list[HAAction], HAState]:
    """Actions for every HA VM, and the HA state to persist (SaveHAState when it changed)."""
    nodes = node_states(snap, inputs, timing)
    actions: list[HAAction] = []
    vms: dict[int, VMHAState] = {}
    work = snap
    unreadable = snap.unreadable_vms
    for vmid in sorted(inputs.settings):
        vm = work.vms.get(vmid)
        if vm is None:
            # Settings of a deleted VM: ha_status shows them, nothing to do. A VM whose record
            # is unreadable is not gone: HA leaves it, and what it knew of it, as they are.
            if vmid in unreadable and vmid in inputs.state.vms:
                vms[vmid] = inputs.state.vms[vmid]
            continue
        step = vm_step(Ctx(work, inputs, timing, nodes), inputs.settings[vmid], vm,
                       inputs.state.vms.get(vmid))
        actions.extend(step.actions)
        vms[vmid] = step.state
        if step.placement is not None:
            work = with_placement(work, vmid, step.placement)
        for a in step.actions:
            if isinstance(a, QueueTask) and a.task.kind in MIGRATIONS:
                # Its partners, later in this pass, see where it goes (rules, memory).
                work = work.with_tasks([a.task])
    # A confirmation is only for a host without its lease: one that holds a lease again
    # rejoined, and the old power-off must not count for its next loss.
    for name in sorted(inputs.fenced):
        node = snap.nodes.get(name)
        if node is not None and node.alive:
            actions.append(ClearFenceConfirmation(name))
    for vmid in inputs.unreadable_settings & inputs.state.vms.keys():
        vms[vmid] = inputs.state.vms[vmid]  # settings unreadable: left as they are, likewise
    new = HAState(vms=vms, nodes=nodes)
    if new != inputs.state:
        actions.append(SaveHAState(new))
    return actions, new


DecideHA = Callable[[ClusterSnapshot, HAInputs, HATiming], tuple[list[HAAction], HAState]]
