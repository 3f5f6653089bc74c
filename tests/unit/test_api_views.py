"""What the API says of a VM: its owner's latest report, and never a report of another host
taken for its owner's."""

from __future__ import annotations

from corral.api.views import vm_out
from corral.cluster.models import VM, Placement, RunState, VMConfig, VMRuntime, VMStatus


def vm(node: str, reported_by: str, status: VMStatus) -> VM:
    return VM(config=VMConfig(vmid=101, name="web", memory_mb=64, cores=1),
              placement=Placement(node=node, state=RunState.RUNNING), placement_rev=5,
              runtime=VMRuntime(node=reported_by, status=status, pid=42))


def test_the_owners_report_is_shown() -> None:
    assert vm_out(vm("n1", "n1", VMStatus.RUNNING)).status == "running"


def test_a_report_from_the_host_the_vm_left_is_not_its_status_now() -> None:
    """HA moved the VM from a lost n2 to n1: n2's last report said running, but nothing runs
    on n1 until n1 reports it."""
    out = vm_out(vm("n1", "n2", VMStatus.RUNNING))
    assert out.status == "unknown" and "no report from n1 yet" in out.message
    assert vm_out(vm("n1", "n2", VMStatus.STOPPED)).status == "stopped"


def test_a_vm_on_an_offline_host_is_unknown() -> None:
    out = vm_out(vm("n1", "n1", VMStatus.RUNNING), host_online=False)
    assert out.status == "unknown" and "offline" in out.message
