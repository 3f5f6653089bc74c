"""Bulk actions on a host: one parent task the manager runs, a child task per VM."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from pydantic import ConfigDict

from corral.api.deps import StoreDep
from corral.api.errors import conflict, invalid, not_found
from corral.api.schemas import TaskAccepted
from corral.cluster.models import Task
from corral.cluster.store import Store, read_snapshot
from corral.manager.bulk import KIND, BulkParams
from corral.scheduler.capacity import unusable

router = APIRouter(tags=["nodes"])


class BulkRequest(BulkParams):
    """The request body: the task's params, refusing fields it does not know."""

    model_config = ConfigDict(extra="forbid")


async def _check_target(store: Store, node: str, body: BulkParams) -> None:
    if body.action != "migrate":
        if body.target is not None:
            raise invalid(f"target applies only to migrate, not {body.action}", "target")
        return
    if body.target is None:
        raise invalid("migrate needs a target host", "target")
    if body.target == node:
        raise invalid(f"target must be another host than {node}", "target")
    snap = await read_snapshot(store, 0.0)
    if body.target not in snap.nodes:
        raise invalid(f"node {body.target} does not exist", "target")
    if (why := unusable(snap, body.target)) is not None:
        raise conflict(why, "target")


@router.post("/nodes/{node}/bulk", response_model=TaskAccepted, status_code=202)
async def post_bulk(node: str, body: BulkRequest, store: StoreDep) -> TaskAccepted:
    found = await store.node(node)
    if found is None or found.info is None:
        raise not_found("node", node)
    if not found.alive:
        raise conflict(f"node {node} is offline")
    await _check_target(store, node, body)
    if body.vms is not None:
        here = {vm.vmid for vm in await store.vms() if vm.placement.node == node}
        if missing := sorted(set(body.vms) - here):
            raise invalid(f"VM(s) {', '.join(map(str, missing))} not on {node}", "vms")
    # Letters and digits only: child tasks are named f"{parent}-{vmid}".
    task = Task(id="bulk" + uuid.uuid4().hex[:12], kind=KIND, node=node,
                params=body.model_dump())
    await store.put_task(task)
    return TaskAccepted(task=task.id)
