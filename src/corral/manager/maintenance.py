"""Maintenance mode as a pure decision: empty a host, then bring its VMs home.

One function, `plan_host`, classifies every VM that concerns a host and says what to do next;
the manager takes its actions, the API its status. Both read the same classification, so what
`maintenance status` shows is exactly what the manager is doing.

Task ids derive from what they act on: the VM, its placement revision and the maintenance
request's time. Queuing the same step twice is harmless, a new manager continues from etcd
alone. A failed step is retried a few times (attempt numbers are part of the id), then the VM
is listed as stuck until it changes or the operator enables maintenance again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from corral.balancer.model import BalanceConfig
from corral.cluster.actions import Action, QueueTask, SetPlacement
from corral.cluster.models import VM, NodeRequest, RunState, Task, TaskState
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import HARule
from corral.ha.placement import choose_node
from corral.ha.placement import refusal as rule_refusal
from corral.scheduler.capacity import MIGRATION_KINDS, migration_refusal

# Migrations at once out of an evacuating host (or into a host its VMs return to): enough to
# overlap the slow parts, few enough not to saturate the host's network.
DEFAULT_PARALLEL = 2
STOP_TIMEOUT = 180.0
# A failed step (an agent killed mid-migration, a host briefly offline) is tried again after a
# pause, a few times, before the VM is listed as stuck.
MAX_ATTEMPTS = 3
RETRY_AFTER = 5.0

State = Literal["off", "evacuating", "in-maintenance", "returning"]


class MaintenanceStatus(BaseModel):
    """Where a host stands; VM ids per category, stuck ones with the reason."""

    node: str
    state: State
    enabled: bool
    no_return: bool = False
    parallel: int = DEFAULT_PARALLEL
    to_move: list[int] = []  # waiting for a migration slot (or for another task to end)
    moving: list[int] = []  # migrating now (away, or back home)
    away: list[int] = []  # moved off, remembering this host as their origin
    staying: list[int] = []  # `maintenance: stay`, left on the host
    stopped: list[int] = []  # `maintenance: stop` (or stopping), kept on the host
    stuck: dict[int, str] = {}  # cannot move, and why


@dataclass
class _Plan:
    status: MaintenanceStatus
    actions: list[Action] = field(default_factory=list)
    rules: Sequence[HARule] = ()  # HA placement rules: evacuation keeps to them too
    scoring: BalanceConfig | None = None  # the balancer's weights, to rank targets


def parallel_of(request: NodeRequest | None) -> int:
    return request.parallel if request and request.parallel else DEFAULT_PARALLEL


def _queue(plan: _Plan, snap: ClusterSnapshot, task: Task) -> ClusterSnapshot:
    plan.actions.append(QueueTask(task))
    return snap.with_tasks([task])


def _evac_base(node: str, vm: VM, request: NodeRequest) -> str:
    return f"maint-{node}-{vm.vmid}-{vm.placement_rev}-{int(request.requested_at)}"


def _return_base(vm: VM) -> str:
    return f"return-{vm.vmid}-{vm.placement_rev}"


@dataclass(frozen=True)
class _Next:
    """The next attempt at a step: its task id, or why there is none now."""

    task_id: str | None = None
    wait: bool = False  # a retry, not yet due
    stuck: str | None = None
    failed_targets: frozenset[str] = frozenset()  # where earlier attempts failed to go


def _next_attempt(snap: ClusterSnapshot, base: str, what: str) -> _Next:
    """Attempts are f"{base}-0", "-1", ...: a failed one (an agent killed mid-migration) is
    tried again after RETRY_AFTER seconds, MAX_ATTEMPTS times in all, then the VM is stuck."""
    last: Task | None = None
    failed: set[str] = set()
    for attempt in range(MAX_ATTEMPTS):
        task_id = f"{base}-{attempt}"
        task = snap.task(task_id)
        if task is None:
            if last is not None and last.ended_at is not None \
                    and snap.now - last.ended_at < RETRY_AFTER:
                return _Next(wait=True)
            return _Next(task_id=task_id, failed_targets=frozenset(failed))
        if task.state is TaskState.OK:
            return _Next(stuck=f"task {task_id} ended but the VM has not moved")
        if task.state is not TaskState.ERROR:
            return _Next(wait=True)
        last = task
        if isinstance(target := task.params.get("target"), str):
            failed.add(target)
    error = last.error if last is not None else None
    return _Next(stuck=f"{what} failed {MAX_ATTEMPTS} times: {error or 'unknown error'}")


def _migrate(task_id: str, vm: VM, target: str, origin: str | None, now: float,
             local: bool) -> Task:
    return Task(id=task_id, kind="vm.migrate", node=vm.placement.node, vmid=vm.vmid,
                params={"target": target, "with_local_disks": local, "bwlimit_mbps": None,
                        "origin": origin},
                created_at=now)


def _outgoing(snap: ClusterSnapshot, node: str) -> int:
    return sum(1 for t in snap.unfinished() if t.kind in MIGRATION_KINDS and t.node == node)


def _incoming_returns(snap: ClusterSnapshot, node: str) -> int:
    return sum(1 for t in snap.unfinished()
               if t.kind in MIGRATION_KINDS and t.params.get("target") == node
               and t.id.startswith("return-"))


def _destination(snap: ClusterSnapshot, node: str, vm: VM, rules: Sequence[HARule],
                 avoid: frozenset[str] = frozenset(), scoring: BalanceConfig | None = None
                 ) -> tuple[str | None, str | None, str]:
    """Where a VM leaving node goes, the origin it keeps, or why it cannot go anywhere.
    Hosts in `avoid` (earlier attempts failed to reach them) are taken only when no other
    host will do."""
    origin = vm.placement.origin
    running = vm.placement.state is not RunState.STOPPED
    if origin and origin != node and origin not in avoid \
            and migration_refusal(snap, vm, origin, True) is None \
            and rule_refusal(snap, vm, list(rules), origin, running) is None:
        # It was here only because its own host was in maintenance: send it home instead.
        return origin, None, ""
    # The hosts a migration could go to, ranked as HA ranks them (its rules, then the
    # balancer's score).
    refused = {n: why for n in snap.nodes
               if (why := migration_refusal(snap, vm, n, True)) is not None}
    target, why_not = choose_node(snap, vm, list(rules), frozenset(refused) | avoid, running,
                                  scoring)
    if target is None and avoid:
        target, why_not = choose_node(snap, vm, list(rules), frozenset(refused), running,
                                      scoring)
    if target is None and len(snap.nodes) <= 1:
        why_not = "no other host in the cluster"
    return target, origin or node, "; ".join(
        [*(w for n, w in sorted(refused.items()) if n != node), why_not]).strip("; ")


def _stop_one(plan: _Plan, snap: ClusterSnapshot, node: str, vm: VM,
              request: NodeRequest) -> ClusterSnapshot:
    """`maintenance: stop`: shut the VM down where it is."""
    st = plan.status
    base = _evac_base(node, vm, request)
    if vm.placement.state is RunState.STOPPED:
        st.stopped.append(vm.vmid)
        return snap
    if (active := snap.active_task(vm.vmid)) is not None:
        (st.stopped if active.id.startswith(base) else st.to_move).append(vm.vmid)
        return snap
    step = _next_attempt(snap, base, "shutdown")
    if step.stuck is not None:
        st.stuck[vm.vmid] = step.stuck
        return snap
    st.stopped.append(vm.vmid)
    if step.task_id is None:
        return snap
    # A paused guest cannot act on the power button: stop it hard.
    paused = vm.placement.state is RunState.PAUSED
    return _queue(plan, snap, Task(
        id=step.task_id, kind="vm.stop" if paused else "vm.shutdown", node=node, vmid=vm.vmid,
        params={} if paused else {"timeout": STOP_TIMEOUT}, created_at=snap.now))


def _evacuate_one(plan: _Plan, snap: ClusterSnapshot, node: str, vm: VM,
                  request: NodeRequest) -> ClusterSnapshot:
    st = plan.status
    vmid = vm.vmid
    if vm.config.maintenance == "stay":
        st.staying.append(vmid)
        return snap
    if vm.config.maintenance == "stop":
        return _stop_one(plan, snap, node, vm, request)
    if (active := snap.active_task(vmid)) is not None:
        if active.kind in MIGRATION_KINDS:
            st.moving.append(vmid)
        else:
            st.to_move.append(vmid)  # another action first; then it moves
        return snap
    step = _next_attempt(snap, _evac_base(node, vm, request), "migration")
    if step.stuck is not None:
        st.stuck[vmid] = step.stuck
        return snap
    target, new_origin, why_not = _destination(snap, node, vm, plan.rules, step.failed_targets,
                                               plan.scoring)
    if target is None:
        st.stuck[vmid] = why_not
        return snap
    st.to_move.append(vmid)  # "moving" once its task is in etcd
    if step.task_id is None or _outgoing(snap, node) >= st.parallel:
        return snap
    local = bool(snap.local_disks(vm))
    return _queue(plan, snap, _migrate(step.task_id, vm, target, new_origin, snap.now, local))


def _return_one(plan: _Plan, snap: ClusterSnapshot, node: str, vm: VM,
                request: NodeRequest | None) -> ClusterSnapshot:
    st = plan.status
    vmid = vm.vmid
    if vm.placement.node == node or (request is not None and request.no_return):
        if snap.active_task(vmid) is None:
            note = "back home" if vm.placement.node == node else "maintenance ended, no return"
            plan.actions.append(SetPlacement(
                vmid, vm.placement.model_copy(update={"origin": None}), vm.placement_rev, note))
        return snap
    if (active := snap.active_task(vmid)) is not None:
        (st.moving if active.kind in MIGRATION_KINDS else st.to_move).append(vmid)
        return snap
    step = _next_attempt(snap, _return_base(vm), "return")
    if step.stuck is not None:
        st.stuck[vmid] = step.stuck
        return snap
    if (refusal := migration_refusal(snap, vm, node, with_local_disks=True)) is not None:
        st.stuck[vmid] = refusal
        return snap
    st.to_move.append(vmid)
    if step.task_id is None or _incoming_returns(snap, node) >= st.parallel:
        return snap
    local = bool(snap.local_disks(vm))
    return _queue(plan, snap, _migrate(step.task_id, vm, node, None, snap.now, local))


def moved_off(node: str, vms: Iterable[VM]) -> list[VM]:
    """The VMs maintenance moved off node (each remembers it as its origin), to bring back
    once it ends."""
    return [vm for vm in vms if vm.placement.origin == node and vm.placement.node != node]


def plan_host(snap: ClusterSnapshot, node: str, rules: Sequence[HARule] = (),
              scoring: BalanceConfig | None = None
              ) -> tuple[MaintenanceStatus, list[Action], ClusterSnapshot]:
    """The host's maintenance status, the next steps, and snap with those steps queued."""
    n = snap.nodes.get(node)
    request = n.request if n else None
    enabled = bool(request and request.maintenance)
    plan = _Plan(MaintenanceStatus(node=node, state="off", enabled=enabled,
                                   no_return=bool(request and request.no_return),
                                   parallel=parallel_of(request)), rules=rules,
                 scoring=scoring)
    st = plan.status
    if enabled:
        assert request is not None
        for vm in snap.vms_on(node):
            snap = _evacuate_one(plan, snap, node, vm, request)
        st.away.extend(v.vmid for v in moved_off(node, snap.vms.values()))
        st.state = "evacuating" if st.to_move or st.moving else "in-maintenance"
    else:
        for vm in sorted(snap.vms.values(), key=lambda v: v.vmid):
            if vm.placement.origin != node or snap.in_maintenance(vm.placement.node):
                continue  # an evacuating host's plan moves its VMs (home, when it can)
            snap = _return_one(plan, snap, node, vm, request)
        st.state = "returning" if st.to_move or st.moving or st.stuck else "off"
    for part in (st.to_move, st.moving, st.away, st.staying, st.stopped):
        part.sort()
    return st, plan.actions, snap


def maintenance_status(snap: ClusterSnapshot, node: str, rules: Sequence[HARule] = (),
                       scoring: BalanceConfig | None = None) -> MaintenanceStatus:
    return plan_host(snap, node, rules, scoring)[0]


def host_names(snap: ClusterSnapshot) -> list[str]:
    """Hosts with something to do: in maintenance, or owed returning VMs."""
    # A host whose request does not decode may or may not be in maintenance: neither empty
    # it nor bring its VMs home until it reads again.
    return sorted(({name for name in snap.nodes if snap.in_maintenance(name)} | snap.origins())
                  - snap.unreadable_requests)


def decide_maintenance(snap: ClusterSnapshot, rules: Sequence[HARule] = (),
                       scoring: BalanceConfig | None = None) -> list[Action]:
    actions: list[Action] = []
    for node in host_names(snap):
        _, more, snap = plan_host(snap, node, rules, scoring)
        actions.extend(more)
    return actions
