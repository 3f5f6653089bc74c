"""What `corral ha status` shows: the manager's persisted view, completed from the snapshot
for VMs and hosts the manager has not looked at yet. Pure."""

from __future__ import annotations

from collections.abc import Iterable

from corral.cluster.models import Model, VMStatus
from corral.cluster.records import Problem
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.machine import runs
from corral.ha.models import HAInputs, HARequest, NodeStatusHA


class HAVMRow(Model):
    vmid: int
    name: str | None
    requested: HARequest
    status: str
    node: str | None
    max_restart: int
    max_relocate: int
    restarts: int = 0
    relocates: int = 0
    reason: str = ""


class HANodeRow(Model):
    node: str
    status: str
    lost_at: float | None = None
    fenced_at: float | None = None
    reason: str = ""
    # The fence time the host published (its watchdog's acknowledged worst case from the last
    # feed to the fence); 0: unfenceable by the clock; None: not published.
    fence_time: float | None = None


class UnprotectedRow(Model):
    """A VM without HA on a host that is not online: it stays there, not recovered."""

    vmid: int
    node: str
    status: str


class SkippedRecord(Model):
    """A record that does not decode: every part of Corral leaves it out and carries on."""

    key: str
    problem: str


class HAReport(Model):
    vms: list[HAVMRow]
    nodes: list[HANodeRow]
    unprotected: list[UnprotectedRow]
    skipped: list[SkippedRecord] = []


def skipped_records(problems: Iterable[Problem]) -> list[SkippedRecord]:
    return [SkippedRecord(key=p.key, problem=p.what) for p in sorted(problems, key=str)]


def ha_status(snap: ClusterSnapshot, inputs: HAInputs) -> HAReport:
    rows: list[HAVMRow] = []
    for vmid, s in sorted(inputs.settings.items()):
        vm = snap.vms.get(vmid)
        st = inputs.state.vms.get(vmid)
        if vm is None:
            gone = vmid not in snap.unreadable_vms
            rows.append(HAVMRow(vmid=vmid, name=None, requested=s.state,
                                status="error" if gone else "unreadable",
                                node=None, max_restart=s.max_restart,
                                max_relocate=s.max_relocate,
                                reason="no such VM" if gone else
                                "its record does not decode: HA leaves it as it is"))
            continue
        status = st.status.value if st else ("started" if runs(vm) else "pending")
        rows.append(HAVMRow(
            vmid=vmid, name=vm.config.name, requested=s.state, status=status,
            node=vm.placement.node, max_restart=s.max_restart, max_relocate=s.max_relocate,
            restarts=st.restarts if st else 0, relocates=st.relocates if st else 0,
            reason=st.reason if st else "not seen by the manager yet",
        ))
    nodes: list[HANodeRow] = []
    for name, node in sorted(snap.nodes.items()):
        ns = inputs.state.nodes.get(name)
        fence_time = node.info.watchdog_timeout if node.info else None
        if ns is not None:
            nodes.append(HANodeRow(node=name, status=ns.status.value, lost_at=ns.lost_at,
                                   fenced_at=ns.fenced_at, reason=ns.reason,
                                   fence_time=fence_time))
        else:
            nodes.append(HANodeRow(node=name, status="online" if node.alive else "unknown",
                                   fence_time=fence_time))
    offline = {n.node for n in nodes if n.status != NodeStatusHA.ONLINE.value}
    # Once its host is fenced (watchdog deadline passed, or power-off confirmed) nothing of
    # it runs any more: the VM is stopped, not merely unknown.
    fenced = {n.node for n in nodes if n.status == NodeStatusHA.FENCED.value}
    unreadable = inputs.unreadable_settings
    unprotected = [
        UnprotectedRow(vmid=vm.vmid, node=vm.placement.node, status=(
            VMStatus.STOPPED.value
            if vm.placement.state.value == "stopped" or vm.placement.node in fenced
            else VMStatus.UNKNOWN.value))
        # Only the VMs of hosts that are not online: not every VM of the cluster.
        for vm in sorted((vm for node in offline for vm in snap.vms_on(node)),
                         key=lambda v: v.vmid)
        if vm.vmid not in inputs.settings and vm.vmid not in unreadable
    ]
    return HAReport(vms=rows, nodes=nodes, unprotected=unprotected,
                    skipped=skipped_records([*snap.problems, *inputs.problems]))
