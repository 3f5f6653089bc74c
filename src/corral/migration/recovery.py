"""A migration cut short by an agent's own restart, on either end.

Source: if the agent died after QEMU finished sending RAM but before the placement flipped, the
guest sits paused on this host ("postmigrate"), maybe with disk mirrors still attached to a
target that is about to give up. Until the flip the target may not run the guest, so this host
still owns it: end the migration record, detach the mirrors and let the guest run here again.

Target: if the agent died after the flip but before it resumed the guest, the guest sits
paused here with all its state, and this host owns it: finish the switchover.
"""

from __future__ import annotations

import contextlib
import logging

from corral.agent.context import HostContext, owner_guard
from corral.agent.reconciler import Purpose
from corral.cluster.models import RunState
from corral.cluster.records import UnreadableRecord
from corral.migration import qmp, record
from corral.migration.record import Phase
from corral.qemu.driver import QemuError

log = logging.getLogger(__name__)

INTERRUPTED_STATES = ("postmigrate", "finish-migrate")


async def recover_interrupted(ctx: HostContext, vmid: int) -> None:
    vm = await ctx.store.vm(vmid)
    if vm is None or vm.placement.node != ctx.node:
        return  # flipped: the target owns it, and the startup reconcile stops this copy
    try:
        rec, _ = await record.read(ctx.store, vmid)
    except UnreadableRecord as e:
        # The placement names this host, so no other host may run the guest yet: resuming a
        # guest cut short here is safe without the record; finishing a switchover is not.
        log.warning("VM %s: %s; recovering without the migration record", vmid, e)
        rec = None
    flipped = rec is not None and vm.placement.moved_by == rec.task  # not yet announced
    if rec is not None and rec.target == ctx.node and (rec.phase is Phase.COMPLETED or flipped):
        await finish_switchover(ctx, vmid, rec.resume)
        return
    if rec is not None and rec.source == ctx.node and not rec.phase.final:
        await record.abort(ctx.store, vmid, "the source agent restarted during the migration")
    try:
        status = (await ctx.driver.qmp(vmid, "query-status")).get("status")
        mirrors = await qmp.block_jobs(ctx.driver, vmid)
    except QemuError:
        return
    if status not in INTERRUPTED_STATES and not mirrors:
        return
    log.warning("VM %s: a migration was cut short by an agent restart; resuming it here", vmid)
    with contextlib.suppress(QemuError):
        await qmp.cancel_ram(ctx.driver, vmid)
    await qmp.finish_mirrors(ctx.driver, vmid, force=True)
    if status in INTERRUPTED_STATES and vm.placement.state is RunState.RUNNING:
        await ctx.driver.resume(vmid, guard=owner_guard(ctx, vmid, Purpose.RESUME))


async def finish_switchover(ctx: HostContext, vmid: int, resume: bool) -> None:
    log.warning("VM %s: taking over after a switchover cut short by an agent restart", vmid)
    with contextlib.suppress(QemuError):
        await qmp.unexport_disks(ctx.driver, vmid)
    status = (await ctx.driver.qmp(vmid, "query-status")).get("status")
    if resume and status != "running":
        await ctx.driver.resume(vmid, guard=owner_guard(ctx, vmid, Purpose.RESUME))
