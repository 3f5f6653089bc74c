"""Watches this host's QEMU processes and reports each VM's runtime state to etcd."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from corral.agent.context import HostContext, TaskFailed, set_state
from corral.agent.reconciler import Do, Placed, plan_observation
from corral.cluster.models import VM, RunState, VMRuntime, VMStatus

log = logging.getLogger(__name__)


class Monitor:
    def __init__(self, ctx: HostContext, busy: set[int]) -> None:
        self.ctx = ctx
        self.busy = busy
        self.seen: dict[int, VMStatus] = {}
        self.running_count = 0

    async def observe(self, vm: VM, running: dict[int, int]) -> None:
        ctx = self.ctx
        pid = running.get(vm.vmid)
        now = await ctx.driver.status(vm.vmid) if pid else VMStatus.STOPPED
        placed = Placed(vm.vmid, vm.placement.node, vm.placement.state)
        for action in plan_observation(placed, self.seen.get(vm.vmid), now, vm.vmid in self.busy):
            if action.do is Do.MARK_STOPPED:
                log.info("VM %s: %s", vm.vmid, action.reason)
                with contextlib.suppress(TaskFailed):  # moved meanwhile: not ours to record
                    await set_state(ctx.store, vm.vmid, RunState.STOPPED, ctx.node)
        self.seen[vm.vmid] = now
        rt = vm.runtime
        if rt is None or rt.status is not now or rt.pid != pid or rt.node != ctx.node:
            await ctx.store.put_runtime(vm.vmid, VMRuntime(
                node=ctx.node, status=now, pid=pid, accel=ctx.driver.accel,
                started_at=rt.started_at if rt and rt.pid == pid and pid else
                (time.time() if pid else None),
            ))

    async def pass_once(self) -> None:
        vms = [v for v in await self.ctx.store.vms() if v.placement.node == self.ctx.node]
        running = self.ctx.driver.running()
        self.running_count = sum(1 for v in vms if v.vmid in running)
        for vm in vms:
            if vm.vmid not in self.busy:
                await self.observe(vm, running)
        for vmid in set(self.seen) - {v.vmid for v in vms}:
            del self.seen[vmid]

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.pass_once()
            except Exception as e:  # etcd briefly unreachable: report on the next pass
                log.warning("monitor pass failed: %s", e)
            await asyncio.sleep(interval)
