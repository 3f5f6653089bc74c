"""One migration as the source host drives it: what it knows and the steps that touch both
hosts (readiness, the placement flip, completion, roll-back). `source`, `live` and `cold`
build on it; it imports none of them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from corral.agent.context import HostContext, Report, TaskFailed, disk_paths, owner_guard
from corral.agent.reconciler import Purpose
from corral.cluster import keys
from corral.cluster.models import VM, Placement, RunState, Task, TaskState, VMRuntime, VMStatus
from corral.migration import qmp, record
from corral.migration.params import MigrateParams
from corral.migration.record import MigrationRecord, Phase, Stats
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
                "generation": cur.placement.generation + 1, "moved_by": self.task.id,
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
            # The placement names the target already: the paused source QEMU stays while
            # this task runs, and once it ended this host's monitor stops it like any QEMU of
            # a VM placed elsewhere (the target's incoming QEMU holds the guest, if any).
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
                    await driver.resume(self.vmid, guard=owner_guard(self.ctx, self.vmid,
                                                                     Purpose.RESUME))
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
