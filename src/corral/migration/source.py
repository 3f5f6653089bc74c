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
from dataclasses import dataclass
from typing import Any, Literal

from corral.agent.actions import HostContext, Report, TaskFailed, disk_paths
from corral.cluster import keys
from corral.cluster.models import Placement, RunState, Task, TaskState, VMRuntime, VMStatus
from corral.cluster.snapshot import read_snapshot
from corral.cluster.store import VM
from corral.migration import cold, live, qmp, record
from corral.migration.params import MigrateParams
from corral.migration.record import MigrationRecord, Phase, Stats
from corral.scheduler.capacity import migration_refusal
from corral.storage.volumes import remove_volume

TARGET_FINISH_TIMEOUT = 30.0  # seconds for the target to run the guest after the flip
TARGET_CLEANUP_TIMEOUT = 15.0  # seconds for the target to undo its part after an abort


@dataclass
class Migration:
    ctx: HostContext
    task: Task
    vm: VM
    params: MigrateParams
    report: Report
    rec: MigrationRecord
    started: float  # time.monotonic() at the task's start
    ram_started: bool = False
    flipped: bool = False
    stats: Stats = dataclasses.field(default_factory=Stats)

    @property
    def vmid(self) -> int:
        return self.vm.vmid

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    async def wait_ready(self, watch: record.Watch) -> MigrationRecord:
        deadline = time.monotonic() + self.params.ready_timeout
        while True:
            rec = watch.record
            if rec is None or rec.task != self.task.id:
                raise TaskFailed("the migration record disappeared")
            if rec.phase is Phase.READY:
                return rec
            if rec.phase is Phase.ABORTED:
                raise TaskFailed(f"the target gave up: {rec.error}")
            child = await self.ctx.store.task(self.rec.receive_task)
            if child is not None and child.state is TaskState.ERROR:
                raise TaskFailed(f"the target failed: {child.error}")
            if time.monotonic() > deadline:
                waiting = child is None or child.state is TaskState.QUEUED
                raise TaskFailed(
                    f"the agent of {self.rec.target} did not answer within "
                    f"{self.params.ready_timeout:.0f}s" if waiting else
                    f"{self.rec.target} was not ready within {self.params.ready_timeout:.0f}s")
            await watch.wait(0.5)

    async def check_target(self, watch: record.Watch) -> None:
        """Raise when the target gave up (its QEMU died, it aborted, its task ended)."""
        rec = watch.record
        if rec is None or rec.phase is Phase.ABORTED:
            raise TaskFailed(f"the target gave up: {rec.error if rec else 'record gone'}")
        child = await self.ctx.store.task(self.rec.receive_task)
        if child is None or child.state.finished:
            raise TaskFailed(f"the target's task ended: {child.error if child else 'gone'}")

    async def publish(self, stats: Stats, progress: float, line: str) -> None:
        self.stats = stats
        await record.update(self.ctx.store, self.vmid,
                            lambda r: r.model_copy(update={"stats": stats}))
        await self.report(progress, line)

    async def flip(self) -> Placement:
        """Hand the VM to the target: the one write that decides which host owns it."""
        store = self.ctx.store
        for _ in range(5):
            cur = await store.vm(self.vmid)
            if cur is None:
                raise TaskFailed(f"VM {self.vmid} was deleted during the migration")
            if cur.placement.node != self.ctx.node:
                raise TaskFailed(f"VM {self.vmid} was moved to {cur.placement.node} meanwhile")
            state = cur.placement.state if self.rec.mode == "live" or \
                cur.placement.state is RunState.STOPPED else RunState.STOPPED
            new = cur.placement.model_copy(update={
                "node": self.rec.target, "origin": self.params.origin, "state": state,
                "generation": cur.placement.generation + 1,
            })
            if await store.set_placement(self.vmid, new, cur.placement_rev):
                self.flipped = True
                return new
        raise TaskFailed(f"VM {self.vmid}: placement kept changing; not moved")

    async def complete(self) -> dict[str, Any]:
        """After the flip: let the target run the guest, then clear this host."""
        await record.set_phase(self.ctx.store, self.vmid, Phase.COMPLETED)
        child = await self.wait_child(TARGET_FINISH_TIMEOUT)
        taken_over = child is not None and child.state is TaskState.OK
        # A target agent that restarted meanwhile resumes the guest itself on its way up.
        if not taken_over and not await self.target_runs():
            why = child.error if child else "no answer"
            # The placement names the target already; the paused source QEMU is kept as the
            # only sure copy of the guest for the operator to recover from.
            raise TaskFailed(f"the target did not take over after the switchover: {why}")
        if self.rec.mode == "live":
            await self.ctx.driver.stop(self.vmid)
        paths = await disk_paths(self.ctx, self.vm)
        removed = [str(paths[i]) for i in self.rec.local_disks if remove_volume(paths[i])]
        if self.rec.mode == "cold":
            await self.ctx.store.put_runtime(self.vmid, VMRuntime(
                node=self.rec.target, status=VMStatus.STOPPED))
        return {**(child.result if child and taken_over else {}), "removed": removed}

    async def target_runs(self, timeout: float = 10.0) -> bool:
        """The target's agent reports the guest running there (after its own restart)."""
        if self.rec.mode != "live":
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            vm = await self.ctx.store.vm(self.vmid)
            rt = vm.runtime if vm else None
            if rt and rt.node == self.rec.target and rt.status is VMStatus.RUNNING and rt.pid:
                return True
            await asyncio.sleep(0.2)
        return False

    async def wait_child(self, timeout: float) -> Task | None:
        deadline = time.monotonic() + timeout
        while True:
            child = await self.ctx.store.task(self.rec.receive_task)
            if child is not None and child.state.finished:
                return child
            if time.monotonic() > deadline:
                return child
            await asyncio.sleep(0.02)

    async def roll_back(self, reason: str) -> None:
        """Undo this side's part and make the target undo its own; the VM stays here."""
        driver = self.ctx.driver
        if self.rec.mode == "live" and driver.pid(self.vmid) is not None:
            with contextlib.suppress(Exception):
                if self.ram_started:
                    await qmp.cancel_ram(driver, self.vmid)
                await qmp.finish_mirrors(driver, self.vmid, force=True)
            with contextlib.suppress(Exception):
                # RAM migration may have completed before a later step failed.
                status = await driver.qmp(self.vmid, "query-status")
                if status.get("status") == "postmigrate" and self.rec.resume:
                    await driver.resume(self.vmid)
        await record.abort(self.ctx.store, self.vmid, reason)
        child = await self.wait_child(TARGET_CLEANUP_TIMEOUT)
        if child is not None and child.state is TaskState.QUEUED:
            await cancel_queued(self.ctx, child.id, f"migration aborted: {reason}")


async def cancel_queued(ctx: HostContext, task_id: str, why: str) -> None:
    """Fail a task nobody claimed (its agent is down), unless it is claimed right now."""
    task, rev = await ctx.store.get(keys.task(task_id), Task)
    if task is not None and task.state is TaskState.QUEUED:
        await ctx.store.claim_task(task, rev, task.model_copy(update={
            "state": TaskState.ERROR, "error": why, "ended_at": time.time()}))


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
    storages = await ctx.store.storages()
    local = [i for i, d in enumerate(vm.config.disks)
             if (s := storages.get(d.storage)) is None or s.type.value == "dir"]
    running = ctx.driver.pid(vm.vmid) is not None
    mode: Literal["live", "cold"] = "live" if running else "cold"
    resume = running and await ctx.driver.status(vm.vmid) is VMStatus.RUNNING
    rec = MigrationRecord(vmid=vm.vmid, source=ctx.node, target=params.target, mode=mode,
                          task=task.id, receive_task=uuid.uuid4().hex[:16],
                          local_disks=local, resume=resume)
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
