"""A migration cut short by an agent's own restart, on either end.

Source: if the agent died after QEMU finished sending RAM but before the placement flipped, the
guest sits paused on this host ("postmigrate"), maybe with disk mirrors still attached to a
target that is about to give up. Until the flip the target may not run the guest, so this host
still owns it: end the migration record, detach the mirrors and let the guest run here again.
But only while the placement is the one the migration started from: if it was flipped since
and came back (HA recovered the VM here after the target was lost), the guest went on
elsewhere, and this copy is from the past: it is stopped and the VM boots afresh.

Target: if the agent died after the flip but before it resumed the guest, the guest sits
paused here with all its state, and this host owns it: finish the switchover. An incoming QEMU
still waiting for its stream while the VM is placed here never got the go: stopped likewise.
"""

from __future__ import annotations

import contextlib
import logging
from enum import StrEnum

from corral.agent.context import HostContext, owner_guard
from corral.agent.reconciler import Purpose
from corral.cluster.models import Placement, RunState
from corral.cluster.records import UnreadableRecord
from corral.migration import qmp, record
from corral.migration.qmp import INTERRUPTED_STATES
from corral.migration.record import MigrationRecord, Phase
from corral.qemu.driver import QemuError

log = logging.getLogger(__name__)


class Leftover(StrEnum):
    """What an agent on its way up does with a QEMU of a VM placed on its host."""

    KEEP = "keep"  # not a migration's leftover (or only its mirrors are)
    RESUME = "resume"  # a source cut short before the flip: the guest runs here again
    FINISH = "finish"  # a target cut short after the flip: finish the switchover
    STOP = "stop"  # a copy whose guest went on elsewhere, or never got the go: boot afresh


def leftover(node: str, placement: Placement, rec: MigrationRecord | None, status: str | None
             ) -> Leftover:
    """The decision for the QEMU here of a VM placed here (`status`: its QMP run state).
    `rec` None: no migration record, or one that does not decode."""
    flipped = rec is not None and (rec.phase is Phase.COMPLETED or rec.flipped_in(placement))
    if rec is not None and rec.target == node and flipped:
        return Leftover.FINISH
    if status == "inmigrate":
        return Leftover.STOP  # placed here, yet waiting for a stream: none may come now
    if status not in INTERRUPTED_STATES:
        return Leftover.KEEP
    # A source whose guest went out. It may run again only if the placement never left
    # since the migration began; without a record that can say so, it may not.
    unmoved = (rec is not None and rec.source == node and not flipped
               and rec.source_generation in (None, placement.generation))
    return Leftover.RESUME if unmoved else Leftover.STOP


async def recover_interrupted(ctx: HostContext, vmid: int) -> bool:
    """Deal with a migration cut short; True when it stopped the VM's QEMU here, so the
    caller boots the VM afresh if it is meant to run."""
    vm = await ctx.store.vm(vmid)
    if vm is None or vm.placement.node != ctx.node:
        return False  # flipped: the target owns it, and the startup reconcile stops this copy
    try:
        rec, _ = await record.read(ctx.store, vmid)
    except UnreadableRecord as e:
        log.warning("VM %s: %s; recovering without the migration record", vmid, e)
        rec = None
    if rec is not None and rec.source == ctx.node and not rec.phase.final:
        await record.abort(ctx.store, vmid, "the source agent restarted during the migration")
    try:
        status = (await ctx.driver.qmp(vmid, "query-status")).get("status")
        mirrors = await qmp.block_jobs(ctx.driver, vmid)
    except QemuError:
        return False
    verdict = leftover(ctx.node, vm.placement, rec, status)
    if verdict is Leftover.FINISH:
        assert rec is not None
        await finish_switchover(ctx, vmid, rec.resume)
        return False
    if verdict is Leftover.STOP:
        log.error("VM %s: its QEMU here (%s) was left by a migration and its guest state "
                  "cannot be vouched for: stopping it", vmid, status)
        await ctx.driver.stop(vmid)
        return True
    if verdict is Leftover.KEEP and not mirrors:
        return False
    log.warning("VM %s: a migration was cut short by an agent restart; resuming it here", vmid)
    with contextlib.suppress(QemuError):
        await qmp.cancel_ram(ctx.driver, vmid)
    await qmp.finish_mirrors(ctx.driver, vmid, force=True)
    if verdict is Leftover.RESUME and vm.placement.state is RunState.RUNNING:
        await ctx.driver.resume(vmid, guard=owner_guard(ctx, vmid, Purpose.RESUME))
    return False


async def finish_switchover(ctx: HostContext, vmid: int, resume: bool) -> None:
    log.warning("VM %s: taking over after a switchover cut short by an agent restart", vmid)
    with contextlib.suppress(QemuError):
        await qmp.unexport_disks(ctx.driver, vmid)
    status = (await ctx.driver.qmp(vmid, "query-status")).get("status")
    if resume and status != "running":
        await ctx.driver.resume(vmid, guard=owner_guard(ctx, vmid, Purpose.RESUME))
