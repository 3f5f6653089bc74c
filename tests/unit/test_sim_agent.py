"""The simulator's agent makes the real agent's decisions: a task frozen mid-way re-proves
ownership after the thaw, and the monitor pass stops QEMUs of VMs placed elsewhere."""

from __future__ import annotations

from corral.cluster.models import Placement, RunState, Task, TaskState, VMStatus
from corral.sim.world import Host, World


def world() -> World:
    w = World(ttl=10.0, watchdog=20.0)  # a watchdog longer than the lease: no reset here
    w.add_host("n1", 4096)
    w.add_host("n2", 4096)
    return w


def freeze(h: Host) -> None:
    h.agent_up, h.frozen = False, True  # as the scenario runner's agent-freeze


def thaw(h: Host) -> None:
    h.agent_up, h.frozen = True, False  # the same process carries on, tasks and all


def tick(w: World, until: float) -> None:
    while w.t < until:
        w.leases_and_watchdogs()
        w.agents()
        w.t = round(w.t + 0.5, 6)


def test_a_start_frozen_mid_way_is_refused_once_the_vm_moved() -> None:
    w = world()
    w.add_vm(100, "n1", 512, running=False)
    w.store.tasks["t"] = Task(id="t", kind="vm.start", node="n1", vmid=100, created_at=0.0)
    tick(w, 1.0)
    assert w.store.tasks["t"].state is TaskState.RUNNING
    freeze(w.hosts["n1"])  # after it accepted the task
    tick(w, 15.0)
    assert not w.alive("n1")
    w.store.put_placement(100, Placement(node="n2", state=RunState.RUNNING))
    thaw(w.hosts["n1"])
    tick(w, 17.0)
    done = w.store.tasks["t"]
    assert done.state is TaskState.ERROR and "placed on n2" in (done.error or "")
    assert w.runs_on(100) == []
    assert w.alive("n1")  # registered again after the thaw


def test_a_thawed_start_still_placed_here_runs_under_the_new_lease() -> None:
    w = world()
    w.add_vm(100, "n1", 512, running=False)
    w.store.tasks["t"] = Task(id="t", kind="vm.start", node="n1", vmid=100, created_at=0.0)
    tick(w, 1.0)
    freeze(w.hosts["n1"])
    tick(w, 15.0)
    thaw(w.hosts["n1"])
    tick(w, 17.0)
    assert w.store.tasks["t"].state is TaskState.OK and w.runs_on(100) == ["n1"]


def test_the_monitor_stops_a_qemu_of_a_vm_placed_elsewhere() -> None:
    w = world()
    w.add_vm(100, "n1", 512, running=True)
    tick(w, 1.0)
    w.store.put_placement(100, Placement(node="n2", state=RunState.RUNNING))
    tick(w, 2.0)
    assert w.runs_on(100) == []
    assert any("agent kills orphan VM 100 (placed on n2)" in line for line in w.log)


def test_a_restarted_host_does_not_boot_a_vm_that_is_no_longer_meant_to_run() -> None:
    w = world()
    w.add_vm(100, "n1", 512, running=True)
    h = w.hosts["n1"]
    h.procs.clear()
    h.agent_up, h.agent_back_at = False, 3.0
    w.store.put_placement(100, Placement(node="n1", state=RunState.STOPPED))
    tick(w, 5.0)
    assert h.agent_up and w.runs_on(100) == []


def test_a_hung_qemu_is_reported_unknown_and_left_alone() -> None:
    w = world()
    w.add_vm(100, "n1", 512, running=True)
    tick(w, 1.0)
    w.hosts["n1"].hung.add(100)
    tick(w, 5.0)
    rt = w.store.runtimes[100]
    assert rt.status is VMStatus.UNKNOWN and rt.node == "n1"
    assert w.store.placements[100][0].state is RunState.RUNNING and w.runs_on(100) == ["n1"]
    w.hosts["n1"].hung.discard(100)
    tick(w, 7.0)
    assert w.store.runtimes[100].status is VMStatus.RUNNING and w.runs_on(100) == ["n1"]
