"""A VM's status as Corral shows it (API, events, metrics): its host's last report, unless
that report can no longer be true."""

from __future__ import annotations

from corral.cluster.models import VM, VMStatus


def reported_status(vm: VM) -> VMStatus:
    """What the VM's last runtime report says (unknown without one)."""
    return vm.runtime.status if vm.runtime else VMStatus.UNKNOWN


def shown_status(vm: VM, host_online: bool) -> tuple[VMStatus, str]:
    """The status to show and its message. A stopped VM stays stopped; any other report from a
    host that is gone, or from a host the VM no longer is placed on, says nothing of now."""
    rt = vm.runtime
    status, message = reported_status(vm), (rt.message if rt else "")
    if status is VMStatus.STOPPED:
        return status, message
    if not host_online:
        return VMStatus.UNKNOWN, f"host {vm.placement.node} is offline"
    if rt is not None and rt.node != vm.placement.node:
        # Placed elsewhere since (a recovery, a migration): the report is of a QEMU on the
        # old host, not of one on the new.
        return VMStatus.UNKNOWN, (f"no report from {vm.placement.node} yet (the last came "
                                  f"from {rt.node})")
    return status, message
