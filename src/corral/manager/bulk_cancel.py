"""Cancelling a bulk action, whole or for some of its VMs, as a pure decision.

Cancel means: a VM whose child task has not begun is not acted on. A child an agent has
claimed runs to its end, and a migration among them finishes or rolls back as it always
does, so a cancel never leaves a VM half-moved or on two hosts.

The writes are made so that neither the manager nor an agent can overtake them (the API's
shell, `api/routes_bulk.py`, makes them):

- a VM with no child task yet gets its child record created already ended as cancelled, in a
  transaction that needs the key absent; the manager queues children the same way, so exactly
  one of the two records is written and the manager never queues that VM;
- a queued child is ended as cancelled in a transaction on its revision, as an agent claims it
  on the same revision: exactly one of the two wins;
- a whole cancel also writes a marker task f"{parent}-cancel", from which the manager cancels
  every VM it has not queued yet, whatever the API could see of the plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from corral.cluster.models import Task, TaskState
from corral.manager.bulk import (
    CHILD_KIND,
    KIND,
    MARKER_KIND,
    NOT_BEGUN,
    BulkParams,
    child_id,
    is_cancelled,
    marker_id,
)


class CancelRefused(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


@dataclass(frozen=True)
class CancelPlan:
    create: list[Task] = field(default_factory=list)  # absent children, written as cancelled
    end: list[Task] = field(default_factory=list)  # queued children, their cancelled record
    begun: dict[int, str] = field(default_factory=dict)  # claimed: they run to their end
    finished: dict[int, str] = field(default_factory=dict)  # nothing left to cancel
    marker: Task | None = None  # a whole cancel's marker for the manager


def job_vms(parent: Task, params: BulkParams, on_node: Sequence[int]) -> list[int]:
    """The VMs of the job: its plan once the manager fixed it, else what the plan will be
    made of (the requested VMs, or every VM on the host)."""
    plan = parent.result.get("plan")
    if isinstance(plan, list):
        return [int(v) for v in plan]
    return sorted(set(params.vms)) if params.vms is not None else sorted(set(on_node))


def cancelled_child(parent: Task, params: BulkParams, vmid: int, now: float) -> Task:
    """The record that takes the place of a child the manager has not queued yet."""
    return Task(id=child_id(parent.id, vmid), kind=CHILD_KIND[params.action], node=parent.node,
                vmid=vmid, parent=parent.id, state=TaskState.ERROR, progress=1.0,
                created_at=now, ended_at=now, error=NOT_BEGUN, result={"cancelled": True},
                log=[NOT_BEGUN])


def cancelled_queued(child: Task, now: float) -> Task:
    return child.model_copy(update={
        "state": TaskState.ERROR, "progress": 1.0, "ended_at": now, "error": NOT_BEGUN,
        "result": {**child.result, "cancelled": True}}).with_log(NOT_BEGUN)


def plan_cancel(parent: Task, children: Mapping[int, Task], on_node: Sequence[int],
                vms: Sequence[int] | None, now: float) -> CancelPlan:
    """What cancelling `vms` of the bulk task `parent` (None: all of it) writes.

    children: the job's child tasks by VM id, as just read; on_node: the VMs now on the host
    (for a job the manager has not planned yet)."""
    if parent.kind != KIND:
        raise CancelRefused(409, f"task {parent.id} is a {parent.kind}, not a bulk action: "
                                 "only bulk actions can be cancelled")
    if parent.state.finished:
        raise CancelRefused(409, f"task {parent.id} has already ended ({parent.state.value})")
    try:
        params = BulkParams.model_validate(parent.params)
    except ValueError as e:
        raise CancelRefused(409, f"task {parent.id} has parameters that do not decode; "
                                 "the manager ends it") from e
    in_job = job_vms(parent, params, on_node)
    if vms is not None:
        if outside := sorted(set(vms) - set(in_job)):
            raise CancelRefused(422, f"VM(s) {', '.join(map(str, outside))} not part of task "
                                     f"{parent.id}", "vms")
        wanted = sorted(set(vms))
    else:
        wanted = in_job
    skipped: dict[str, str] = parent.result.get("skipped", {})
    refused: dict[str, str] = parent.result.get("failed", {})
    plan = CancelPlan()
    for vmid in wanted:
        child = children.get(vmid)
        if str(vmid) in skipped:
            plan.finished[vmid] = f"skipped: {skipped[str(vmid)]}"
        elif child is None and str(vmid) in refused:
            plan.finished[vmid] = f"failed: {refused[str(vmid)]}"
        elif child is None:
            plan.create.append(cancelled_child(parent, params, vmid, now))
        elif child.state is TaskState.QUEUED:
            plan.end.append(cancelled_queued(child, now))
        elif child.state is TaskState.RUNNING:
            plan.begun[vmid] = f"its {child.kind} has begun and runs to its end"
        else:
            plan.finished[vmid] = "already cancelled" if is_cancelled(child) \
                else f"already ended ({child.state.value})"
    if vms is not None:
        return plan
    marker = Task(id=marker_id(parent.id), kind=MARKER_KIND, node=parent.node,
                  parent=parent.id, state=TaskState.OK, progress=1.0, created_at=now,
                  started_at=now, ended_at=now, log=["the whole job was cancelled"])
    return CancelPlan(plan.create, plan.end, plan.begun, plan.finished, marker)


def nothing_cancelled(cancelled: Sequence[int], begun: Mapping[int, str],
                      finished: Mapping[int, str]) -> CancelRefused | None:
    """A cancel of named VMs that stopped none of them is refused, with each one's reason (a
    whole cancel is not: its marker still ends the job once the VMs under way are done)."""
    if cancelled:
        return None
    reasons = {**begun, **finished}
    return CancelRefused(409, "nothing to cancel: " + "; ".join(
        f"VM {v}: {reasons[v]}" for v in sorted(reasons)), "vms")
