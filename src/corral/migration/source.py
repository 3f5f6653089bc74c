"""`vm.migrate`: the source host's side of a migration, which drives it.

Checks the move (the same rules as the API), creates the migration record, queues the
target's `vm.receive`, waits for it to be ready, moves disks and RAM (live) or volumes
(cold), flips the placement with a compare-and-swap while the guest runs nowhere, tells the
target to run it, and only then quits the source QEMU and removes the source volumes.
Any failure before the flip rolls back: the VM keeps running here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from typing import Any, Literal

from corral.agent.context import HostContext, Report, TaskFailed
from corral.cluster.models import VM, Placement, Task, VMRuntime, VMStatus
from corral.cluster.store import read_snapshot
from corral.migration import cold, live, record
from corral.migration.params import MigrateParams
from corral.migration.record import MigrationRecord, Phase
from corral.migration.session import Migration
from corral.scheduler.capacity import migration_refusal


async def check(ctx: HostContext, task: Task, params: MigrateParams) -> VM:
    """The API's up-front checks again, now that the task runs (things may have changed)."""
    snap = await read_snapshot(ctx.store, time.time())
    # This task itself is unfinished: it must not count as the VM being busy.
    snap = dataclasses.replace(snap, tasks=[t for t in snap.tasks if t.id != task.id])
    vm = snap.vms.get(task.vmid or -1)
    if vm is None:
        raise TaskFailed(f"VM {task.vmid} no longer exists")
    if vm.placement.node != ctx.node:
        raise TaskFailed(f"VM {vm.vmid} is on {vm.placement.node}, not {ctx.node}")
    why = migration_refusal(snap, vm, params.target, params.with_local_disks)
    if why is not None:
        raise TaskFailed(why)
    return vm


async def migrate(ctx: HostContext, task: Task, vm: VM, report: Report) -> dict[str, Any]:
    params = MigrateParams.model_validate(task.params)
    started = time.monotonic()
    vm = await check(ctx, task, params)
    if params.reason:
        await report(0.0, f"why: {params.reason}")
    storages = await ctx.store.storages()
    local = [i for i, d in enumerate(vm.config.disks)
             if (s := storages.get(d.storage)) is None or s.type.value == "dir"]
    running = ctx.driver.pid(vm.vmid) is not None
    mode: Literal["live", "cold"] = "live" if running else "cold"
    resume = running and await ctx.driver.status(vm.vmid) is VMStatus.RUNNING
    rec = MigrationRecord(vmid=vm.vmid, source=ctx.node, target=params.target, mode=mode,
                          task=task.id, receive_task=uuid.uuid4().hex[:16],
                          local_disks=local, resume=resume,
                          source_generation=vm.placement.generation)
    m = Migration(ctx, task, vm, params, report, rec, started)
    if mode == "cold" and not local:
        await report(0.5, f"VM {vm.vmid} is stopped and its disks are shared: moving ownership")
        placement = await m.flip()
        await ctx.store.put_runtime(vm.vmid, VMRuntime(node=params.target,
                                                       status=VMStatus.STOPPED))
        return result(m, placement, {})
    _, rev = await record.read(ctx.store, vm.vmid)
    if not await record.replace(ctx.store, rec, rev):
        raise TaskFailed(f"VM {vm.vmid}: another migration record appeared")
    await ctx.store.put_task(Task(id=rec.receive_task, kind="vm.receive", node=params.target,
                                  vmid=vm.vmid, parent=task.id, params={"source": ctx.node}))
    await report(0.02, f"{mode} migration to {params.target}: waiting for the target")
    try:
        async with record.Watch(ctx.store, vm.vmid) as watch:
            ready = await m.wait_ready(watch)
            await record.set_phase(ctx.store, vm.vmid, Phase.TRANSFERRING)
            if mode == "live":
                figures = await live.transfer(m, ready, watch)
            else:
                figures = await cold.transfer(m, ready, watch)
            placement = await m.flip()
        figures |= await m.complete()
        return result(m, placement, figures)
    except BaseException as e:
        if not m.flipped:
            await asyncio.shield(m.roll_back(str(e) or type(e).__name__))
        raise
    finally:
        with contextlib.suppress(Exception):
            await record.remove(ctx.store, vm.vmid, task.id)


def result(m: Migration, placement: Placement, figures: dict[str, Any]) -> dict[str, Any]:
    s = m.stats
    if "completed_at" in figures and "resumed_at" in figures:
        # From the end of QEMU's stop-and-copy to the guest running on the target: what the
        # orchestration adds to QEMU's own downtime.
        figures["switchover_ms"] = round((figures["resumed_at"] - figures["completed_at"]) * 1000)
        figures["pause_ms"] = figures.get("downtime_ms", 0) + figures["switchover_ms"]
    return {
        "mode": m.rec.mode, "source": m.rec.source, "target": m.rec.target,
        "generation": placement.generation, "total_time_s": round(m.elapsed(), 3),
        "ram_bytes": s.ram_transferred, "disk_bytes": s.disk_transferred,
        "bytes": s.transferred, **figures,
    }
