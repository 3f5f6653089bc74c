"""Maintenance mode: the request is stored on the host; the manager does the moving."""

from __future__ import annotations

import time

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from corral.api.deps import StoreDep, ViewDep
from corral.api.errors import conflict, invalid, not_found
from corral.cluster import keys
from corral.cluster.models import NodeRequest
from corral.ha.store import read_all_from
from corral.manager.maintenance import MaintenanceStatus, maintenance_status

router = APIRouter(tags=["maintenance"])


class MaintenanceChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enable: bool
    # Disabling only: leave the VMs where they are instead of moving them back.
    no_return: bool = False
    parallel: int | None = Field(default=None, ge=1, le=64)


@router.post("/nodes/{node}/maintenance", response_model=MaintenanceStatus)
async def set_maintenance(node: str, body: MaintenanceChange,
                          store: StoreDep, view: ViewDep) -> MaintenanceStatus:
    if body.enable and body.no_return:
        raise invalid("no_return applies only when disabling maintenance", "no_return")
    found = await store.node(node)
    if found is None or found.info is None:
        raise not_found("node", node)
    if body.enable and not found.alive:
        # Its VMs cannot be moved live off a host that is down; its HA VMs are recovered
        # once it is fenced instead (Proxmox refuses it too).
        raise conflict(f"node {node} is offline: maintenance needs a running host to empty",
                       field="node")
    current = found.request
    # Enabling twice keeps the request's time: the manager's task ids derive from it, so a
    # repeated enable does not restart steps already taken (a disable and enable does).
    same = current is not None and current.maintenance == body.enable
    request = NodeRequest(
        maintenance=body.enable, no_return=body.no_return, parallel=body.parallel,
        requested_at=current.requested_at if same and current else time.time())
    await store.put(keys.node(node, "request"), request)
    snap, ha = await read_all_from(view, time.time())
    return maintenance_status(snap, node, ha.rules)


@router.get("/nodes/{node}/maintenance", response_model=MaintenanceStatus)
async def get_maintenance(node: str, view: ViewDep) -> MaintenanceStatus:
    snap, ha = await read_all_from(view, time.time())
    if node not in snap.nodes:
        raise not_found("node", node)
    return maintenance_status(snap, node, ha.rules)


@router.get("/maintenance", response_model=list[MaintenanceStatus])
async def list_maintenance(view: ViewDep) -> list[MaintenanceStatus]:
    # With the HA rules, as the manager reads them: the status says what it will do.
    snap, ha = await read_all_from(view, time.time())
    return [maintenance_status(snap, name, ha.rules) for name in sorted(snap.nodes)]
