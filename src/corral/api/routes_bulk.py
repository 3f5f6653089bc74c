"""Bulk actions on a host: one parent task the manager runs, a child task per VM."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from corral.api.deps import SnapDep, StoreDep
from corral.api.errors import ApiError, conflict, invalid, not_found
from corral.api.schemas import TaskAccepted
from corral.cluster import keys
from corral.cluster.models import Task
from corral.cluster.snapshot import ClusterSnapshot
from corral.cluster.store import Store
from corral.manager.bulk import KIND, BulkParams, child_id
from corral.manager.bulk_cancel import CancelRefused, nothing_cancelled, plan_cancel
from corral.scheduler.capacity import unusable

router = APIRouter(tags=["nodes"])


class BulkRequest(BulkParams):
    """The request body: the task's params, refusing fields it does not know."""

    model_config = ConfigDict(extra="forbid")


def _check_target(snap: ClusterSnapshot, node: str, body: BulkParams) -> None:
    if body.action != "migrate":
        if body.target is not None:
            raise invalid(f"target applies only to migrate, not {body.action}", "target")
        return
    if body.target is None:
        raise invalid("migrate needs a target host", "target")
    if body.target == node:
        raise invalid(f"target must be another host than {node}", "target")
    if body.target not in snap.nodes:
        raise invalid(f"node {body.target} does not exist", "target")
    if (why := unusable(snap, body.target)) is not None:
        raise conflict(why, "target")


@router.post("/nodes/{node}/bulk", response_model=TaskAccepted, status_code=202)
async def post_bulk(node: str, body: BulkRequest, store: StoreDep,
                    snap: SnapDep) -> TaskAccepted:
    found = snap.nodes.get(node)
    if found is None or found.info is None:
        raise not_found("node", node)
    if not found.alive:
        raise conflict(f"node {node} is offline")
    _check_target(snap, node, body)
    if body.vms is not None:
        here = {vm.vmid for vm in snap.vms_on(node)}
        if missing := sorted(set(body.vms) - here):
            raise invalid(f"VM(s) {', '.join(map(str, missing))} not on {node}", "vms")
    # Letters and digits only: child tasks are named f"{parent}-{vmid}".
    task = Task(id="bulk" + uuid.uuid4().hex[:12], kind=KIND, node=node,
                params=body.model_dump())
    await store.put_task(task)
    return TaskAccepted(task=task.id)


# --- cancelling a bulk job, whole or per VM (the decision: manager/bulk_cancel.py) ----------

# A write that lost a race (the manager queued the child, an agent claimed it) is decided
# again on fresh records; a VM that keeps changing is reported as begun after these rounds.
CANCEL_ROUNDS = 3


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vms: list[int] | None = Field(default=None, min_length=1)  # None: the whole job


class BulkCancelled(BaseModel):
    task: str
    whole: bool  # the whole job: the manager ends it once the VMs under way are done
    cancelled: list[int]  # will not be acted on
    begun: dict[int, str]  # under way: each runs to its end (or rolls back)
    finished: dict[int, str]  # nothing was left to cancel


def _candidates(parent: Task, on_node: list[int], asked: list[int] | None) -> set[int]:
    """Every VM id whose child record the decision may need, read before it runs."""
    plan = parent.result.get("plan")
    wanted = parent.params.get("vms")
    found = set(on_node) | set(asked or [])
    found |= {v for v in plan if isinstance(v, int)} if isinstance(plan, list) else set()
    found |= {v for v in wanted if isinstance(v, int)} if isinstance(wanted, list) else set()
    return found


async def _children(store: Store, parent: Task, vmids: set[int]
                    ) -> tuple[dict[int, Task], dict[int, int]]:
    children: dict[int, Task] = {}
    revs: dict[int, int] = {}
    for vmid in sorted(vmids):
        child, rev = await store.get(keys.task(child_id(parent.id, vmid)), Task)
        if child is not None:
            children[vmid], revs[vmid] = child, rev
    return children, revs


def _refused(e: CancelRefused) -> ApiError:
    return ApiError(e.status, "conflict" if e.status == 409 else "invalid", e.message, e.field)


@router.post("/tasks/{task_id}/cancel", response_model=BulkCancelled, tags=["tasks"])
async def cancel_bulk(task_id: str, store: StoreDep, snap: SnapDep,
                      body: CancelRequest | None = None) -> BulkCancelled:
    """Cancel a bulk job, or some of its VMs: those not begun are not acted on; those under
    way run to their end (a migration finishes or rolls back)."""
    ok = task_id.replace("-", "").isalnum() and not task_id.startswith("-")
    parent = await store.task(task_id) if ok else None
    if parent is None:
        raise not_found("task", task_id)
    asked = body.vms if body is not None else None
    on_node = [vm.vmid for vm in snap.vms_on(parent.node)]
    cancelled: list[int] = []
    begun: dict[int, str] = {}
    finished: dict[int, str] = {}
    pending: list[int] | None = asked
    for attempt in range(CANCEL_ROUNDS):
        if attempt > 0:
            parent = await store.task(task_id)
            if parent is None:
                finished |= {v: "the job's record is gone" for v in pending or []}
                break
        children, revs = await _children(store, parent,
                                         _candidates(parent, on_node, pending))
        try:
            plan = plan_cancel(parent, children, on_node, pending, time.time())
        except CancelRefused as e:
            if attempt == 0:
                raise _refused(e) from e
            finished |= {v: e.message for v in pending or []}
            break
        if plan.marker is not None:
            await store.create_task(plan.marker)  # already there: cancelled before, as asked
        begun |= plan.begun
        finished |= plan.finished
        lost: list[int] = []
        for record in plan.create:
            assert record.vmid is not None
            (cancelled if await store.create_task(record) else lost).append(record.vmid)
        for record in plan.end:
            assert record.vmid is not None
            won = await store.claim_task(children[record.vmid], revs[record.vmid], record)
            (cancelled if won else lost).append(record.vmid)
        if not lost:
            break
        pending = lost
    else:
        begun |= {v: "changed while it was being cancelled; try again" for v in pending or []}
    if asked is not None and (refusal := nothing_cancelled(cancelled, begun, finished)):
        raise _refused(refusal)
    return BulkCancelled(task=task_id, whole=asked is None, cancelled=sorted(cancelled),
                         begun=begun, finished=finished)
