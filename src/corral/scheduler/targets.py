"""Where an operator may migrate a VM: every host with its free memory and CPU, and every
reason it is refused. Pure: the API (`GET /vms/{vmid}/targets`) passes the snapshot and the
HA rules; the console's migrate dialog shows the answer.

The reasons are the ones `POST /vms/{vmid}/migrate` refuses with (`capacity` for the host
and the VM, `ha.placement.rule_breach` for the HA rules), all of them rather than the first:
what the picker allows is what the migration accepts.
"""

from __future__ import annotations

from pydantic import BaseModel

from corral.cluster.models import VM, RunState
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import HARule
from corral.ha.placement import rule_breach
from corral.scheduler.capacity import free_memory, migration_refusals


class MigrationTarget(BaseModel):
    node: str
    allowed: bool
    reasons: list[str]  # why not, in the order the migration would name them; [] if allowed
    current: bool  # the VM is on this host
    online: bool
    maintenance: bool
    memory_mb: int | None  # the host's physical memory; None: the host never reported
    free_memory_mb: int | None  # after the host's reserve and the VMs meant to run there
    cpus: int | None
    cpu_used: float | None  # fraction of all its cpus busy, last sample; None: no sample
    cpu_free: float | None  # cores idle in that sample
    cores_allocated: int  # cores of the VMs placed there that are meant to run


class MigrationTargets(BaseModel):
    vmid: int
    node: str  # where the VM is now
    running: bool  # a live move: the target needs room for its memory
    memory_mb: int
    cores: int
    local_disks: list[str]  # copied over only with with_local_disks
    with_local_disks: bool
    targets: list[MigrationTarget]  # every host, by name


def target_of(snap: ClusterSnapshot, vm: VM, rules: list[HARule], node: str,
              with_local_disks: bool) -> MigrationTarget:
    reasons = list(migration_refusals(snap, vm, node, with_local_disks))
    current = node == vm.placement.node
    if not current and (breach := rule_breach(snap, vm, rules, node)) is not None:
        reasons.append(breach)
    n = snap.nodes.get(node)
    info = n.info if n else None
    usage = n.usage if n and n.alive else None
    cores = sum(v.config.cores for v in snap.vms_on(node)
                if v.placement.state is not RunState.STOPPED)
    return MigrationTarget(
        node=node,
        allowed=not reasons,
        reasons=reasons,
        current=current,
        online=bool(n and n.alive),
        maintenance=snap.in_maintenance(node),
        memory_mb=info.memory_mb if info else None,
        free_memory_mb=free_memory(snap, node) if info else None,
        cpus=info.cpus if info else None,
        cpu_used=usage.cpu if usage else None,
        cpu_free=round(info.cpus * (1 - usage.cpu), 2) if usage and info else None,
        cores_allocated=cores,
    )


def migration_targets(snap: ClusterSnapshot, vm: VM, rules: list[HARule],
                      with_local_disks: bool = False) -> MigrationTargets:
    """Every host of the cluster as a target for vm, the VM's own host included (refused)."""
    return MigrationTargets(
        vmid=vm.vmid,
        node=vm.placement.node,
        running=vm.placement.state is not RunState.STOPPED,
        memory_mb=vm.config.memory_mb,
        cores=vm.config.cores,
        local_disks=snap.local_disks(vm),
        with_local_disks=with_local_disks,
        targets=[target_of(snap, vm, rules, name, with_local_disks)
                 for name in sorted(snap.nodes)],
    )
