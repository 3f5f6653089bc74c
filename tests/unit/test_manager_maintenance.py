"""Maintenance mode as pure decisions over plain-data snapshots."""

from __future__ import annotations

from test_manager_world import P, S, World, queued

from corral.cluster.actions import SetPlacement
from corral.cluster.models import Task
from corral.ha.models import HARule
from corral.manager.decide import decide
from corral.manager.maintenance import (
    DEFAULT_PARALLEL,
    MAX_ATTEMPTS,
    RETRY_AFTER,
    maintenance_status,
)


def cluster(*vms: int, n2: int = 4096, n3: int = 4096) -> World:
    w = World().node("n1").node("n2", n2).node("n3", n3)
    for vmid in vms:
        w.vm(vmid, "n1")
    return w


def test_nothing_happens_without_a_request() -> None:
    w = cluster(101, 102)
    assert decide(w.snap()) == []
    st = maintenance_status(w.snap(), "n1")
    assert st.state == "off" and not st.enabled


def test_running_vms_move_live_to_the_host_with_most_free_memory() -> None:
    w = cluster(101, n2=2048, n3=4096).maintenance("n1")
    [task] = queued(decide(w.snap()))
    assert task.kind == "vm.migrate" and task.node == "n1" and task.vmid == 101
    assert task.params == {"target": "n3", "with_local_disks": False, "bwlimit_mbps": None,
                           "origin": "n1"}


def test_targets_account_for_migrations_queued_in_the_same_decision() -> None:
    # n3 has room for one 1 GiB VM more than n2: the second VM must go to n2.
    w = World().node("n1").node("n2", 2048).node("n3", 2560).maintenance("n1")
    w.vm(101, "n1", memory_mb=1024).vm(102, "n1", memory_mb=1024)
    targets = {t.vmid: t.params["target"] for t in queued(decide(w.snap()))}
    assert targets == {101: "n3", 102: "n2"}


def test_at_most_parallel_migrations_at_once_the_rest_wait() -> None:
    w = cluster(101, 102, 103, 104, 105).maintenance("n1")
    first = queued(w.step())
    assert len(first) == DEFAULT_PARALLEL
    assert queued(w.step()) == []  # still migrating: no new slot
    st = maintenance_status(w.snap(), "n1")
    assert st.state == "evacuating" and len(st.moving) == 2 and st.to_move == [103, 104, 105]
    w.finish(first[0].id)
    assert [t.vmid for t in queued(w.step())] == [103]


def test_per_request_parallel_overrides_the_default() -> None:
    w = cluster(101, 102, 103, 104).maintenance("n1", parallel=3)
    assert len(queued(decide(w.snap()))) == 3


def test_a_whole_evacuation_settles_with_the_host_empty_and_origins_kept() -> None:
    w = cluster(101, 102, 103, 104, 105, 106).maintenance("n1")
    w.vm(107, "n1", state=S)
    w.settle()
    assert w.snap().vms_on("n1") == []
    assert all(v.placement.origin == "n1" for v in w.vms.values())
    st = maintenance_status(w.snap(), "n1")
    assert st.state == "in-maintenance" and st.away == list(range(101, 108)) and not st.stuck


def test_stopped_vms_move_cold_and_paused_ones_live() -> None:
    w = World().node("n1").node("n2").maintenance("n1", parallel=4)
    w.vm(101, "n1", state=S).vm(102, "n1", state=P)
    tasks = queued(decide(w.snap()))
    assert {t.vmid: t.kind for t in tasks} == {101: "vm.migrate", 102: "vm.migrate"}


def test_stopped_vms_need_no_memory_on_the_target() -> None:
    w = World().node("n1").node("n2", 600).maintenance("n1")
    w.vm(101, "n1", state=S, memory_mb=2048)
    assert [t.params["target"] for t in queued(decide(w.snap()))] == ["n2"]


def test_local_disks_are_copied_along() -> None:
    w = World().node("n1").node("n2").maintenance("n1")
    w.vm(101, "n1", local_disk=True)
    [task] = queued(decide(w.snap()))
    assert task.params["with_local_disks"] is True


def test_stay_vms_are_left_and_listed() -> None:
    w = cluster(101).maintenance("n1")
    w.vm(102, "n1", policy="stay")
    w.settle()
    assert [v.vmid for v in w.snap().vms_on("n1")] == [102]
    st = maintenance_status(w.snap(), "n1")
    assert st.state == "in-maintenance" and st.staying == [102]


def test_stop_vms_are_shut_down_and_stay() -> None:
    w = World().node("n1").node("n2").maintenance("n1")
    w.vm(101, "n1", policy="stop").vm(102, "n1", policy="stop", state=P)
    kinds = {t.vmid: (t.kind, t.node) for t in queued(decide(w.snap()))}
    assert kinds == {101: ("vm.shutdown", "n1"), 102: ("vm.stop", "n1")}
    w.settle()
    assert {v.vmid: (v.placement.node, v.placement.state) for v in w.vms.values()} == {
        101: ("n1", S), 102: ("n1", S)}
    assert maintenance_status(w.snap(), "n1").stopped == [101, 102]


def test_vms_that_fit_nowhere_are_listed_with_the_reason() -> None:
    w = World().node("n1").node("n2", 1024).maintenance("n1")
    w.vm(101, "n1", memory_mb=2048)
    assert decide(w.snap()) == []
    st = maintenance_status(w.snap(), "n1")
    assert st.state == "in-maintenance" and list(st.stuck) == [101]
    assert "not enough free memory on n2" in st.stuck[101]


def test_no_other_host_online_is_a_listed_reason() -> None:
    w = World().node("n1").node("n2", alive=False).maintenance("n1")
    w.vm(101, "n1")
    assert "n2 is offline" in maintenance_status(w.snap(), "n1").stuck[101]


def test_hosts_in_maintenance_take_no_vms() -> None:
    w = cluster(101).maintenance("n1").maintenance("n3")
    assert [t.params["target"] for t in queued(decide(w.snap()))] == ["n2"]


def fail_all(w: World, error: str) -> None:
    for t in w.agent_tasks():
        w.finish(t.id, error)


def test_a_failed_migration_is_retried_after_a_pause() -> None:
    w = World().node("n1").node("n2").maintenance("n1")
    w.vm(101, "n1")
    w.step()
    fail_all(w, "the agent restarted while the task ran")
    assert queued(w.step()) == []  # not at once
    assert maintenance_status(w.snap(), "n1").to_move == [101]
    w.now += RETRY_AFTER
    [retry] = queued(w.step())
    assert retry.id.endswith("-1")
    w.finish(retry.id)
    assert w.vms[101].placement.node == "n2"


def test_a_migration_failing_again_and_again_is_stuck_until_enabled_again() -> None:
    w = World().node("n1").node("n2").maintenance("n1")
    w.vm(101, "n1")
    for _ in range(MAX_ATTEMPTS):
        w.now += RETRY_AFTER
        assert len(queued(w.step())) == 1
        fail_all(w, "target out of memory")
    w.now += RETRY_AFTER
    assert decide(w.snap()) == []
    st = maintenance_status(w.snap(), "n1")
    assert st.stuck == {101: f"migration failed {MAX_ATTEMPTS} times: target out of memory"}
    assert st.state == "in-maintenance"
    w.maintenance("n1", at=900.0)  # disabled and enabled again: a new request
    assert [t.vmid for t in queued(decide(w.snap()))] == [101]


def test_a_vm_busy_with_another_task_waits_for_it() -> None:
    w = cluster(101).maintenance("n1")
    w.task(Task(id="t1", kind="vm.shutdown", node="n1", vmid=101, created_at=1))
    assert decide(w.snap()) == []
    assert maintenance_status(w.snap(), "n1").to_move == [101]


def test_disable_brings_the_vms_back_live_and_clears_their_origin() -> None:
    w = cluster(101, 102, 103).maintenance("n1")
    w.settle()
    w.maintenance("n1", on=False)
    assert maintenance_status(w.snap(), "n1").state == "returning"
    tasks = queued(decide(w.snap()))
    assert len(tasks) == DEFAULT_PARALLEL
    assert all(t.params["target"] == "n1" and t.params["origin"] is None for t in tasks)
    assert all(t.id.startswith("return-") for t in tasks)
    w.settle()
    assert {v.vmid: (v.placement.node, v.placement.origin) for v in w.vms.values()} == {
        101: ("n1", None), 102: ("n1", None), 103: ("n1", None)}
    assert maintenance_status(w.snap(), "n1").state == "off"


def test_no_return_clears_the_origin_and_leaves_the_vms() -> None:
    w = cluster(101, 102).maintenance("n1")
    w.settle()
    where = {v.vmid: v.placement.node for v in w.vms.values()}
    w.maintenance("n1", on=False, no_return=True)
    actions = decide(w.snap())
    assert actions and all(isinstance(a, SetPlacement) for a in actions)
    w.settle()
    assert {v.vmid: v.placement.node for v in w.vms.values()} == where
    assert all(v.placement.origin is None for v in w.vms.values())


def test_a_vm_moved_elsewhere_by_hand_has_no_origin_and_stays() -> None:
    w = cluster(101, 102).maintenance("n1")
    w.settle()
    w.place(101, node="n3", origin=None)  # what a manual migration records
    w.maintenance("n1", on=False)
    w.settle()
    assert w.vms[101].placement.node == "n3" and w.vms[102].placement.node == "n1"


def test_a_return_that_does_not_fit_is_stuck_with_the_reason() -> None:
    w = World().node("n1", 1024).node("n2")
    w.vm(101, "n2", memory_mb=768, origin="n1").vm(102, "n1", memory_mb=512)
    w.maintenance("n1", on=False)
    st = maintenance_status(w.snap(), "n1")
    assert st.state == "returning" and "not enough free memory on n1" in st.stuck[101]


def test_returns_wait_while_the_origin_host_is_offline() -> None:
    w = World().node("n1", alive=False).node("n2")
    w.vm(101, "n2", origin="n1")
    assert decide(w.snap()) == []
    assert "n1 is offline" in maintenance_status(w.snap(), "n1").stuck[101]


def test_a_vm_on_a_second_evacuating_host_goes_home_when_it_can() -> None:
    w = World().node("n1").node("n2").node("n3").maintenance("n2")
    w.vm(101, "n2", origin="n1")  # came from n1, which is back now
    [task] = queued(decide(w.snap()))
    assert task.params["target"] == "n1" and task.params["origin"] is None


def test_a_vm_on_a_second_evacuating_host_keeps_its_first_origin() -> None:
    w = World().node("n1").node("n2").node("n3").maintenance("n1").maintenance("n2")
    w.vm(101, "n2", origin="n1")
    [task] = queued(decide(w.snap()))
    assert task.params["target"] == "n3" and task.params["origin"] == "n1"


def test_task_ids_are_stable_so_queuing_again_is_harmless() -> None:
    w = cluster(101, 102).maintenance("n1")
    a, b = decide(w.snap()), decide(w.snap())
    assert a == b
    assert [t.id for t in queued(a)] == [f"maint-n1-{v}-{w.vms[v].placement_rev}-500-0"
                                         for v in (101, 102)]


def test_a_new_manager_continues_from_the_stored_tasks() -> None:
    w = cluster(101, 102, 103).maintenance("n1")
    first = queued(w.step())
    # Another manager takes over with the same etcd content: nothing is queued twice.
    assert queued(decide(w.snap())) == []
    for t in first:
        w.finish(t.id)
    assert [t.vmid for t in queued(decide(w.snap()))] == [103]


def test_evacuation_keeps_to_ha_anti_affinity() -> None:
    """n2 is the even choice, but VM 102 there must stay apart from VM 101: 101 goes to
    n3."""
    w = cluster(101, n2=8192, n3=4096)
    w.vm(102, "n2").vm(103, "n3").vm(104, "n3")
    w.maintenance("n1")
    apart = [HARule(name="apart", kind="anti-affinity", vms=[101, 102])]
    assert queued(decide(w.snap()))[0].params["target"] == "n2"  # without the rule
    [task] = queued(decide(w.snap(), apart))
    assert task.params["target"] == "n3"


def test_evacuation_keeps_to_strict_preferences_or_lists_the_vm_as_stuck() -> None:
    w = cluster(101, n2=8192, n3=4096).maintenance("n1")
    only_n1 = [HARule(name="home", kind="node-preference", vms=[101], nodes={"n1": 1},
                      strict=True)]
    assert queued(decide(w.snap(), only_n1)) == []
    st = maintenance_status(w.snap(), "n1", only_n1)
    assert "home" in st.stuck[101]
