"""Bulk actions on a host as a pure decision.

The API creates a parent task of kind `node.bulk` (no agent claims it). The manager fixes the
list of VMs once, in the parent's result ("plan"), then queues one child task per VM with the
id f"{parent}-{vmid}", at most `parallel` at once, and sums the children up in the parent.
Everything it needs is in the parent and its children, so a new manager carries on where the
old one stopped. The operator may cancel the job, whole or per VM (`bulk_cancel.py`): a
cancelled child counts apart from the failed ones, and a whole cancel's marker task stops the
VMs not queued yet.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from corral.cluster.actions import Action, QueueTask, UpdateTask
from corral.cluster.models import VM, RunState, Task, TaskState
from corral.cluster.snapshot import ClusterSnapshot
from corral.scheduler.capacity import migration_refusal

KIND = "node.bulk"
BulkAction = Literal["migrate", "suspend", "shutdown", "start"]
CHILD_KIND: dict[str, str] = {
    "migrate": "vm.migrate", "suspend": "vm.suspend", "shutdown": "vm.shutdown",
    "start": "vm.start",
}


class BulkParams(BaseModel):
    """The parent task's params (the API's request body, `BulkRequest`, validates alike and
    refuses unknown fields; here a newer version's extra parameter is ignored)."""

    model_config = ConfigDict(extra="ignore")

    action: BulkAction
    target: str | None = None
    parallel: int = Field(default=4, ge=1, le=64)
    vms: list[int] | None = Field(default=None, min_length=1)
    with_local_disks: bool = False
    timeout: float = Field(default=180.0, gt=0, le=24 * 3600)


MARKER_KIND = "node.bulk.cancel"
NOT_BEGUN = "cancelled by the operator before it began"


def child_id(parent: str, vmid: int) -> str:
    return f"{parent}-{vmid}"


def marker_id(parent: str) -> str:
    """The task recording that the whole job was cancelled (not a VM id: no clash)."""
    return f"{parent}-cancel"


def is_cancelled(child: Task) -> bool:
    """A child the operator cancelled before an agent claimed it: not a failure."""
    return child.state is TaskState.ERROR and child.result.get("cancelled") is True


def order(action: str, vms: list[VM]) -> list[VM]:
    """Start: `startup` low first; shutdown: the reverse; the rest by VM id."""
    by_startup = sorted(vms, key=lambda v: (v.config.startup, v.vmid))
    if action == "start":
        return by_startup
    if action == "shutdown":
        return by_startup[::-1]
    return sorted(vms, key=lambda v: v.vmid)


def nothing_to_do(params: BulkParams, node: str, vm: VM) -> str | None:
    """Why vm needs no child task (it is already where the action would bring it)."""
    state = vm.placement.state
    if vm.placement.node != node:
        return f"now on {vm.placement.node}"
    if params.action == "start" and state is not RunState.STOPPED:
        return f"already {state.value}"
    if params.action == "shutdown" and state is RunState.STOPPED:
        return "not running"
    if params.action == "suspend" and state is not RunState.RUNNING:
        return "already paused" if state is RunState.PAUSED else "not running"
    return None


def _child(parent: Task, params: BulkParams, vm: VM, now: float) -> Task:
    p: dict[str, Any] = {}
    if params.action == "migrate":
        p = {"target": params.target, "with_local_disks": params.with_local_disks,
             "bwlimit_mbps": None, "origin": None}
    elif params.action == "shutdown":
        p = {"timeout": params.timeout}
    return Task(id=child_id(parent.id, vm.vmid), kind=CHILD_KIND[params.action],
                node=vm.placement.node, vmid=vm.vmid, parent=parent.id, params=p,
                created_at=now)


def _group(action: str, vm: VM | None) -> int:
    """VMs of one startup group run together; the next group waits (start and shutdown)."""
    return vm.config.startup if vm is not None and action in ("start", "shutdown") else 0


def _start(snap: ClusterSnapshot, parent: Task, params: BulkParams) -> Task:
    on_node = {vm.vmid: vm for vm in snap.vms_on(parent.node)}
    wanted = params.vms if params.vms is not None else sorted(on_node)
    skipped = {str(v): f"not on {parent.node}" for v in wanted if v not in on_node}
    plan = [vm.vmid for vm in order(params.action, [on_node[v] for v in wanted if v in on_node])]
    return parent.model_copy(update={
        "state": TaskState.RUNNING, "started_at": snap.now,
        "result": {"plan": plan, "succeeded": [], "failed": {}, "skipped": skipped,
                   "cancelled": {}},
    }).with_log(f"{params.action} of {len(plan) + len(skipped)} VM(s), {params.parallel} at once")


def step(snap: ClusterSnapshot, parent: Task) -> tuple[list[Action], ClusterSnapshot]:
    """The next actions for one unfinished bulk task."""
    try:
        params = BulkParams.model_validate(parent.params)
    except ValueError as e:
        done = parent.model_copy(update={"state": TaskState.ERROR, "ended_at": snap.now,
                                         "progress": 1.0, "error": f"bad parameters: {e}"})
        return [UpdateTask(done)], snap
    current = _start(snap, parent, params) if parent.state is TaskState.QUEUED else parent
    plan: list[int] = list(current.result.get("plan", []))
    skipped: dict[str, str] = dict(current.result.get("skipped", {}))
    # Refusals have no child task to read them from again: they are kept in the result.
    failed: dict[str, str] = dict(current.result.get("failed", {}))
    # Likewise the VMs a whole cancel stopped before they had a child task.
    cancelled: dict[str, str] = dict(current.result.get("cancelled", {}))
    cancel_all = snap.task(marker_id(parent.id)) is not None
    succeeded: list[int] = []
    active = 0
    waiting: list[int] = []
    for vmid in plan:
        if str(vmid) in skipped or str(vmid) in failed or str(vmid) in cancelled:
            continue
        child = snap.task(child_id(parent.id, vmid))
        if child is None:
            if cancel_all:
                cancelled[str(vmid)] = NOT_BEGUN
            else:
                waiting.append(vmid)
        elif child.state is TaskState.OK:
            succeeded.append(vmid)
        elif is_cancelled(child):
            cancelled[str(vmid)] = child.error or NOT_BEGUN
        elif child.state is TaskState.ERROR:
            failed[str(vmid)] = child.error or "failed"
        else:
            active += 1
    actions: list[Action] = []
    log: list[str] = []
    blocked_group: int | None = None
    # The first group that still has work: later groups wait for it (start/shutdown order).
    for vmid in plan:
        if str(vmid) in skipped or str(vmid) in failed or str(vmid) in cancelled \
                or vmid in succeeded:
            continue
        blocked_group = _group(params.action, snap.vms.get(vmid))
        break
    for vmid in waiting:
        vm = snap.vms.get(vmid)
        if active >= params.parallel or _group(params.action, vm) != blocked_group:
            break
        if vm is None:
            skipped[str(vmid)] = "the VM no longer exists"
            log.append(f"VM {vmid}: skipped, it no longer exists")
            continue
        if (why := nothing_to_do(params, parent.node, vm)) is not None:
            skipped[str(vmid)] = why
            log.append(f"VM {vmid}: skipped, {why}")
            continue
        if (busy := snap.active_task(vmid)) is not None:
            log_line = f"VM {vmid}: waiting for task {busy.id} ({busy.kind})"
            if log_line not in current.log[-1:]:
                log.append(log_line)
            break  # keep the order: nothing after it starts first
        node = snap.nodes.get(vm.placement.node)
        refusal = None if node is not None and node.alive else f"node {parent.node} is offline"
        if params.action == "migrate" and refusal is None and params.target is not None:
            refusal = migration_refusal(snap, vm, params.target, params.with_local_disks)
        if refusal is not None:
            failed[str(vmid)] = refusal
            log.append(f"VM {vmid}: {refusal}")
            continue
        child = _child(parent, params, vm, snap.now)
        actions.append(QueueTask(child))
        snap = snap.with_tasks([child])
        log.append(f"VM {vmid}: {child.kind} queued")
        active += 1
    total = len(plan) + sum(1 for k in skipped if int(k) not in plan)
    finished = len(succeeded) + len(failed) + len(skipped) + len(cancelled)
    result = {"plan": plan, "succeeded": succeeded, "failed": failed, "skipped": skipped,
              "cancelled": cancelled}
    update: dict[str, Any] = {"result": result, "progress": finished / total if total else 1.0}
    if finished >= total:
        update |= {"state": TaskState.ERROR if failed or cancel_all else TaskState.OK,
                   "ended_at": snap.now, "progress": 1.0}
        errors = []
        if failed:
            errors.append(f"{len(failed)} of {total} VM(s) failed: " + "; ".join(
                f"{k}: {v}" for k, v in failed.items()))
        if cancel_all:
            errors.append(f"cancelled by the operator: {len(cancelled)} of {total} VM(s) "
                          "not acted on")
        if errors:
            update["error"] = "; ".join(errors)
        summary = f"done: {len(succeeded)} ok, {len(failed)} failed, {len(skipped)} skipped"
        log.append(summary + (f", {len(cancelled)} cancelled" if cancelled else ""))
    new = current.model_copy(update=update)
    for line in log:
        new = new.with_log(line)
    if new != parent:
        actions.insert(0, UpdateTask(new))
    return actions, snap


def decide_bulk(snap: ClusterSnapshot) -> list[Action]:
    actions: list[Action] = []
    for parent in sorted(snap.unfinished(), key=lambda t: (t.created_at, t.id)):
        if parent.kind == KIND:
            more, snap = step(snap, parent)
            actions.extend(more)
    return actions
