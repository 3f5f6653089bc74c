"""Cancelling a bulk job, whole or per VM, as pure decisions: VMs not begun are never acted
on, a child under way runs to its end, and the manager reads the cancel from the records."""

from __future__ import annotations

from typing import Any

import pytest
from test_manager_world import R, S, World, queued

from corral.cluster.models import Task, TaskState
from corral.manager.bulk import KIND, NOT_BEGUN, marker_id
from corral.manager.bulk_cancel import (
    CancelPlan,
    CancelRefused,
    nothing_cancelled,
    plan_cancel,
)
from corral.manager.decide import decide


def bulk(w: World, action: str, **params: Any) -> World:
    return w.task(Task(id="b1", kind=KIND, node="n1", params={"action": action, **params},
                       created_at=900))


def hosts(*vms: int, state: Any = S) -> World:
    w = World().node("n1").node("n2")
    for vmid in vms:
        w.vm(vmid, "n1", state=state)
    return w


def children(w: World) -> dict[int, Task]:
    return {t.vmid: t for t in w.tasks.values()
            if t.parent == "b1" and t.vmid is not None}


def cancel(w: World, vms: list[int] | None = None) -> CancelPlan:
    """What the API decides, applied as its transactions would: a create only where no
    record is, an end only of a child still queued."""
    on_node = [vm.vmid for vm in w.snap().vms_on("n1")]
    plan = plan_cancel(w.tasks["b1"], children(w), on_node, vms, w.now)
    for record in [*plan.create, *([plan.marker] if plan.marker else [])]:
        w.tasks.setdefault(record.id, record)
    for record in plan.end:
        if w.tasks[record.id].state is TaskState.QUEUED:
            w.tasks[record.id] = record
    return plan


def claim(w: World, task_id: str) -> None:
    """An agent claims a queued child: from now on it runs to its end."""
    w.tasks[task_id] = w.tasks[task_id].model_copy(update={"state": TaskState.RUNNING,
                                                            "started_at": w.now})


def test_a_whole_cancel_before_the_manager_planned_acts_on_no_vm() -> None:
    w = bulk(hosts(101, 102, 103), "start")
    plan = cancel(w)
    assert [t.id for t in plan.create] == ["b1-101", "b1-102", "b1-103"]
    assert plan.marker is not None and plan.marker.id == marker_id("b1")
    w.settle()
    p = w.tasks["b1"]
    assert p.state is TaskState.ERROR and "cancelled by the operator" in (p.error or "")
    assert p.result["succeeded"] == [] and sorted(p.result["cancelled"]) == ["101", "102", "103"]
    assert all(vm.placement.state is S for vm in w.vms.values())  # none was started


def test_a_whole_cancel_lets_the_vm_under_way_finish_and_starts_no_other() -> None:
    w = bulk(hosts(101, 102, 103), "start", parallel=1)
    assert [t.vmid for t in queued(w.step())] == [101]
    claim(w, "b1-101")
    plan = cancel(w)
    assert plan.begun == {101: "its vm.start has begun and runs to its end"}
    assert [t.vmid for t in plan.create] == [102, 103] and plan.end == []
    assert queued(w.step()) == []  # nothing new while 101 runs
    assert w.tasks["b1"].state is TaskState.RUNNING
    w.finish("b1-101")
    w.settle()
    p = w.tasks["b1"]
    assert p.state is TaskState.ERROR and p.result["succeeded"] == [101]
    assert p.result["cancelled"] == {"102": NOT_BEGUN, "103": NOT_BEGUN}
    assert p.result["failed"] == {}
    assert w.vms[101].placement.state is R and w.vms[102].placement.state is S


def test_a_queued_child_is_cancelled_and_counts_apart_from_failures() -> None:
    w = bulk(hosts(101, 102), "start", parallel=2)
    w.step()  # both queued, none claimed yet
    plan = cancel(w, [102])
    assert [t.id for t in plan.end] == ["b1-102"] and plan.marker is None
    w.settle()
    p = w.tasks["b1"]
    assert p.state is TaskState.OK  # a per-VM cancel is what the operator asked for
    assert p.result["succeeded"] == [101] and p.result["cancelled"] == {"102": NOT_BEGUN}
    assert p.result["failed"] == {} and w.vms[102].placement.state is S
    assert p.log[-1] == "done: 1 ok, 0 failed, 0 skipped, 1 cancelled"


def test_a_migration_under_way_is_never_touched() -> None:
    w = bulk(hosts(101, 102, state=R), "migrate", target="n2", parallel=1)
    w.step()
    claim(w, "b1-101")
    before = w.tasks["b1-101"]
    plan = cancel(w)
    assert 101 in plan.begun and all(t.vmid != 101 for t in [*plan.create, *plan.end])
    assert w.tasks["b1-101"] == before
    w.finish("b1-101")  # the migration completes as usual: the VM is on n2 only
    w.settle()
    assert w.vms[101].placement.node == "n2" and w.vms[102].placement.node == "n1"


def test_the_cancelled_record_wins_over_a_late_queue_from_a_stale_snapshot() -> None:
    w = bulk(hosts(101), "start")
    w.step()  # planned, child queued
    del w.tasks["b1-101"]  # as seen by a manager reading just before it queued
    stale = w.snap()
    cancel(w, [101])
    w.apply(decide(stale))  # its QueueTask needs the key absent: it changes nothing
    assert w.tasks["b1-101"].result == {"cancelled": True}
    w.settle()
    assert w.vms[101].placement.state is S


def test_the_marker_alone_stops_vms_the_api_did_not_see() -> None:
    w = bulk(hosts(101, 102), "start", parallel=1)
    w.step()
    claim(w, "b1-101")
    w.task(Task(id=marker_id("b1"), kind="node.bulk.cancel", node="n1", parent="b1",
                state=TaskState.OK, created_at=950, ended_at=950))
    assert queued(w.step()) == []
    w.finish("b1-101")
    w.settle()
    assert w.tasks["b1"].result["cancelled"] == {"102": NOT_BEGUN}
    assert w.vms[102].placement.state is S


def test_skipped_and_ended_vms_have_nothing_to_cancel() -> None:
    w = bulk(hosts(101, 102, 103), "start", parallel=1)
    w.vm(102, "n1", state=R)  # already running: skipped
    w.step()
    w.finish("b1-101")
    w.step()
    plan = cancel(w)
    assert plan.finished[101] == "already ended (ok)"
    assert plan.finished[102] == "skipped: already running"
    assert [t.vmid for t in [*plan.create, *plan.end]] == [103]


@pytest.mark.parametrize(("setup", "vms", "status", "field", "words"), [
    ("not-bulk", None, 409, None, "only bulk actions"),
    ("ended", None, 409, None, "already ended"),
    ("planned", [555], 422, "vms", "555 not part of task b1"),
])
def test_refusals_say_why(setup: str, vms: list[int] | None, status: int, field: str | None,
                          words: str) -> None:
    w = bulk(hosts(101), "start")
    if setup == "not-bulk":
        w.tasks["b1"] = w.tasks["b1"].model_copy(update={"kind": "vm.start"})
    elif setup == "ended":
        w.settle()
    else:
        w.step()
    with pytest.raises(CancelRefused) as e:
        plan_cancel(w.tasks["b1"], children(w), [101], vms, w.now)
    assert (e.value.status, e.value.field) == (status, field) and words in e.value.message


def test_naming_only_vms_under_way_is_refused_with_their_reasons() -> None:
    refusal = nothing_cancelled([], {101: "its vm.migrate has begun and runs to its end"},
                                {102: "already ended (ok)"})
    assert refusal is not None and refusal.status == 409 and refusal.field == "vms"
    assert refusal.message == ("nothing to cancel: VM 101: its vm.migrate has begun and runs "
                               "to its end; VM 102: already ended (ok)")
    assert nothing_cancelled([103], {101: "x"}, {}) is None

