"""What the balancer decides on, from one cluster snapshot: hosts with their size and recent
load, running VMs with their recent demand, the HA rules and recent migrations. Pure.

Usage comes from the `recent` record each agent publishes (docs/usage-history.md): minute
points, gaps left out. A VM's series lives on the host that runs it, so one that just moved
has few points there; the planner holds a VM without samples where it is.
"""

from __future__ import annotations

from collections.abc import Sequence

from corral.balancer.model import BalanceInput, HostLoad, PastMove, VmLoad
from corral.cluster.models import RECENT_STEP, VM, RunState, Task, TaskState, VMStatus
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import HARule
from corral.scheduler.capacity import MIGRATION_KINDS, unusable

BALANCE_TASK_PREFIX = "balance-"


def balance_task_id(vm: VM) -> str:
    """One balancing move per placement of a VM: queuing it twice is harmless, and a failed
    one is not tried again until the VM has moved or been placed anew."""
    return f"{BALANCE_TASK_PREFIX}{vm.vmid}-{vm.placement_rev}"


def _points(series: Sequence[float | None]) -> tuple[float, ...]:
    return tuple(v for v in series if v is not None)


def _host(snap: ClusterSnapshot, name: str) -> HostLoad | None:
    node = snap.nodes[name]
    if node.info is None:
        return None
    why = unusable(snap, name)
    other = _points(node.recent.other_cores) if node.recent is not None else ()
    return HostLoad(name=name, cpus=node.info.cpus, memory_mb=node.info.memory_mb,
                    accepts=why is None, why_not=_clip(why, name), cpu_other=other)


def _clip(why: str | None, name: str) -> str:
    """'node n1 is offline' -> 'is offline': the planner names the host itself."""
    if why is None:
        return ""
    prefix = f"node {name} "
    return why[len(prefix):] if why.startswith(prefix) else why


def _fixed(snap: ClusterSnapshot, vm: VM) -> str:
    """Why the balancer must leave vm where it is, or ''."""
    if not vm.config.balance:
        return "opted out of balancing (balance: false)"
    if (task := snap.active_task(vm.vmid)) is not None and task.kind not in MIGRATION_KINDS:
        return f"busy with {task.kind} (task {task.id})"
    if snap.local_disks(vm):
        return "has local disks: a move would copy them"
    failed = snap.task(balance_task_id(vm))
    if failed is not None and failed.state is TaskState.ERROR:
        return f"its balancing move failed: {failed.error or 'unknown error'}"
    return ""


def _vm(snap: ClusterSnapshot, vm: VM) -> VmLoad:
    node = snap.nodes.get(vm.placement.node)
    recent = node.recent.vms.get(vm.vmid) if node is not None and node.recent else None
    migrating = next((t for t in snap.unfinished_on(vm.vmid) if t.kind in MIGRATION_KINDS),
                     None)
    target = migrating.params.get("target") if migrating is not None else None
    why = _fixed(snap, vm)
    return VmLoad(
        vmid=vm.vmid, node=vm.placement.node, cores=vm.config.cores,
        memory_mb=vm.config.memory_mb,
        cpu=_points(recent.cores_avg) if recent is not None else (),
        memory_used_mb=float(recent.memory_mib if recent and recent.memory_mib is not None
                             else vm.config.memory_mb),
        dirty_mb_s=recent.dirty_mib_s if recent is not None else None,
        movable=not why, why_fixed=why,
        moving_to=target if isinstance(target, str) else "",
    )


def _running(vm: VM) -> bool:
    rt = vm.runtime
    return (vm.placement.state is RunState.RUNNING and rt is not None
            and rt.node == vm.placement.node and rt.status is VMStatus.RUNNING)


def _moves(tasks: Sequence[Task]) -> tuple[PastMove, ...]:
    """Migrations that ended well: the balancer's, maintenance's and operators' alike (a VM
    an operator just placed is not moved off again at once)."""
    out: list[PastMove] = []
    for t in tasks:
        target = t.params.get("target")
        if (t.kind in MIGRATION_KINDS and t.state is TaskState.OK and t.vmid is not None
                and isinstance(target, str)):
            out.append(PastMove(t.vmid, t.node, target, t.ended_at or t.created_at))
    return tuple(sorted(out, key=lambda m: (m.at, m.vmid)))


def balance_input(snap: ClusterSnapshot, rules: Sequence[HARule]) -> BalanceInput:
    hosts = tuple(h for name in sorted(snap.nodes) if (h := _host(snap, name)) is not None)
    vms = tuple(_vm(snap, vm) for vmid, vm in sorted(snap.vms.items()) if _running(vm))
    steps = {n.recent.step_seconds for n in snap.nodes.values() if n.recent is not None}
    running = sum(1 for t in snap.unfinished() if t.kind in MIGRATION_KINDS)
    return BalanceInput(
        now=snap.now, step_s=float(min(steps) if steps else RECENT_STEP), hosts=hosts, vms=vms,
        rules=tuple(rules), history=_moves(snap.tasks), migrations_running=running,
    )
