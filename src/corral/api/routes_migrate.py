"""VM migration: queue a `vm.migrate` on the VM's host, refused up front when it cannot work,
the hosts it could go to and why the others cannot take it, and the live figures of a
migration in progress."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from corral.api import queue
from corral.api.deps import StoreDep, ViewDep
from corral.api.errors import conflict, not_found
from corral.api.schemas import TaskAccepted
from corral.api.views import vm_in
from corral.ha.placement import rule_breach
from corral.ha.store import read_all_from
from corral.migration import record
from corral.migration.params import MigrateParams, parse_bwlimit
from corral.migration.record import MigrationRecord
from corral.scheduler.capacity import migration_refusal
from corral.scheduler.targets import MigrationTargets, migration_targets

router = APIRouter(tags=["vms"])


class MigrateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: Annotated[str, Field(min_length=1, max_length=63)]
    with_local_disks: bool = False
    # "200M", "1G" or a number of MiB/s; null: no limit.
    bwlimit: str | int | None = None

    @field_validator("bwlimit")
    @classmethod
    def _bwlimit(cls, v: str | int | None) -> str | int | None:
        parse_bwlimit(v)  # raises ValueError with a readable reason
        return v


@router.post("/vms/{vmid}/migrate", response_model=TaskAccepted, status_code=202)
async def migrate(vmid: int, body: MigrateRequest, store: StoreDep,
                  view: ViewDep) -> TaskAccepted:
    snap, ha = await read_all_from(view, time.time())
    vm = vm_in(snap, vmid)
    why = migration_refusal(snap, vm, body.target, body.with_local_disks)
    if why is None:
        why = rule_breach(snap, vm, ha.rules, body.target)
    if why is not None:
        raise conflict(why, "target" if body.target in why else None)
    # A migration the operator asks for is not a maintenance move: no origin to return to.
    params = MigrateParams(target=body.target, with_local_disks=body.with_local_disks,
                           bwlimit_mbps=parse_bwlimit(body.bwlimit), origin=None)
    task = await queue.queue(store, "vm.migrate", vm.placement.node, vmid,
                             params.model_dump(include={"target", "with_local_disks",
                                                        "bwlimit_mbps", "origin"}))
    return TaskAccepted(task=task.id)


@router.get("/vms/{vmid}/targets", response_model=MigrationTargets)
async def targets(
    vmid: int, view: ViewDep,
    with_local_disks: Annotated[bool, Query(
        description="as the migration would be asked: copy the VM's local disks")] = False,
) -> MigrationTargets:
    """Every host as a migration target of vmid: free memory and CPU, and every reason the
    migration would be refused there (the same checks as `POST /vms/{vmid}/migrate`)."""
    snap, ha = await read_all_from(view, time.time())
    return migration_targets(snap, vm_in(snap, vmid), ha.rules, with_local_disks)


@router.get("/vms/{vmid}/migration", response_model=MigrationRecord)
async def migration(vmid: int, store: StoreDep) -> MigrationRecord:
    """The migration of vmid in progress: phase and bytes moved."""
    rec, _ = await record.read(store, vmid)
    if rec is None:
        raise not_found("migration of VM", vmid)
    return rec
