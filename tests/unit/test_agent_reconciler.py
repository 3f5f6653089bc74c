from corral.agent.reconciler import (
    Action,
    Do,
    LeaseStep,
    Ownership,
    Placed,
    Purpose,
    accept_task,
    after_renewal,
    ownership_refusal,
    plan_observation,
    plan_orphans,
    plan_startup,
)
from corral.cluster.models import RunState, VMStatus

R, S, P = RunState.RUNNING, RunState.STOPPED, RunState.PAUSED


def test_running_processes_of_own_vms_are_adopted_not_restarted() -> None:
    placed = [Placed(100, "n1", R), Placed(101, "n1", P)]
    assert plan_startup("n1", placed, {100: 4242, 101: 4343}) == [
        Action(Do.ADOPT, 100), Action(Do.ADOPT, 101)
    ]


def test_vms_meant_to_run_start_when_the_host_comes_back() -> None:
    placed = [Placed(100, "n1", R), Placed(101, "n1", S)]
    actions = plan_startup("n1", placed, {})
    assert [(a.do, a.vmid) for a in actions] == [(Do.START, 100)]


def test_a_process_of_a_vm_owned_elsewhere_is_never_left_running() -> None:
    placed = [Placed(100, "n2", R)]
    actions = plan_startup("n1", placed, {100: 1, 555: 2})
    assert [(a.do, a.vmid) for a in actions] == [(Do.KILL_ORPHAN, 100), (Do.KILL_ORPHAN, 555)]
    assert "n2" in actions[0].reason


def test_other_hosts_vms_are_not_started_here() -> None:
    assert plan_startup("n1", [Placed(100, "n2", R)], {}) == []


def test_an_unexpected_exit_is_recorded_as_stopped() -> None:
    vm = Placed(100, "n1", R)
    assert plan_observation(vm, VMStatus.RUNNING, VMStatus.STOPPED, busy=False) == [
        Action(Do.MARK_STOPPED, 100, "the guest powered off or QEMU exited")
    ]


def test_no_mark_while_a_task_works_on_the_vm_or_when_meant_stopped() -> None:
    assert plan_observation(Placed(100, "n1", R), VMStatus.RUNNING, VMStatus.STOPPED, True) == []
    assert plan_observation(Placed(100, "n1", S), VMStatus.RUNNING, VMStatus.STOPPED, False) == []
    # First sight after an agent restart: nothing was seen running, nothing to conclude.
    assert plan_observation(Placed(100, "n1", R), None, VMStatus.STOPPED, False) == []


# --- ownership: the proof right before a guest runs -------------------------------------------

KINDS = frozenset({"vm.start", "vm.resume", "vm.receive"})


def test_owned_when_placed_here_with_the_lease_alive() -> None:
    seen = Ownership(100, Placed(100, "n1", S), lease_alive=True, revision=7)
    for purpose in (Purpose.START, Purpose.RESUME):
        assert ownership_refusal("n1", seen, purpose).ok


def test_not_owned_once_placed_elsewhere_even_with_the_lease() -> None:
    v = ownership_refusal("n1", Ownership(100, Placed(100, "n2", R), True), Purpose.START)
    assert not v.ok and not v.retry and "placed on n2" in v.reason


def test_not_owned_when_the_vm_is_gone() -> None:
    v = ownership_refusal("n1", Ownership(100, None, True), Purpose.RESUME)
    assert not v.ok and not v.retry and "no longer exists" in v.reason


def test_a_lost_lease_refuses_but_may_be_proved_again_after_registering() -> None:
    v = ownership_refusal("n1", Ownership(100, Placed(100, "n1", R), False, revision=9),
                          Purpose.START)
    assert not v.ok and v.retry and "lease" in v.reason and "9" in v.reason
    # Placed elsewhere and no lease: nothing to wait for.
    moved = ownership_refusal("n1", Ownership(100, Placed(100, "n2", R), False), Purpose.START)
    assert not moved.ok and not moved.retry


def test_start_up_restores_only_what_is_still_meant_to_run() -> None:
    stopped = Ownership(100, Placed(100, "n1", S), True)
    assert not ownership_refusal("n1", stopped, Purpose.RESTORE).ok
    assert ownership_refusal("n1", Ownership(100, Placed(100, "n1", P), True),
                             Purpose.RESTORE).ok


def test_receiving_needs_the_migration_to_this_host_not_the_placement() -> None:
    waiting = Ownership(100, Placed(100, "n2", R), True, receiving=True)
    assert ownership_refusal("n1", waiting, Purpose.RECEIVE).ok
    over = Ownership(100, Placed(100, "n2", R), True, receiving=False)
    assert not ownership_refusal("n1", over, Purpose.RECEIVE).ok
    frozen = Ownership(100, Placed(100, "n2", R), False, receiving=True)
    assert not ownership_refusal("n1", frozen, Purpose.RECEIVE).ok


# --- accepting a task -------------------------------------------------------------------------


def test_accept_a_task_for_a_vm_placed_here_while_the_lease_is_alive() -> None:
    assert accept_task("vm.start", Placed(100, "n1", S), "n1", True, KINDS).ok


def test_refuse_a_task_queued_before_the_vm_moved() -> None:
    v = accept_task("vm.start", Placed(100, "n2", S), "n1", True, KINDS)
    assert not v.ok and "placed on n2" in v.reason


def test_the_receiving_end_of_a_migration_runs_for_a_vm_placed_elsewhere() -> None:
    assert accept_task("vm.receive", Placed(100, "n2", R), "n1", True, KINDS).ok


def test_refuse_without_a_live_lease_unknown_kinds_and_gone_vms() -> None:
    assert "lease" in accept_task("vm.start", Placed(100, "n1", S), "n1", False, KINDS).reason
    assert "unknown task kind" in accept_task("vm.fly", Placed(100, "n1", S), "n1", True,
                                              KINDS).reason
    assert accept_task("vm.start", None, "n1", True, KINDS).reason == "the VM is gone"


def test_a_lapsed_lease_is_taken_again() -> None:
    assert after_renewal(4) is LeaseStep.KEEP
    assert after_renewal(0) is LeaseStep.REREGISTER
    assert after_renewal(-1) is LeaseStep.REREGISTER


# --- orphans: any time, not only at start -----------------------------------------------------


def test_orphans_are_processes_of_vms_gone_or_placed_elsewhere() -> None:
    placed = {100: Placed(100, "n1", R), 101: Placed(101, "n2", R)}
    assert plan_orphans("n1", placed, [100, 101, 102], spared=()) == [
        Action(Do.KILL_ORPHAN, 101, "placed on n2"),
        Action(Do.KILL_ORPHAN, 102, "no such VM in the cluster"),
    ]


def test_a_migration_in_progress_spares_both_ends() -> None:
    # 101: the source's paused copy while its vm.migrate runs; 102: an incoming QEMU.
    placed = {101: Placed(101, "n2", R), 102: Placed(102, "n2", R)}
    assert plan_orphans("n1", placed, [101, 102], spared={101, 102}) == []


def test_start_up_spares_what_is_spared_and_kills_the_rest() -> None:
    placed = [Placed(100, "n2", R), Placed(101, "n2", R)]
    assert plan_startup("n1", placed, {100: 1, 101: 2}, spared={101}) == [
        Action(Do.KILL_ORPHAN, 100, "placed on n2")
    ]


# --- an unresponsive QEMU ---------------------------------------------------------------------


def test_an_unanswering_qemu_is_never_taken_for_stopped() -> None:
    vm = Placed(100, "n1", R)
    assert plan_observation(vm, VMStatus.RUNNING, VMStatus.UNKNOWN, busy=False) == []
    assert plan_observation(vm, VMStatus.UNKNOWN, VMStatus.UNKNOWN, busy=False) == []
    # Gone after being unknown: now it has stopped.
    assert [a.do for a in plan_observation(vm, VMStatus.UNKNOWN, VMStatus.STOPPED, False)] == [
        Do.MARK_STOPPED]
