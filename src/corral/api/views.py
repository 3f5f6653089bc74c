"""Store records -> API response bodies."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from corral.api.schemas import NodeOut, VMDetail, VMOut
from corral.api.wire import SKIPPED_HEADER
from corral.cluster.models import VM, Node, VMStatus
from corral.cluster.records import Problem

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


def vm_status(vm: VM) -> VMStatus:
    return vm.runtime.status if vm.runtime else VMStatus.UNKNOWN


def vm_out(vm: VM, host_online: bool = True) -> VMOut:
    c, rt = vm.config, vm.runtime
    status = vm_status(vm)
    message = rt.message if rt else ""
    if not host_online and status is not VMStatus.STOPPED:
        # The last report came from a host that is gone: nobody knows what runs now.
        status, message = VMStatus.UNKNOWN, f"host {vm.placement.node} is offline"
    elif rt is not None and rt.node != vm.placement.node and status is not VMStatus.STOPPED:
        # The VM was placed elsewhere since (a recovery, a migration): the report is of a
        # QEMU on the old host, not of one on the new.
        status, message = (VMStatus.UNKNOWN,
                           f"no report from {vm.placement.node} yet (the last came from "
                           f"{rt.node})")
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


def node_out(node: Node, here: list[VM]) -> NodeOut:
    """here: the VMs placed on node (`ClusterSnapshot.vms_on`)."""
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
        vms=len(here),
        vms_running=sum(vm_status(vm) == VMStatus.RUNNING for vm in here),
    )
