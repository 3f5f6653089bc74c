from corral.agent.reconciler import Action, Do, Placed, plan_observation, plan_startup
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
