"""Where a VM may run: host eligibility and free memory, as pure functions of a snapshot.

Shared by the API (refuse a migration up front) and the manager (choose evacuation targets),
so an operator and the manager always agree on what fits.
"""

from __future__ import annotations

from collections.abc import Iterator

from corral.cluster.models import VM, RunState
from corral.cluster.snapshot import ClusterSnapshot

# Kept free on every host for the host itself and QEMU's own overhead.
HOST_RESERVE_MB = 512
MIGRATION_KINDS = ("vm.migrate",)


def incoming_memory(snap: ClusterSnapshot, node: str) -> int:
    """Memory of VMs on their way to node (migrations not finished yet). A migration whose
    source host is offline goes nowhere: its task never ends, and must not hold memory on
    the target for ever (the VM is recovered from its source host instead)."""
    total = 0
    for task in snap.unfinished():
        source = snap.nodes.get(task.node)
        if source is None or not source.alive:
            continue
        if task.kind in MIGRATION_KINDS and task.params.get("target") == node:
            vm = snap.vms.get(task.vmid or -1)
            if vm is not None and vm.placement.node != node:
                total += vm.config.memory_mb
    return total


def committed_memory(snap: ClusterSnapshot, node: str) -> int:
    """Memory of the VMs placed on node that are meant to run, plus those arriving."""
    here = sum(vm.config.memory_mb for vm in snap.vms_on(node)
               if vm.placement.state is not RunState.STOPPED)
    return here + incoming_memory(snap, node)


def free_memory(snap: ClusterSnapshot, node: str) -> int:
    n = snap.nodes.get(node)
    if n is None or n.info is None:
        return 0
    return n.info.memory_mb - HOST_RESERVE_MB - committed_memory(snap, node)


def unusable(snap: ClusterSnapshot, node: str) -> str | None:
    """Why node cannot take a VM now, or None."""
    n = snap.nodes.get(node)
    if n is None or n.info is None:
        return f"node {node} is unknown"
    if not n.alive:
        return f"node {node} is offline"
    if snap.in_maintenance(node):
        return f"node {node} is in maintenance"
    if n.shutting_down is not None:
        return f"node {node} is shutting down"
    return None


def migration_refusals(snap: ClusterSnapshot, vm: VM, target: str,
                       with_local_disks: bool) -> Iterator[str]:
    """Every reason vm cannot move to target now, most basic first; none when the move may
    start. A VM's own host gets that reason alone: the others would be about itself."""
    if target == vm.placement.node:
        yield f"VM {vm.vmid} is already on {target}"
        return
    if (why := unusable(snap, target)) is not None:
        yield why
    source = snap.nodes.get(vm.placement.node)
    if source is None or not source.alive:
        yield f"the VM's host {vm.placement.node} is offline"
    if (task := snap.active_task(vm.vmid)) is not None:
        what = "already migrating" if task.kind in MIGRATION_KINDS else f"busy with {task.kind}"
        yield f"VM {vm.vmid} is {what} (task {task.id})"
    local = snap.local_disks(vm)
    if local and not with_local_disks:
        yield (f"VM {vm.vmid} has local disks ({', '.join(local)}): "
               "migrate with --with-local-disks to copy them")
    known = (n := snap.nodes.get(target)) is not None and n.info is not None
    running = vm.placement.state is not RunState.STOPPED
    if known and running and (free := free_memory(snap, target)) < vm.config.memory_mb:
        yield (f"not enough free memory on {target}: {free} MiB free, "
               f"VM {vm.vmid} needs {vm.config.memory_mb} MiB")


def migration_refusal(snap: ClusterSnapshot, vm: VM, target: str,
                      with_local_disks: bool) -> str | None:
    """Why vm cannot move to target now (the first reason), or None when the move may
    start."""
    return next(migration_refusals(snap, vm, target, with_local_disks), None)
