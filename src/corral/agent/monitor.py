"""Watches this host's QEMU processes and reports each VM's runtime state to etcd; stops any
QEMU here of a VM that etcd places elsewhere (or that no longer exists)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

from corral.agent.claims import Claims
from corral.agent.context import HostContext, TaskFailed, placed_of, set_state
from corral.agent.reconciler import Do, Placed, plan_observation, plan_orphans
from corral.cluster import records
from corral.cluster.models import VM, RunState, VMRuntime, VMStatus
from corral.cluster.snapshot import ClusterSnapshot
from corral.cluster.view import ClusterView
from corral.migration.record import MigrationRecord

log = logging.getLogger(__name__)

# A QEMU that does not answer within this is reported `unknown` (frozen, hung, overloaded):
# short, so one stuck process does not hold up the pass, and never taken for `stopped`.
STATUS_TIMEOUT = 3.0


def unresponsive(pid: int) -> str:
    return f"QEMU (pid {pid}) does not answer QMP: state unknown, the process still exists"


class Monitor:
    def __init__(self, ctx: HostContext, claims: Claims, view: ClusterView) -> None:
        self.ctx = ctx
        self.view = view
        self.claims = claims
        self.seen: dict[int, VMStatus] = {}
        self.running_count = 0

    async def status(self, vm: VM, running: dict[int, int]) -> VMStatus:
        if vm.vmid not in running:
            return VMStatus.STOPPED
        return await self.ctx.driver.status(vm.vmid, STATUS_TIMEOUT)

    async def observe(self, vm: VM, running: dict[int, int], now: VMStatus) -> None:
        ctx = self.ctx
        pid = running.get(vm.vmid)
        placed = Placed(vm.vmid, vm.placement.node, vm.placement.state)
        for action in plan_observation(placed, self.seen.get(vm.vmid), now, vm.vmid in self.claims):
            if action.do is Do.MARK_STOPPED:
                log.info("VM %s: %s", vm.vmid, action.reason)
                with contextlib.suppress(TaskFailed):  # moved meanwhile: not ours to record
                    await set_state(ctx.store, vm.vmid, RunState.STOPPED, ctx.node)
        if now is VMStatus.UNKNOWN and self.seen.get(vm.vmid) is not VMStatus.UNKNOWN:
            log.warning("VM %s: %s", vm.vmid, unresponsive(pid or 0))
        self.seen[vm.vmid] = now
        message = unresponsive(pid) if now is VMStatus.UNKNOWN and pid else ""
        rt = vm.runtime
        if (rt is None or rt.status is not now or rt.pid != pid or rt.node != ctx.node
                or rt.message != message):
            await ctx.store.put_runtime(vm.vmid, VMRuntime(
                node=ctx.node, status=now, pid=pid, accel=ctx.driver.accel,
                started_at=rt.started_at if rt and rt.pid == pid and pid else
                (time.time() if pid else None),
                message=message,
            ))

    async def stop_orphans(self, vms: list[VM], spared: set[int], running: dict[int, int],
                           revision: int) -> None:
        """Kill QEMUs of VMs placed elsewhere or gone, as read at `revision`, except those a
        task here works on (a migration's either end) or a migration to this host waits for."""
        placed = {v.vmid: p for v in vms if (p := placed_of(v)) is not None}
        for action in plan_orphans(self.ctx.node, placed, running, self.claims.busy | spared):
            vmid = action.vmid
            # A task may have taken the VM up since the read; a new process is not the one seen.
            if vmid in self.claims or self.ctx.driver.pid(vmid) != running[vmid]:
                continue
            log.error("VM %s: QEMU pid %s runs on %s but the VM is %s at revision %s: "
                      "killing it", vmid, running[vmid], self.ctx.node, action.reason, revision)
            try:
                await self.ctx.driver.stop(vmid)
            except Exception as e:
                log.error("VM %s: could not stop the orphan QEMU: %s", vmid, e)

    def undecided(self, records_of: Mapping[int, Mapping[str, object]], snap: ClusterSnapshot
                  ) -> set[int]:
        """VMs with keys in etcd that did not decode into a VM (half-written, or a record
        this version cannot read): their placement is unknown, so their QEMU is not judged."""
        return (set(records_of) - set(snap.vms)) | snap.unreadable_vms

    def receiving(self, records_of: Mapping[int, Mapping[str, tuple[bytes, int]]]) -> set[int]:
        """VMs whose migration record names this host as the target of an unfinished
        migration (an unreadable record counts too: better keep a QEMU than kill a guest)."""
        found: set[int] = set()
        for vmid, fields in records_of.items():
            if (raw := fields.get("migration")) is None:
                continue
            try:
                rec = records.load(MigrationRecord, raw[0])
            except Exception as e:
                log.warning("VM %s: unreadable migration record: %s", vmid, e)
                found.add(vmid)
                continue
            if rec.target == self.ctx.node and not rec.phase.final:
                found.add(vmid)
        return found

    async def pass_once(self) -> None:
        # Processes first, then a read at etcd's current revision: a QEMU a task starts after
        # this listing is not judged on a placement read before it, nor reported on.
        mark = self.claims.mark()
        running = self.ctx.driver.running()
        snap = await self.view.current(time.time())
        records_of = self.view.state.vm_records()
        all_vms = list(snap.vms.values())
        spared = self.receiving(records_of) | self.undecided(records_of, snap)
        await self.stop_orphans(all_vms, spared, running, snap.revision)
        vms = snap.vms_on(self.ctx.node)
        self.running_count = sum(1 for v in vms if v.vmid in running)
        watched = [v for v in vms if not self.claims.touched_since(mark, v.vmid)]
        statuses = await asyncio.gather(*(self.status(v, running) for v in watched))
        for vm, now in zip(watched, statuses, strict=True):
            if not self.claims.touched_since(mark, vm.vmid):
                await self.observe(vm, running, now)
        for vmid in set(self.seen) - {v.vmid for v in vms}:
            del self.seen[vmid]

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.pass_once()
            except Exception as e:  # etcd briefly unreachable: report on the next pass
                log.warning("monitor pass failed: %s", e)
            await asyncio.sleep(interval)
