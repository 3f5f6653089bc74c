"""Bulk actions on a host as pure decisions over plain-data snapshots."""

from __future__ import annotations

from typing import Any

from test_manager_world import P, R, S, World, queued

from corral.cluster.actions import UpdateTask
from corral.cluster.models import Task, TaskState
from corral.manager.bulk import KIND
from corral.manager.decide import decide


def bulk(w: World, action: str, node: str = "n1", task_id: str = "b1", **params: Any) -> World:
    return w.task(Task(id=task_id, kind=KIND, node=node, params={"action": action, **params},
                       created_at=900))


def parent(w: World, task_id: str = "b1") -> Task:
    task: Task = w.tasks[task_id]
    return task


def hosts(*vms: tuple[int, Any, int]) -> World:
    w = World().node("n1").node("n2")
    for vmid, state, startup in vms:
        w.vm(vmid, "n1", state=state, startup=startup)
    return w


def test_the_parent_starts_and_children_are_bounded_by_parallel() -> None:
    w = bulk(hosts(*[(v, S, 0) for v in range(101, 107)]), "start", parallel=2)
    actions = w.step()
    assert isinstance(actions[0], UpdateTask) and actions[0].task.state is TaskState.RUNNING
    children = queued(actions)
    assert [(t.id, t.kind, t.parent, t.node) for t in children] == [
        ("b1-101", "vm.start", "b1", "n1"), ("b1-102", "vm.start", "b1", "n1")]
    assert parent(w).result["plan"] == list(range(101, 107))
    assert queued(w.step()) == []  # both still running: no third child
    w.finish("b1-101")
    assert [t.vmid for t in queued(w.step())] == [103]
    assert parent(w).progress == 1 / 6


def test_start_follows_startup_order_group_by_group() -> None:
    w = bulk(hosts((101, S, 2), (102, S, 1), (103, S, 1), (104, S, 3)), "start", parallel=4)
    assert [t.vmid for t in queued(w.step())] == [102, 103]  # group 1 first, together
    w.finish("b1-102")
    assert queued(w.step()) == []  # 103 of group 1 still starting
    w.finish("b1-103")
    assert [t.vmid for t in queued(w.step())] == [101]


def test_shutdown_goes_in_reverse_start_order() -> None:
    w = bulk(hosts((101, R, 2), (102, R, 1), (103, R, 3)), "shutdown", parallel=4, timeout=30)
    order = []
    for _ in range(10):
        for t in queued(w.step()):
            order.append(t.vmid)
            assert t.params == {"timeout": 30}
        for t in w.agent_tasks():
            w.finish(t.id)
    assert order == [103, 101, 102]
    assert parent(w).state is TaskState.OK


def test_vms_with_nothing_to_do_are_skipped_with_the_reason() -> None:
    w = bulk(hosts((101, R, 0), (102, S, 0), (103, P, 0)), "start")
    w.settle()
    p = parent(w)
    assert p.state is TaskState.OK
    assert p.result["succeeded"] == [102]
    assert p.result["skipped"] == {"101": "already running", "103": "already paused"}
    assert p.result["failed"] == {}


def test_suspend_skips_stopped_and_paused_vms() -> None:
    w = bulk(hosts((101, R, 0), (102, S, 0), (103, P, 0)), "suspend")
    w.settle()
    assert parent(w).result["skipped"] == {"102": "not running", "103": "already paused"}
    assert w.vms[101].placement.state is P


def test_summary_lists_failures_and_the_parent_ends_in_error() -> None:
    w = bulk(hosts((101, S, 0), (102, S, 0)), "start")
    w.settle(fail={102: "volume missing"})
    p = parent(w)
    assert p.state is TaskState.ERROR and p.progress == 1.0
    assert p.result["succeeded"] == [101] and p.result["failed"] == {"102": "volume missing"}
    assert p.error is not None and "102: volume missing" in p.error


def test_migrate_moves_the_selected_vms_to_the_target() -> None:
    w = bulk(hosts((101, R, 0), (102, R, 0), (103, S, 0)), "migrate", target="n2",
             vms=[101, 103])
    w.settle()
    assert {v.vmid: v.placement.node for v in w.vms.values()} == {101: "n2", 102: "n1",
                                                                   103: "n2"}
    assert all(v.placement.origin is None for v in w.vms.values())
    assert parent(w).result["succeeded"] == [101, 103]


def test_migrate_refusals_fail_that_vm_only() -> None:
    w = World().node("n1").node("n2", 1024)
    w.vm(101, "n1", memory_mb=256).vm(102, "n1", memory_mb=2048).vm(103, "n1", local_disk=True)
    bulk(w, "migrate", target="n2")
    w.settle()
    p = parent(w)
    assert p.result["succeeded"] == [101]
    assert "not enough free memory on n2" in p.result["failed"]["102"]
    assert "--with-local-disks" in p.result["failed"]["103"]
    assert p.state is TaskState.ERROR


def test_requested_vms_not_on_the_host_are_skipped() -> None:
    w = bulk(hosts((101, S, 0)), "start", vms=[101, 999])
    w.settle()
    assert parent(w).result["skipped"] == {"999": "not on n1"}
    assert parent(w).result["succeeded"] == [101]


def test_a_vm_busy_with_another_task_is_waited_for() -> None:
    w = bulk(hosts((101, S, 0)), "start")
    w.task(Task(id="other", kind="vm.create", node="n1", vmid=101, created_at=1))
    assert queued(w.step()) == []
    w.finish("other")
    assert [t.id for t in queued(w.step())] == ["b1-101"]


def test_an_empty_host_finishes_at_once() -> None:
    w = bulk(World().node("n1"), "shutdown")
    w.step()
    assert parent(w).state is TaskState.OK and parent(w).progress == 1.0


def test_bad_params_end_the_task_with_the_reason() -> None:
    w = bulk(World().node("n1"), "explode")
    w.step()
    assert parent(w).state is TaskState.ERROR and "action" in (parent(w).error or "")


def test_a_settled_bulk_writes_nothing_more() -> None:
    w = bulk(hosts((101, S, 0)), "start")
    w.settle()
    assert decide(w.snap()) == []


def test_decide_is_deterministic_and_restartable() -> None:
    w = bulk(hosts(*[(v, R, v % 3) for v in range(101, 109)]), "shutdown", parallel=3)
    w.maintenance("n2")  # an unrelated request: nothing on n2
    assert decide(w.snap()) == decide(w.snap())
    w.step()
    again = decide(w.snap())  # a new leader on the same etcd content
    assert queued(again) == []
    w.settle()
    assert parent(w).result["succeeded"] == [107, 104, 101, 106, 103, 108, 105, 102]


def test_bulk_waits_for_a_maintenance_migration_of_the_same_vm() -> None:
    w = World().node("n1").node("n2").node("n3").maintenance("n1")
    w.vm(101, "n1")
    bulk(w, "suspend")
    kinds = [t.kind for t in queued(w.step())]
    assert kinds == ["vm.migrate"]  # maintenance first; the bulk does not race it
    w.settle()
    assert parent(w).result["skipped"] == {"101": "now on n2"}
