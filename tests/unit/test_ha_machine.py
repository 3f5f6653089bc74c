"""The pure HA state machine, pass by pass."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from corral.cluster.actions import QueueTask, SetPlacement
from corral.cluster.models import (
    VM,
    Disk,
    Node,
    NodeInfo,
    NodeRequest,
    Placement,
    RunState,
    StorageConfig,
    StorageType,
    Task,
    TaskState,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.actions import ClearFenceConfirmation, SaveHAState
from corral.ha.machine import decide_ha
from corral.ha.models import (
    FenceConfirmation,
    HAInputs,
    HARequest,
    HARule,
    HASettings,
    HAState,
    HATiming,
    VMHAState,
    VMStatusHA,
)
from corral.ha.status import ha_status

T = HATiming(lease_ttl=10, watchdog_timeout=5, margin=2)


def snap(now: float, alive: dict[str, bool], vms: list[VM], tasks: list[Task] | None = None
         ) -> ClusterSnapshot:
    nodes = {n: Node(n, NodeInfo(name=n, cpus=4, memory_mb=4096, started_at=0), a, None, None)
             for n, a in alive.items()}
    return ClusterSnapshot(now=now, nodes=nodes, vms={v.vmid: v for v in vms},
                           tasks=tasks or [])


def vm(vmid: int, node: str, running: bool, rev: int = 7, memory: int = 512) -> VM:
    st = VMStatus.RUNNING if running else VMStatus.STOPPED
    return VM(VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=memory, cores=1),
              Placement(node=node, state=RunState.RUNNING if running else RunState.STOPPED),
              rev, VMRuntime(node=node, status=st))


def ha(*vmids: int, state: HAState | None = None, rules: list[HARule] | None = None,
       fenced: dict[str, FenceConfirmation] | None = None) -> HAInputs:
    return HAInputs(settings={v: HASettings(vmid=v) for v in vmids}, rules=rules or [],
                    state=state or HAState(), fenced=fenced or {})


def test_lost_host_waits_for_the_watchdog_deadline_then_recovers_by_cas() -> None:
    up = {"n1": True, "n2": False, "n3": True}
    vms = [vm(100, "n2", True)]
    actions, state = decide_ha(snap(20, up, vms), ha(100), T)
    assert state.nodes["n2"].lost_at == 20 and state.vms[100].status == "fence"
    assert [a for a in actions if not isinstance(a, SaveHAState)] == []
    actions, state = decide_ha(snap(26.9, up, vms), ha(100, state=state), T)
    assert state.vms[100].status == "fence"
    actions, state = decide_ha(snap(27, up, vms), ha(100, state=state), T)
    moves = [a for a in actions if isinstance(a, SetPlacement)]
    assert len(moves) == 1 and moves[0].expect_rev == 7
    assert moves[0].placement.node in ("n1", "n3") and moves[0].placement.generation == 1
    # No start in the pass that moves the placement: the start waits for the write to land.
    assert not any(isinstance(a, QueueTask) for a in actions)
    assert state.vms[100].status == "recovery" and state.nodes["n2"].status == "fenced"


def test_a_vm_whose_disks_are_on_the_lost_hosts_local_storage_is_left_with_a_reason() -> None:
    """Started elsewhere it would find no disk; a VM on shared storage is recovered."""
    up = {"n1": True, "n2": False}
    storages = {"local": StorageConfig(id="local", type=StorageType.DIR, path="storage/local"),
                "shared": StorageConfig(id="shared", type=StorageType.SHARED_DIR,
                                        path="/srv/shared")}

    def with_disk(vmid: int, storage: str) -> VM:
        v = vm(vmid, "n2", True)
        disk = Disk(volume=f"{storage}:vm-{vmid}-disk-0.qcow2", size_mb=64)
        return replace(v, config=v.config.model_copy(update={"disks": [disk]}))

    vms = [with_disk(100, "local"), with_disk(101, "shared")]
    state = None
    for now in (20, 30):
        s = replace(snap(now, up, vms), storages=storages)
        actions, state = decide_ha(s, ha(100, 101, state=state), T)
    moves = [a for a in actions if isinstance(a, SetPlacement)]
    assert [m.vmid for m in moves] == [101] and moves[0].placement.node == "n1"
    assert state is not None and state.vms[100].status == "recovery"
    assert "local:vm-100-disk-0.qcow2" in state.vms[100].reason
    assert "waits for n2" in state.vms[100].reason


def test_recovered_placement_gets_a_start_with_a_derived_id() -> None:
    up = {"n1": True, "n2": False}
    moved = vm(100, "n1", False, rev=9)
    moved = VM(moved.config, moved.placement.model_copy(update={"generation": 1,
               "state": RunState.RUNNING}), 9, VMRuntime(node="n2", status=VMStatus.RUNNING))
    _, state = decide_ha(snap(30, up, [vm(100, "n2", True)]),
                         ha(100, fenced={"n2": FenceConfirmation(node="n2", at=29)}), T)
    actions, state = decide_ha(snap(31, up, [moved]), ha(100, state=state), T)
    starts = [a.task for a in actions if isinstance(a, QueueTask)]
    assert [(t.id, t.kind, t.node) for t in starts] == [("ha-100-g1-a1-start", "vm.start", "n1")]
    again, _ = decide_ha(snap(31, up, [moved]), ha(100, state=state), T)
    assert not any(isinstance(a, QueueTask) for a in again)  # waiting, not re-queuing


def test_fence_confirmation_recovers_at_once_but_not_a_stale_one() -> None:
    up = {"n1": True, "n2": False}
    conf = {"n2": FenceConfirmation(node="n2", at=5)}
    actions, state = decide_ha(snap(6, up, [vm(100, "n2", True)]), ha(100, fenced=conf), T)
    assert state.nodes["n2"].status == "fenced"
    assert any(isinstance(a, SetPlacement) for a in actions)
    stale = {"n2": FenceConfirmation(node="n2", at=-1)}  # before the agent's start
    _, state = decide_ha(snap(6, up, [vm(100, "n2", True)]), ha(100, fenced=stale), T)
    assert state.nodes["n2"].status == "fence"


def test_a_confirmation_of_a_host_holding_its_lease_counts_for_nothing_and_is_cleared(
        ) -> None:
    """The host rejoined (or the confirmation was wrong): it is online, its VMs stay, and the
    confirmation is cleared so that it cannot shorten the host's next loss."""
    up = {"n1": True, "n2": True}
    conf = {"n2": FenceConfirmation(node="n2", at=5)}
    actions, state = decide_ha(snap(6, up, [vm(100, "n2", True)]), ha(100, fenced=conf), T)
    assert state.nodes["n2"].status == "online"
    assert not any(isinstance(a, SetPlacement) for a in actions)
    assert ClearFenceConfirmation("n2") in actions


def test_crash_restart_relocate_error() -> None:
    up = {"n1": True, "n2": True}
    _, state = decide_ha(snap(0, up, [vm(100, "n1", True)]), ha(100), T)
    actions, state = decide_ha(snap(5, up, [vm(100, "n1", False)]), ha(100, state=state), T)
    assert state.vms[100].status == "request_start" and state.vms[100].restarts == 1
    task = next(a.task for a in actions if isinstance(a, QueueTask))
    failed = task.model_copy(update={"state": TaskState.ERROR, "error": "no disk"})
    actions, state = decide_ha(snap(7, up, [vm(100, "n1", False)], [failed]),
                               ha(100, state=state), T)
    move = next(a for a in actions if isinstance(a, SetPlacement))
    assert move.placement.node == "n2" and state.vms[100].status == "migrate"
    assert "no disk" in state.vms[100].reason
    state = state.model_copy(update={"vms": {100: state.vms[100].model_copy(
        update={"relocates": 1, "restarts": 1, "task": "t", "status": "request_start"})}})
    failed2 = failed.model_copy(update={"id": "t"})
    _, state = decide_ha(snap(9, up, [vm(100, "n2", False)], [failed2]),
                         ha(100, state=state), T)
    assert state.vms[100].status == "error" and "gave up" in state.vms[100].reason


def test_anti_affinity_and_capacity_leave_it_in_recovery_with_the_reason() -> None:
    up = {"n1": False, "n2": True}
    rule = HARule(name="apart", kind="anti-affinity", vms=[100, 101])
    conf = {"n1": FenceConfirmation(node="n1", at=1)}
    vms = [vm(100, "n1", True), vm(101, "n2", True)]
    _, state = decide_ha(snap(2, up, vms), ha(100, 101, rules=[rule], fenced=conf), T)
    assert state.vms[100].status == "recovery" and "rule apart" in state.vms[100].reason
    big = [vm(100, "n1", True, memory=8000), vm(101, "n2", True)]
    _, state = decide_ha(snap(2, up, big), ha(100, 101, fenced=conf), T)
    assert "not enough free memory" in state.vms[100].reason


def test_preference_priority_beats_free_memory() -> None:
    up = {"n1": False, "n2": True, "n3": True}
    rule = HARule(name="p", kind="node-preference", vms=[100], nodes={"n3": 2, "n2": 1})
    conf = {"n1": FenceConfirmation(node="n1", at=1)}
    vms = [vm(100, "n1", True), vm(101, "n3", True, memory=2000)]
    actions, _ = decide_ha(snap(2, up, vms), ha(100, rules=[rule], fenced=conf), T)
    assert next(a for a in actions if isinstance(a, SetPlacement)).placement.node == "n3"


def test_status_lists_non_ha_vms_on_lost_hosts() -> None:
    up = {"n1": True, "n2": False}
    s = snap(3, up, [vm(100, "n2", True), vm(101, "n2", True)])
    _, state = decide_ha(s, ha(100), T)
    report = ha_status(s, ha(100, state=state))
    assert [(u.vmid, u.status) for u in report.unprotected] == [(101, "unknown")]
    assert report.vms[0].status == "fence"


def test_models_refuse_bad_values() -> None:
    with pytest.raises(ValidationError):
        HARule(name="x", kind="anti-affinity", vms=[100])
    with pytest.raises(ValidationError):
        HARule(name="x", kind="node-preference", vms=[100])
    with pytest.raises(ValueError):
        HATiming(lease_ttl=5, watchdog_timeout=5)


def test_a_host_without_watchdog_is_never_fenced_by_the_clock() -> None:
    """Nothing stops the VMs of a host that has no watchdog: recovering them elsewhere could
    run them twice, so only a confirmed power-off frees them."""
    up = {"n1": True, "n2": False}
    base = snap(20, up, [vm(100, "n2", True)])
    info = base.nodes["n2"].info
    assert info is not None
    bare = Node("n2", info.model_copy(update={"watchdog_timeout": 0.0}), False, None, None)
    nodes = {**base.nodes, "n2": bare}
    _, state = decide_ha(ClusterSnapshot(20, nodes, base.vms), ha(100), T)
    actions, state = decide_ha(ClusterSnapshot(500, nodes, base.vms), ha(100, state=state), T)
    assert not any(isinstance(a, SetPlacement) for a in actions)
    assert state.nodes["n2"].status == "fence" and "no watchdog" in state.nodes["n2"].reason
    confirmation = {"n2": FenceConfirmation(node="n2", at=501)}
    actions, _ = decide_ha(ClusterSnapshot(502, nodes, base.vms),
                           ha(100, state=state, fenced=confirmation), T)
    assert any(isinstance(a, SetPlacement) for a in actions)


def test_a_slower_watchdog_on_the_lost_host_delays_recovery() -> None:
    up = {"n1": True, "n2": False}
    base = snap(20, up, [vm(100, "n2", True)])
    info = base.nodes["n2"].info
    assert info is not None
    slow = Node("n2", info.model_copy(update={"watchdog_timeout": 9.0}), False, None, None)
    nodes = {**base.nodes, "n2": slow}
    _, state = decide_ha(ClusterSnapshot(20, nodes, base.vms), ha(100), T)
    actions, state = decide_ha(ClusterSnapshot(28, nodes, base.vms), ha(100, state=state), T)
    assert not any(isinstance(a, SetPlacement) for a in actions)  # 20 + 5 + 2 passed, 20 + 9 not
    actions, _ = decide_ha(ClusterSnapshot(31, nodes, base.vms), ha(100, state=state), T)
    assert any(isinstance(a, SetPlacement) for a in actions)


def unknown_vm(vmid: int, node: str) -> VM:
    """QEMU alive but not answering QMP (e.g. SIGSTOPped): the agent reports `unknown`."""
    v = vm(vmid, node, True)
    return VM(v.config, v.placement, v.placement_rev,
              VMRuntime(node=node, status=VMStatus.UNKNOWN, message="QMP timed out"))


def test_an_unknown_vm_is_neither_restarted_nor_relocated() -> None:
    up = {"n1": True, "n2": True}
    _, state = decide_ha(snap(0, up, [vm(100, "n1", True)]), ha(100), T)
    for now in (5, 50, 500):  # however long: only its host can say it stopped
        actions, state = decide_ha(snap(now, up, [unknown_vm(100, "n1")]),
                                   ha(100, state=state), T)
        assert [a for a in actions if not isinstance(a, SaveHAState)] == []
        assert "state unknown on n1" in state.vms[100].reason
        assert state.vms[100].restarts == 0 and state.vms[100].relocates == 0
    report = ha_status(snap(500, up, [unknown_vm(100, "n1")]), ha(100, state=state))
    assert "waiting until its host reports it stopped" in report.vms[0].reason
    # Its host reports it stopped: now it is down, and HA restarts it in place.
    actions, state = decide_ha(snap(501, up, [vm(100, "n1", False)]), ha(100, state=state), T)
    starts = [a.task for a in actions if isinstance(a, QueueTask)]
    assert [(t.kind, t.node) for t in starts] == [("vm.start", "n1")]


def test_an_unknown_vm_asked_stopped_gets_a_stop_not_a_stopped_status() -> None:
    up = {"n1": True}
    _, state = decide_ha(snap(0, up, [vm(100, "n1", True)]), ha(100), T)
    stopped = HAInputs(settings={100: HASettings(vmid=100, state=HARequest.STOPPED)},
                       state=state)
    actions, state = decide_ha(snap(5, up, [unknown_vm(100, "n1")]), stopped, T)
    assert [a.task.kind for a in actions if isinstance(a, QueueTask)] == ["vm.shutdown"]
    assert state.vms[100].status == "request_stop"


def test_an_unknown_vm_on_a_fenced_host_is_recovered() -> None:
    up = {"n1": False, "n2": True}
    conf = {"n1": FenceConfirmation(node="n1", at=1)}
    actions, state = decide_ha(snap(2, up, [unknown_vm(100, "n1")]), ha(100, fenced=conf), T)
    assert state.vms[100].status == "recovery"
    assert [a.placement.node for a in actions if isinstance(a, SetPlacement)] == ["n2"]


@pytest.mark.parametrize("want", [HARequest.DISABLED, HARequest.STOPPED])
def test_stopped_or_disabled_on_a_lost_host_turns_its_placement_stopped(want: HARequest
                                                                        ) -> None:
    """So that the host's agent does not boot it when the host returns."""
    up = {"n1": True, "n2": False}
    _, state = decide_ha(snap(0, {"n1": True, "n2": True}, [vm(100, "n2", True)]), ha(100), T)
    inputs = HAInputs(settings={100: HASettings(vmid=100, state=want)}, state=state)
    actions, state = decide_ha(snap(3, up, [vm(100, "n2", True)]), inputs, T)
    [move] = [a for a in actions if isinstance(a, SetPlacement)]
    assert (move.placement.node, move.placement.state, move.expect_rev) == ("n2", "stopped", 7)
    assert not any(isinstance(a, QueueTask) for a in actions)


def test_an_error_vm_on_a_lost_host_stays_in_error() -> None:
    """Proxmox test-erroneous-service1: recovery would start it and hide the error."""
    up = {"n1": False, "n2": True}
    err = HAState(vms={100: VMHAState(status=VMStatusHA.ERROR, node="n1", reason="broken")})
    conf = {"n1": FenceConfirmation(node="n1", at=1)}
    actions, state = decide_ha(snap(2, up, [vm(100, "n1", False)]),
                               ha(100, state=err, fenced=conf), T)
    assert not any(isinstance(a, (SetPlacement, QueueTask)) for a in actions)
    assert state.vms[100].status == "error" and state.vms[100].reason == "broken"


def failed_start(state: HAState, now: float) -> Task:
    tid = state.vms[100].task
    assert tid is not None
    return Task(id=tid, kind="vm.start", node=state.vms[100].node, vmid=100,
                state=TaskState.ERROR, error="no luck", created_at=now)


def test_relocation_tries_each_host_once_then_retries_in_place() -> None:
    """Proxmox test-relocate-policy1 / test-resource-failure6: no bouncing between two bad
    hosts while a good one is free."""
    up = {"n1": True, "n2": True, "n3": True}
    settings = {100: HASettings(vmid=100, max_restart=0, max_relocate=3)}
    _, state = decide_ha(snap(0, up, [vm(100, "n1", True)]), HAInputs(settings=settings), T)
    # It stops on n1: relocated to n2 (name order among equals).
    where, rev = "n1", 7
    tasks: list[Task] = []
    visited = []
    for now in range(1, 12):
        placed = vm(100, where, False, rev=rev)
        actions, state = decide_ha(snap(now, up, [placed], tasks),
                                   HAInputs(settings=settings, state=state), T)
        for a in actions:
            if isinstance(a, SetPlacement):
                where, rev = a.placement.node, rev + 1
                visited.append(where)
            elif isinstance(a, QueueTask):
                visited.append(f"start@{a.task.node}")
                tasks = [failed_start(state, now)]
        if state.vms[100].status == "error":
            break
    assert visited == ["n2", "start@n2", "n3", "start@n3", "start@n3"]
    assert state.vms[100].tried == ["n1", "n2", "n3"]
    assert state.vms[100].status == "error"


def test_no_relocation_target_but_budget_left_retries_in_place() -> None:
    """Proxmox test-resource-affinity-strict-negative4: the other host is taken by an
    anti-affinity partner; the start is tried again where it is, not given up."""
    up = {"n1": True, "n2": True}
    rule = HARule(name="apart", kind="anti-affinity", vms=[100, 101])
    settings = {v: HASettings(vmid=v, max_restart=0, max_relocate=1) for v in (100, 101)}
    vms = [vm(100, "n1", True), vm(101, "n2", True)]
    _, state = decide_ha(snap(0, up, vms), HAInputs(settings=settings, rules=[rule]), T)
    vms[0] = vm(100, "n1", False)
    actions, state = decide_ha(snap(1, up, vms),
                               HAInputs(settings=settings, rules=[rule], state=state), T)
    assert not any(isinstance(a, SetPlacement) for a in actions)
    assert [(a.task.kind, a.task.node) for a in actions if isinstance(a, QueueTask)] == [
        ("vm.start", "n1")]
    assert state.vms[100].status == "request_start" and state.vms[100].relocates == 1
    assert "rule apart" in state.vms[100].reason


def test_a_new_term_waits_the_whole_time_whatever_was_persisted() -> None:
    up = {"n1": True, "n2": False}
    vms = [vm(100, "n2", True)]
    old = HAInputs(settings={100: HASettings(vmid=100)}, term=5, mono=1000.0)
    _, state = decide_ha(snap(20, up, vms), old, T)
    assert state.nodes["n2"].lost_mono == 1000.0 and state.nodes["n2"].term == 5
    # A new leader (term 9, its own monotonic clock) at wall time 40: 20 s after the old
    # leader saw the loss, still it waits its own 7 s.
    new = HAInputs(settings={100: HASettings(vmid=100)}, state=state, term=9, mono=3.0)
    actions, state = decide_ha(snap(40, up, vms), new, T)
    assert state.nodes["n2"].status == "fence" and state.nodes["n2"].lost_mono == 3.0
    assert not any(isinstance(a, SetPlacement) for a in actions)
    later = HAInputs(settings={100: HASettings(vmid=100)}, state=state, term=9, mono=10.0)
    actions, state = decide_ha(snap(47, up, vms), later, T)
    assert state.nodes["n2"].status == "fenced"
    assert any(isinstance(a, SetPlacement) for a in actions)


def test_a_wall_clock_jump_does_not_shorten_the_wait() -> None:
    up = {"n1": True, "n2": False}
    vms = [vm(100, "n2", True)]
    settings = {100: HASettings(vmid=100)}
    _, state = decide_ha(snap(20, up, vms), HAInputs(settings=settings, term=1, mono=50.0), T)
    # The wall clock jumps an hour ahead; only 1 s passed on the monotonic clock.
    actions, state = decide_ha(snap(3620, up, vms),
                               HAInputs(settings=settings, state=state, term=1, mono=51.0), T)
    assert state.nodes["n2"].status == "fence"
    assert not any(isinstance(a, SetPlacement) for a in actions)


def test_failback_moves_back_live_once_after_the_hold_time() -> None:
    t = HATiming(lease_ttl=10, watchdog_timeout=5, margin=2, failback_hold=30,
                 stable_after=1000)
    rule = HARule(name="home", kind="node-preference", vms=[100], nodes={"n1": 2, "n2": 1})
    vms = [vm(100, "n2", True)]
    inputs = ha(100, rules=[rule])
    _, state = decide_ha(snap(0, {"n1": False, "n2": True}, vms), inputs, T)
    up = {"n1": True, "n2": True}
    actions, state = decide_ha(snap(10, up, vms), ha(100, rules=[rule], state=state), t)
    assert not any(isinstance(a, QueueTask) for a in actions)  # n1 just returned
    actions, state = decide_ha(snap(39, up, vms), ha(100, rules=[rule], state=state), t)
    assert not any(isinstance(a, QueueTask) for a in actions)
    actions, state = decide_ha(snap(40, up, vms), ha(100, rules=[rule], state=state), t)
    [move] = [a.task for a in actions if isinstance(a, QueueTask)]
    assert (move.kind, move.node, move.params["target"]) == ("vm.migrate", "n2", "n1")
    assert state.vms[100].status == "migrate" and "failback to n1" in state.vms[100].reason
    # The migration fails: it is not tried again for this return of n1.
    failed = move.model_copy(update={"state": TaskState.ERROR, "error": "cut"})
    for now in (41, 42, 100):
        actions, state = decide_ha(snap(now, up, vms, [failed]),
                                   ha(100, rules=[rule], state=state), t)
        assert not any(isinstance(a, QueueTask) for a in actions)
        assert state.vms[100].status == "started"


def test_no_failback_when_the_rule_says_so() -> None:
    t = HATiming(lease_ttl=10, watchdog_timeout=5, margin=2, failback_hold=30)
    rule = HARule(name="home", kind="node-preference", vms=[100], nodes={"n1": 2, "n2": 1},
                  failback=False)
    up = {"n1": True, "n2": True}
    vms = [vm(100, "n2", True)]
    _, state = decide_ha(snap(0, up, vms), ha(100, rules=[rule]), t)
    actions, _ = decide_ha(snap(100, up, vms), ha(100, rules=[rule], state=state), t)
    assert not any(isinstance(a, QueueTask) for a in actions)


def test_a_host_in_maintenance_that_goes_offline_is_not_fenced() -> None:
    base = snap(0, {"n1": True, "n2": False}, [vm(100, "n2", False)])
    info = base.nodes["n2"].info
    parked = Node("n2", info, False, None, NodeRequest(maintenance=True))
    s = ClusterSnapshot(50, {**base.nodes, "n2": parked}, base.vms)
    stopped = HAInputs(settings={100: HASettings(vmid=100, state=HARequest.STOPPED)})
    _, state = decide_ha(s, stopped, T)
    actions, state = decide_ha(ClusterSnapshot(500, s.nodes, s.vms),
                               HAInputs(settings=stopped.settings, state=state), T)
    assert state.nodes["n2"].status == "maintenance"
    assert not any(isinstance(a, SetPlacement) for a in actions)
    assert state.vms[100].status == "stopped" and state.vms[100].node == "n2"
    # Something meant to run there makes it an ordinary lost host.
    running = [vm(100, "n2", True)]
    _, state = decide_ha(ClusterSnapshot(500, s.nodes, {100: running[0]}), ha(100), T)
    assert state.nodes["n2"].status == "fence"


def _recovered_onto_leftover(status: VMStatus) -> tuple[HAState, VM]:
    """VM 100 was placed on n2, which was fenced; HA moved it to n1, where a failed
    migration's QEMU of it already sits (`status`)."""
    up = {"n1": True, "n2": False}
    conf = {"n2": FenceConfirmation(node="n2", at=29)}
    actions, state = decide_ha(snap(30, up, [vm(100, "n2", True)]), ha(100, fenced=conf), T)
    [move] = [a for a in actions if isinstance(a, SetPlacement)]
    assert move.placement.node == "n1" and state.vms[100].owes_start == 1
    moved = VM(vm(100, "n1", True).config, move.placement, 9,
               VMRuntime(node="n1", status=status))
    return state, moved


@pytest.mark.parametrize("status", [VMStatus.PAUSED, VMStatus.STARTING, VMStatus.RUNNING])
def test_a_recovered_vm_is_started_even_where_a_leftover_qemu_seems_to_run_it(
        status: VMStatus) -> None:
    """A failed migration's incoming QEMU on the recovery target holds a guest state nobody
    can vouch for: HA must not take it for the VM running there, but queue its start (the
    agent stops such a QEMU and boots afresh)."""
    up = {"n1": True, "n2": False}
    state, moved = _recovered_onto_leftover(status)
    receive = Task(id="rx", kind="vm.receive", node="n1", vmid=100, state=TaskState.RUNNING)
    # The leftover's receive task still runs: the start waits for it, queued by nobody yet.
    actions, state = decide_ha(snap(31, up, [moved], [receive]), ha(100, state=state), T)
    assert not any(isinstance(a, QueueTask) for a in actions)
    assert state.vms[100].status == "recovery" and "waiting for task rx" in state.vms[100].reason
    done = receive.model_copy(update={"state": TaskState.ERROR})
    actions, state = decide_ha(snap(32, up, [moved], [done]), ha(100, state=state), T)
    starts = [a.task for a in actions if isinstance(a, QueueTask)]
    assert [(t.kind, t.node) for t in starts] == [("vm.start", "n1")]
    assert state.vms[100].owes_start is None and state.vms[100].task == starts[0].id
    # Once that start has finished, the VM running there is the VM: no second start.
    ok = starts[0].model_copy(update={"state": TaskState.OK})
    running = replace(moved, runtime=VMRuntime(node="n1", status=VMStatus.RUNNING))
    actions, state = decide_ha(snap(33, up, [running], [done, ok]), ha(100, state=state), T)
    assert not any(isinstance(a, QueueTask) for a in actions)
    assert state.vms[100].status == "started"


def test_a_paused_vm_that_ha_did_not_move_is_left_paused() -> None:
    """An operator's pause is not a leftover: only a start HA owes after its own move
    overrides what runs."""
    paused = replace(vm(100, "n1", True), runtime=VMRuntime(node="n1", status=VMStatus.PAUSED))
    actions, state = decide_ha(snap(5, {"n1": True}, [paused]), ha(100), T)
    assert not any(isinstance(a, QueueTask) for a in actions)
    assert state.vms[100].status == "started" and state.vms[100].owes_start is None
