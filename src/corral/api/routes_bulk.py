"""Bulk actions on a host: one parent task the manager runs, a child task per VM."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from pydantic import ConfigDict

from corral.api.deps import SnapDep, StoreDep
from corral.api.errors import conflict, invalid, not_found
from corral.api.schemas import TaskAccepted
from corral.cluster.models import Task
from corral.cluster.snapshot import ClusterSnapshot
from corral.manager.bulk import KIND, BulkParams
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
