"""The pure HA state machine, pass by pass."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from corral.cluster.actions import QueueTask, SetPlacement
from corral.cluster.models import (
    VM,
    Node,
    NodeInfo,
    Placement,
    RunState,
    Task,
    TaskState,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.actions import SaveHAState
from corral.ha.machine import decide_ha
from corral.ha.models import (
    FenceConfirmation,
    HAInputs,
    HARule,
    HASettings,
    HAState,
    HATiming,
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
    up = {"n1": True, "n2": True}
    conf = {"n2": FenceConfirmation(node="n2", at=5)}
    actions, state = decide_ha(snap(6, up, [vm(100, "n2", True)]), ha(100, fenced=conf), T)
    assert state.nodes["n2"].status == "fenced"
    assert any(isinstance(a, SetPlacement) for a in actions)
    stale = {"n2": FenceConfirmation(node="n2", at=-1)}  # before the agent's start
    _, state = decide_ha(snap(6, up, [vm(100, "n2", True)]), ha(100, fenced=stale), T)
    assert state.nodes["n2"].status == "online"


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
