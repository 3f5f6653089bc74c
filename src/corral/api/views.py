"""Store records -> API response bodies."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import quote

from corral.api.errors import not_found
from corral.api.schemas import NodeOut, VMDetail, VMOut
from corral.api.wire import SKIPPED_HEADER
from corral.cluster.models import VM, Node
from corral.cluster.records import Problem, UnreadableRecord, unreadable_vms, vmid_of
from corral.cluster.snapshot import ClusterSnapshot
from corral.cluster.view_state import ViewState
from corral.cluster.vm_status import shown_status

# A list answer holds the records that decode; the keys of those left out go in this header
# (a JSON list cannot carry a field of its own). Bodies with room for it list them in full:
# `ha status` has `skipped`.
MAX_HEADER_KEYS = 20


def skipped_header(problems: Iterable[Problem]) -> dict[str, str]:
    """{header: "key1 key2 ..."} for the records left out, or {} when none was."""
    found = sorted({p.key for p in problems})
    if not found:
        return {}
    shown = [quote(k, safe="/:@-._~") for k in found[:MAX_HEADER_KEYS]]
    more = [f"(+{len(found) - MAX_HEADER_KEYS})"] if len(found) > MAX_HEADER_KEYS else []
    return {SKIPPED_HEADER: " ".join(shown + more)}


def vm_in(snap: ClusterSnapshot, vmid: int) -> VM:
    """The VM, else why not: a VM whose records do not decode exists, so it is never "not
    found"."""
    return _vm_or_why(vmid, snap.vms.get(vmid),
                      [p for p in snap.problems if vmid_of(p.key) == vmid])


def vm_in_state(state: ViewState, vmid: int) -> VM:
    """`vm_in` read from the view's state, without a snapshot."""
    return _vm_or_why(vmid, state.vm(vmid), state.vm_problems(vmid))


def _vm_or_why(vmid: int, vm: VM | None, problems: Sequence[Problem]) -> VM:
    if vm is not None:
        return vm
    if vmid in unreadable_vms(problems):
        raise UnreadableRecord(list(problems))
    raise not_found("VM", vmid)


def vm_out(vm: VM, host_online: bool = True) -> VMOut:
    c, rt = vm.config, vm.runtime
    status, message = shown_status(vm, host_online)
    return VMOut(
        vmid=c.vmid,
        name=c.name,
        node=vm.placement.node,
        state=vm.placement.state,
        status=status.value,
        memory_mb=c.memory_mb,
        cores=c.cores,
        disks=c.disks,
        image=c.image,
        startup=c.startup,
        description=c.description,
        balance=c.balance,
        pid=rt.pid if rt else None,
        accel=rt.accel if rt else None,
        started_at=rt.started_at if rt else None,
        message=message,
    )


def vm_detail(vm: VM, host_online: bool = True) -> VMDetail:
    return VMDetail(
        **vm_out(vm, host_online).model_dump(), config=vm.config, placement=vm.placement,
        runtime=vm.runtime,
    )


def node_out(node: Node, snap: ClusterSnapshot) -> NodeOut:
    info = node.info
    return NodeOut(
        name=node.name,
        online=node.alive,
        cpus=info.cpus if info else None,
        memory_mb=info.memory_mb if info else None,
        accel=info.accel if info else None,
        address=info.address if info else None,
        agent_url=info.agent_url if info else None,
        versions=info.versions if info else {},
        started_at=info.started_at if info else None,
        usage=node.usage,
        maintenance=bool(node.request and node.request.maintenance),
        vms=len(snap.vms_on(node.name)),
        vms_running=snap.running_on(node.name),
    )
